"""Lip sync on voices the model never heard, measured the way a user meets it.

    python -m engine.eval --protocol unseen-engine --data DIR --run flite=runs/no_flite/best.safetensors

Each run is a checkpoint and the corpus view it is tested on: by default `unseen-<engine>` (every
English clip of a TTS engine the run was trained without, see engine.data.synth's views) and
`test_voices` (held-out voices of the seen engines, all languages, and the extreme speaker
transforms). Every take goes through `Engine.animate` with the settings a user has: neutral
emotion, default style. Oracle conditioning (the clip's true emotion and style) is printed beside it
only with `--oracle`.

Metrics, for the vertex output and for the ARKit output (its weights applied to the template rig):
- contact: share of p/b/m phones whose inner-lip gap (vertices 13-14) drops to <= 1 mm within the
  phone +- 1 frame;
- rest: share of frames at <= 1 mm inside pauses >= 300 ms, 100 ms trimmed at each edge;
- rounding: mouth width on IY/EY/AE minus on OW/UW/W (mm, mean over clips);
- LVE: the CodeTalker lip vertex error against the rig's ground truth (mm^2);
- PER: the lip reader's phone error rate on the vertex output.
Two controls are measured on the same clips with the same code: the rig's ground truth (what the
metrics give for correct motion; with default conditioning, the rig driven by the clip's phones
with neutral emotion and default style) and a frozen neutral face (what they give for no motion:
it "closes" and "rests" everywhere but fails rounding and LVE).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.metrics import (
    MM2,
    contact_counts,
    edit_distance,
    lip_gap_mm,
    lve,
    mouth_width_mm,
    rest_counts,
    rounding_mm,
)
from engine.phonemes import SILENCE

OUTPUTS = ("vertex", "arkit")
METRICS = ("contact", "rest", "rounding_mm", "lve_mm2", "per")


@dataclass
class Pool:
    """Counts pooled over clips; rates are computed from the sums, not averaged per clip."""

    contact: list[int] = field(default_factory=lambda: [0, 0])
    rest: list[int] = field(default_factory=lambda: [0, 0])
    rounding: list[float] = field(default_factory=lambda: [0.0, 0.0])
    lve: list[float] = field(default_factory=list)
    edits: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, vertices: np.ndarray, gt: np.ndarray, clip, lip_phones: Sequence[str] | None) -> None:
        fps, phones = float(clip.fps), clip.phones
        gap = lip_gap_mm(vertices)
        for mine, (a, b) in (
            (self.contact, contact_counts(gap, phones, fps)),
            (self.rest, rest_counts(gap, phones, fps)),
        ):
            mine[0] += a
            mine[1] += b
        contrast, n = rounding_mm(mouth_width_mm(vertices), phones, fps)
        self.rounding[0] += contrast
        self.rounding[1] += n
        t = min(len(vertices), len(gt))
        from engine.face.template import load_template

        self.lve.append(lve(vertices[:t], gt[:t], load_template().regions["lips"]) * MM2)
        if lip_phones is not None:
            reference = _reference_phones(phones)
            self.edits[0] += edit_distance(list(lip_phones), reference)
            self.edits[1] += len(reference)

    def summary(self) -> dict[str, float]:
        def rate(pair: Sequence[float]) -> float:
            return pair[0] / pair[1] if pair[1] else math.nan

        return {
            "contact": rate(self.contact),
            "rest": rate(self.rest),
            "rounding_mm": rate(self.rounding),
            "lve_mm2": float(np.mean(self.lve)) if self.lve else math.nan,
            "per": rate(self.edits),
            "bilabials": self.contact[1],
            "rest_frames": self.rest[1],
        }


def _reference_phones(phones: Sequence) -> list[str]:
    out: list[str] = []
    for p in phones:
        if p.phone != SILENCE and (not out or out[-1] != p.phone):
            out.append(p.phone)
    return out


def _merge(phones: Sequence[str]) -> list[str]:
    out: list[str] = []
    for p in phones:
        if p != SILENCE and (not out or out[-1] != p):
            out.append(p)
    return out


def evaluate_view(engine, clips: Sequence, oracle: bool = False) -> dict[str, dict]:
    """Pools for the model's vertex and ARKit outputs and for the two controls, over `clips`."""
    from engine.arkit.basis import apply_arkit

    pools = {name: Pool() for name in ("vertex", "arkit", "ground_truth", "frozen")}
    by_language: dict[str, dict[str, Pool]] = {}
    for clip, take in zip(clips, _takes(engine, clips, oracle)):
        template = np.asarray(clip.template, np.float32)
        gt = np.asarray(clip.vertices, np.float32) if oracle else neutral_reference(clip)
        lip = _merge([p.phone for p in take.lip_phonemes])
        outputs = {
            "vertex": (template[None] + take.offsets, lip),
            "arkit": (template[None] + apply_arkit(take.arkit), None),
            "ground_truth": (gt, None),
            "frozen": (np.repeat(template[None], len(gt), axis=0), None),
        }
        language = by_language.setdefault(clip.language, {name: Pool() for name in ("vertex", "arkit")})
        for name, (vertices, read) in outputs.items():
            pools[name].add(vertices, gt, clip, read)
            if name in language:
                language[name].add(vertices, gt, clip, read)
    summary: dict[str, dict] = {name: pool.summary() for name, pool in pools.items()}
    summary["by_language"] = {
        lang: {name: pool.summary() for name, pool in outputs_of.items()}
        for lang, outputs_of in sorted(by_language.items())
    }
    return summary


EVAL_BATCH = 16  # clips per decoder batch: short clips share every decoder step (the same takes, sooner)


def _takes(engine, clips: Sequence, oracle: bool):
    """Each clip's take as a user gets it (default conditioning unless `oracle`), decoded in batches."""
    for start in range(0, len(clips), EVAL_BATCH):
        requests = []
        for clip in clips[start : start + EVAL_BATCH]:
            request: dict = {"audio": str(clip.audio_path), "fps": float(clip.fps), "captions": False}
            if oracle:
                request.update(
                    emotion=clip.emotion, intensity=float(clip.intensity) or 1.0, style=clip.meta.get("style")
                )
            requests.append(request)
        yield from engine.animate_batch(requests)


def neutral_reference(clip) -> np.ndarray:
    """The rig's motion for the clip's phones under the conditioning a user has (neutral emotion,
    default style): the ground truth that default-conditioned output is compared with. The corpus's
    own motion carries the clip's random emotion and style, which no user supplies."""
    from engine.data.motion import render_motion
    from engine.data.style import SpeakerStyle

    n = int(np.shape(clip.vertices)[0])
    motion = render_motion(
        clip.phones, "neutral", 1.0, SpeakerStyle(), float(clip.fps), n / float(clip.fps), 0
    )
    return np.asarray(motion.vertices[:n], np.float32)


def view_clips(dataset, view: str) -> list:
    """A split or view of the dataset; `SPLIT-without-ENGINE` drops the engine's clips from a split
    (held-out voices of the engines a fold did see: `test_voices-without-flite`)."""
    base, sep, engine = view.partition("-without-")
    if sep and view not in dataset.splits:
        return [c for c in dataset.clips(base) if c.meta.get("engine") != engine]
    return dataset.clips(view)


def run_protocol(
    data: str | Path,
    runs: Sequence[tuple[str, str, str] | tuple[str, str, str, str | None]],
    max_clips: int = 60,
    oracle: bool = False,
    threads: int | None = 1,
) -> dict:
    """`runs`: (name, weights, view[, closure detector: a path, "off" or None for the shipped one]).
    Returns {"runs": [{name, view, clips, results}], ...}."""
    from engine.api import Engine
    from engine.data.readers import open_dataset

    dataset = open_dataset(data)
    report: dict = {"data": str(data), "max_clips": max_clips, "runs": []}
    for name, weights, view, *rest in runs:
        detector = rest[0] if rest else None
        clips = [c for c in view_clips(dataset, view) if c.phones][:max_clips]
        if not clips:
            raise ValueError(f"view {view!r} of {data} has no clips with phone times")
        engine = Engine(weights=weights, device="cpu", threads=threads, closure_detector=detector)
        entry = {
            "name": name,
            "weights": str(weights),
            "view": view,
            "clips": len(clips),
            "closure_detector": "off" if engine.closure_detector is None else engine.closure_detector.info,
        }
        entry["default"] = evaluate_view(engine, clips)
        if oracle:
            entry["oracle"] = evaluate_view(engine, clips, oracle=True)
        report["runs"].append(entry)
    report["spread"] = spread(report["runs"])
    return report


def spread(runs: Sequence[dict]) -> dict:
    """Mean, min and max over runs of the same view kind (unseen engine vs held-out voices)."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        kind = "unseen_engine" if run["view"].startswith("unseen-") else run["view"]
        groups.setdefault(kind, []).append(run["default"])
    out: dict = {}
    for kind, results in groups.items():
        out[kind] = {}
        for output in ("vertex", "arkit"):
            out[kind][output] = {}
            for metric in METRICS:
                values = np.array([r[output][metric] for r in results], dtype=float)
                values = values[np.isfinite(values)]
                if len(values):
                    out[kind][output][metric] = {
                        "mean": float(values.mean()),
                        "min": float(values.min()),
                        "max": float(values.max()),
                        "n": int(len(values)),
                    }
    return out


def format_report(report: dict) -> str:
    """Markdown tables: one row per run and output, the two controls beside them."""
    header = "| run | view | clips | output | contact | rest | rounding mm | LVE mm² | PER |"
    lines = [header, "|" + "---|" * 9]

    def cell(value: float, percent: bool = False) -> str:
        if not np.isfinite(value):
            return "-"
        return f"{100 * value:.1f} %" if percent else f"{value:.2f}"

    for run in report["runs"]:
        for kind in ("default", "oracle"):
            if kind not in run:
                continue
            label = run["name"] + (" (oracle conditioning)" if kind == "oracle" else "")
            for output in ("vertex", "arkit", "ground_truth", "frozen"):
                if kind == "oracle" and output in ("ground_truth", "frozen"):
                    continue
                r = run[kind][output]
                lines.append(
                    f"| {label} | {run['view']} | {run['clips']} | {output.replace('_', ' ')} | "
                    f"{cell(r['contact'], True)} | {cell(r['rest'], True)} | {cell(r['rounding_mm'])} | "
                    f"{cell(r['lve_mm2'])} | {cell(r['per'])} |"
                )
    lines += ["", "Per language (default conditioning):", "", header, "|" + "---|" * 9]
    for run in report["runs"]:
        for language, outputs in run["default"].get("by_language", {}).items():
            for output in ("vertex", "arkit"):
                r = outputs[output]
                lines.append(
                    f"| {run['name']} | {run['view']} ({language}) | - | {output} | "
                    f"{cell(r['contact'], True)} | {cell(r['rest'], True)} | {cell(r['rounding_mm'])} | "
                    f"{cell(r['lve_mm2'])} | {cell(r['per'])} |"
                )
    return "\n".join(lines)


def write_report(report: dict, path: str | Path) -> Path:
    from engine.atomic_file import atomic_output

    path = Path(path)
    with atomic_output(path, "evaluation report") as temporary:
        temporary.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return path


def parse_run(text: str) -> tuple[str, str, str, str | None]:
    """NAME=WEIGHTS[@VIEW][#DETECTOR]; the view defaults to unseen-NAME (NAME an engine) or
    test_voices, the closure detector to the shipped one ("off": none)."""
    name, sep, rest = text.partition("=")
    rest, _, detector = rest.partition("#")
    if not sep or not name or not rest:
        raise ValueError(
            f"--run {text!r}: use NAME=WEIGHTS[@VIEW][#DETECTOR], e.g. flite=runs/no_flite/best.safetensors"
        )
    weights, _, view = rest.partition("@")
    if not view:
        view = f"unseen-{name}" if name in ("espeak", "flite", "festival") else "test_voices"
    return name, weights, view, detector or None
