"""Markdown tables for the model card, computed from `python -m engine.eval --json` reports
(the split tables, and the unseen-engine protocol's tables for `--protocol unseen-engine` reports).

Numbers in the model card come from here, never typed in:
    python scripts/results_table.py "DualFace=runs/default/eval.json" "Baseline=runs/baseline/eval.json"
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

COLUMNS = (
    ("LVE mm²", "lve_mm2", "{:.3f}"),
    ("FDD mm²", "fdd_mm2", "{:+.4f}"),
    ("EVE mm²", "eve_mm2", "{:.3f}"),
    ("PER pred", "per_pred_motion", "{:.3f}"),
    ("PER gt", "per_gt_motion", "{:.3f}"),
    ("PER audio", "per_audio", "{:.3f}"),
    ("closure pred", "closure_rate_pred", "{:.3f}"),
    ("clips", "n_clips", "{}"),
)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return "n/a" if value is None else fmt.format(value)


def table(reports: list[tuple[str, dict]], split: str, by_language: bool) -> str:
    header = ["model", *([] if not by_language else ["language"]), *(c[0] for c in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, report in reports:
        block = report["splits"].get(split)
        if block is None:
            continue
        rows = [("all", block["all"])]
        if by_language:
            rows += sorted(block.get("by_language", {}).items())
        for language, row in rows:
            cells = [label, *([] if not by_language else [language])]
            cells += [_cell(row, key, fmt) for _, key, fmt in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def voice_summary(reports: list[tuple[str, dict]]) -> str:
    """The README's quality table: one run of each unseen-engine report (the first, or the one named
    by LABEL=report.json#RUN; vertex output, default conditioning), then the controls measured on the
    first report's clips."""
    lines = ["| speech | p/b/m lips closed | pauses at rest | LVE mm² |", "|---|---|---|---|"]

    def pct(x: float) -> str:
        return f"{100 * x:.1f} %"

    for label, report in reports:
        r = report["runs"][report.get("pick", 0)]["default"]["vertex"]
        lines.append(f"| {label} | {pct(r['contact'])} | {pct(r['rest'])} | {r['lve_mm2']:.2f} |")
    first = reports[0][1]["runs"][0]["default"]
    truth, frozen = first["ground_truth"], first["frozen"]
    lines.append(
        f"| controls: the rig's ground truth / a frozen face | {pct(truth['contact'])} / {pct(frozen['contact'])} "
        f"| {pct(truth['rest'])} / {pct(frozen['rest'])} | {truth['lve_mm2']:.2f} / {frozen['lve_mm2']:.2f} |"
    )
    return "\n".join(lines)


SEED_IN_NAME = re.compile(r",? seed \d+|-seed\d+")


def seed_table(reports: list[tuple[str, dict]]) -> str:
    """Unseen-engine reports pooled, runs grouped by name without its seed (`full` and `full, seed 1`
    are one group) and view: each group's seeds, then mean and range of contact (vertex, ARKit), the
    lowest rest and the mean LVE, so a difference between variants can be read against the spread
    between seeds of one variant."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for _, report in reports:
        for run in report["runs"]:
            key = (SEED_IN_NAME.sub("", run["name"]).strip(" ,"), run["view"])
            groups.setdefault(key, []).append(run["default"])
    lines = [
        "| run | view | seeds | contact vertex: mean (range) | contact ARKit: mean (range) "
        "| rest, lowest | LVE mm²: mean (range) |",
        "|" + "---|" * 7,
    ]

    def summary(values: list[float], percent: bool) -> str:
        scale, unit = (100.0, " %") if percent else (1.0, "")
        mean, low, high = (scale * f(values) for f in (lambda v: sum(v) / len(v), min, max))
        if len(values) == 1:
            return f"{mean:.1f}{unit}" if percent else f"{mean:.2f}"
        return f"{mean:.1f}{unit} ({low:.1f}-{high:.1f})" if percent else f"{mean:.2f} ({low:.2f}-{high:.2f})"

    for (name, view), results in groups.items():
        vertex = [r["vertex"] for r in results]
        arkit = [r["arkit"] for r in results]
        rest = min(min(v["rest"] for v in vertex), min(a["rest"] for a in arkit))
        lines.append(
            f"| {name} | {view} | {len(results)} | {summary([v['contact'] for v in vertex], True)} "
            f"| {summary([a['contact'] for a in arkit], True)} | {100 * rest:.1f} % "
            f"| {summary([v['lve_mm2'] for v in vertex], False)} |"
        )
    return "\n".join(lines)


def detector_table(report: dict) -> str:
    """A `python -m engine.closure.measure` report: recall and spurious closures per detector, at
    the detector's own threshold and at 0.5."""
    lines = [
        "| detector | trained on | changes | input | tested on | threshold | p/b/m found "
        "| spurious per p/b/m | found (0.5) | spurious (0.5) |",
        "|" + "---|" * 10,
    ]
    for run in report["runs"]:
        trained = run["trained"]
        members = trained.get("members", [trained])
        steps = " + ".join(f"{m.get('steps', 0):,}" for m in members)
        threshold = run.get("threshold", 0.4)
        at, low = run["by_threshold"][str(threshold)], run["by_threshold"]["0.5"]
        lines.append(
            f"| {run['name']} | {members[0].get('view', '?')}, {steps} steps "
            f"| {'yes' if all(m.get('changes', True) for m in members) else 'no'} "
            f"| {trained.get('input', 'normalised')} | {run['view']} ({at['bilabials']} p/b/m) | {threshold} "
            f"| {100 * at['recall']:.1f} % | {at['spurious_per_bilabial']:.2f} "
            f"| {100 * low['recall']:.1f} % | {low['spurious_per_bilabial']:.2f} |"
        )
    return "\n".join(lines) + f"\n\n- `{shlex.join(report['command'])}`"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="LABEL=eval.json")
    parser.add_argument("--split", action="append", help="split(s) to print (default: every split)")
    parser.add_argument("--by-language", action="store_true")
    parser.add_argument("--summary", action="store_true", help="unseen-engine reports: the README's table")
    parser.add_argument(
        "--seeds", action="store_true", help="unseen-engine reports: runs pooled over seeds, mean and range"
    )
    args = parser.parse_args(argv)
    reports = []
    for item in args.reports:
        label, _, path = item.partition("=")
        path, _, run_name = path.partition("#")
        if not path:
            parser.error(f"expected LABEL=eval.json, got {item!r}")
        report = json.loads(Path(path).read_text())
        if run_name:
            names = [run.get("name") for run in report.get("runs", [])]
            if run_name not in names:
                parser.error(f"{path} has no run {run_name!r}; it has {names}")
            report["pick"] = names.index(run_name)
        reports.append((label, report))
    if all(report.get("command", [""])[2:3] == ["engine.closure.measure"] for _, report in reports):
        for label, report in reports:
            print(f"**{label}**\n\n{detector_table(report)}\n")
        return 0
    if all("runs" in report for _, report in reports) and args.seeds:
        print(seed_table(reports) + "\n")
        for label, report in reports:
            print(f"- {label}: `{' '.join(report['command'])}`")
        return 0
    if all("runs" in report for _, report in reports) and args.summary:
        print(voice_summary(reports))
        return 0
    if all("runs" in report for _, report in reports):  # `--protocol unseen-engine` reports
        from engine.voice_eval import format_report

        for label, report in reports:
            print(f"**{label}**\n\n{format_report(report)}\n\n- `{' '.join(report['command'])}`\n")
        return 0
    splits = args.split or list(reports[0][1]["splits"])
    for split in splits:
        print(f"**{split}**\n")
        print(table(reports, split, args.by_language))
        print()
    for label, report in reports:
        print(f"- {label}: `{report['command']}` (weights sha256 `{report['weights_sha256'][:12]}…`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
