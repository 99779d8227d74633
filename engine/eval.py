"""Evaluate a trained model on held-out clips: vertex errors, lip readability, bilabial closures.

    python -m engine.eval --weights runs/NAME --data DIR [--split test_voices,test_sentences]
                          [--json OUT] [--max-clips N] [--masks FILE]

Motion is generated fully autoregressively (as at inference), never teacher-forced. Units: LVE, EVE
and FDD in mm^2 (the squared-error protocol of CodeTalker with metres converted to millimetres); PER
(phone error rate of the lip reader on ground-truth and on generated motion, and of the audio
encoder's own CTC head) as a fraction; closure rate as the share of p/b/m phones whose inner lips meet (< 2 mm).

What cannot be measured is skipped and said so (`report["skipped"]`, printed under the table): the
vertex metrics need region masks, which exist for the 468-vertex template only unless `--masks`
names a file for the dataset's mesh; PER and closures need timed phones, which real captures
(VOCASET, BIWI) do not have.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from engine.data.record import Clip
from engine.metrics import (
    DEFAULT_CLOSURE_THRESHOLD_M,
    MM2,
    bilabial_closures,
    edit_distance,
    eve,
    fdd,
    greedy_ctc_decode,
    lve,
)
from engine.training.batches import MelCache, emotion_cond, phone_labels, style_vector
from engine.weights import file_sha256

MASK_KEYS = ("lips", "upper_face", "eyes_forehead")  # LVE, FDD, EVE regions
INNER_LIP_KEY = "inner_lip_pairs"  # optional [K, 2] (upper, lower) vertex pairs for closure rates
MASK_METRICS = {"lips": "LVE", "upper_face": "FDD", "eyes_forehead": "EVE"}
DEFAULT_SPLITS = ("test_voices", "test_sentences")
WEIGHT_NAMES = ("best.safetensors", "checkpoint.safetensors")
# Columns of the printed table, in order: (key, header, format)
COLUMNS = (
    ("n_clips", "clips", "{:d}"),
    ("lve_mm2", "LVE mm2", "{:.3f}"),
    ("fdd_mm2", "FDD mm2", "{:+.4f}"),
    ("eve_mm2", "EVE mm2", "{:.3f}"),
    ("per_gt_motion", "PER gt", "{:.3f}"),
    ("per_pred_motion", "PER pred", "{:.3f}"),
    ("per_audio", "PER audio", "{:.3f}"),
    ("closure_rate_pred", "closure pred", "{:.3f}"),
    ("closure_rate_gt", "closure gt", "{:.3f}"),
)


def resolve_weights(path: str | Path) -> Path:
    """A weights file, or a run folder (its best checkpoint, else its latest)."""
    path = Path(path)
    if path.is_dir():
        for name in WEIGHT_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"run folder {path} holds none of {', '.join(WEIGHT_NAMES)}; train it first")
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path} does not exist")
    return path


class _Accumulator:
    """Pools clip results so rates are over phones/phone labels, not averages of per-clip rates."""

    def __init__(self) -> None:
        self.vertex: dict[str, list[float]] = defaultdict(list)
        self.counts: dict[str, float] = defaultdict(float)
        self.n_clips = 0

    def add(self, result: dict) -> None:
        self.n_clips += 1
        for key in ("lve_mm2", "fdd_mm2", "eve_mm2"):
            if key in result:
                self.vertex[key].append(result[key])
        for key in (
            "edits_gt",
            "edits_pred",
            "edits_audio",
            "ref_phones",
            "closed_gt",
            "closed_pred",
            "bilabials",
        ):
            self.counts[key] += result.get(key, 0)

    def summary(self) -> dict:
        out: dict = {"n_clips": self.n_clips}
        for key, values in self.vertex.items():
            out[key] = float(np.mean(values))
        c = self.counts
        if c["ref_phones"]:
            out["per_gt_motion"] = c["edits_gt"] / c["ref_phones"]
            out["per_pred_motion"] = c["edits_pred"] / c["ref_phones"]
            out["per_audio"] = c["edits_audio"] / c["ref_phones"]
        if c["bilabials"]:
            out["closure_rate_gt"] = c["closed_gt"] / c["bilabials"]
            out["closure_rate_pred"] = c["closed_pred"] / c["bilabials"]
        out["n_bilabials"] = int(c["bilabials"])
        out["n_ref_phones"] = int(c["ref_phones"])
        return out


def _read_lips(model, offsets: torch.Tensor) -> list[int]:
    """Greedy CTC decode of the lip reader on one clip's offsets [T, V, 3]."""
    return greedy_ctc_decode(model.read_lips(offsets[None])[0].float().cpu().numpy())


@torch.no_grad()
def evaluate_clip(
    model,
    clip: Clip,
    mel: np.ndarray,
    regions: dict[str, np.ndarray] | None,
    device: torch.device,
    closure_threshold: float = DEFAULT_CLOSURE_THRESHOLD_M,
    lip_reader=None,
) -> dict:
    """One clip's metrics and raw counts; `lip_reader` (default: `model`) reads the lips for PER."""
    reader = lip_reader if lip_reader is not None else model
    gt_offsets = np.asarray(clip.vertices, np.float32) - np.asarray(clip.template, np.float32)[None]
    n = len(gt_offsets)
    cond = torch.from_numpy(emotion_cond(clip, n, use_emotion=True))[None].to(device)
    style = torch.from_numpy(style_vector(clip))[None].to(device)
    mel_t = torch.from_numpy(np.array(mel, dtype=np.float32))[None].to(device)  # cache is read-only
    pred_offsets = model.generate(mel_t, float(clip.fps), cond, style)[0][0]  # [T, V, 3]
    t = min(n, int(pred_offsets.shape[0]))
    if t == 0:
        raise RuntimeError(f"clip {clip.clip_id}: the model generated no frames")
    pred = pred_offsets[:t].float().cpu().numpy() + clip.template[None]
    gt = np.asarray(clip.vertices[:t], np.float32)
    result: dict = {"clip_id": clip.clip_id, "language": clip.language, "frames": t}
    regions = regions or {}
    if "lips" in regions:
        result["lve_mm2"] = lve(pred, gt, regions["lips"]) * MM2
    if "eyes_forehead" in regions:
        result["eve_mm2"] = eve(pred, gt, regions["eyes_forehead"]) * MM2
    if "upper_face" in regions:
        result["fdd_mm2"] = fdd(pred, gt, regions["upper_face"], clip.template) * MM2
    reference = phone_labels(clip.phones) if clip.phones else []
    if reference and clip.phones:
        fps = float(clip.fps)
        hyp_gt = _read_lips(reader, torch.from_numpy(gt - clip.template[None]).to(device))
        hyp_pred = _read_lips(reader, pred_offsets[:t].float())
        result["ref_phones"] = len(reference)
        result["edits_gt"] = edit_distance(hyp_gt, reference)
        result["edits_pred"] = edit_distance(hyp_pred, reference)
        heard = model.audio_phoneme_logprobs(model.encode_audio(mel_t, fps, n))
        result["edits_audio"] = edit_distance(greedy_ctc_decode(heard[0].float().cpu().numpy()), reference)
        pairs = regions.get(INNER_LIP_KEY)
        if pairs is not None:
            gap = _pair_gap(pairs) if len(gt[0]) != _template_size() else None
            closed_gt, total = bilabial_closures(gt, clip.phones, fps, None, closure_threshold, gap)
            closed_pred, _ = bilabial_closures(pred, clip.phones, fps, None, closure_threshold, gap)
            result.update(closed_gt=closed_gt, closed_pred=closed_pred, bilabials=total)
    return result


def _template_size() -> int:
    from engine.face.template import N_VERTICES

    return N_VERTICES


def _pair_gap(pairs: np.ndarray):
    """Inner-lip gap of another mesh: mean distance of its (upper, lower) vertex pairs, per frame."""

    def gap(vertices: np.ndarray, _template) -> np.ndarray:
        return np.linalg.norm(vertices[:, pairs[:, 0]] - vertices[:, pairs[:, 1]], axis=-1).mean(-1)

    return gap


def _regions_for(n_vertices: int, masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Region masks: the `--masks` file's for its mesh, else the template's (468 vertices), else none."""
    if masks is not None:
        return masks
    from engine.face.template import N_VERTICES, load_template

    if n_vertices != N_VERTICES:
        return {}
    template = load_template()
    regions = {key: template.regions[key] for key in MASK_KEYS}
    regions[INNER_LIP_KEY] = np.asarray(template.inner_lip_pairs)
    return regions


def load_masks(path: str | Path, n_vertices: int) -> dict[str, np.ndarray]:
    """Region masks for a mesh other than the template, from JSON or NPZ.

    JSON: {"lips": [i, ...], "upper_face": [...], "eyes_forehead": [...], "inner_lip_pairs":
    [[upper, lower], ...]}; NPZ: arrays of those names. Any subset is fine: missing regions skip
    their metric. Indices are 0-based vertex numbers of the dataset's mesh."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--masks {path} does not exist")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix.lower() in (".npz", ".npy"):
            with np.load(path, allow_pickle=False) as data:
                if not hasattr(data, "files"):
                    raise ValueError(
                        "a .npy holds one array; save the masks with np.savez(FILE.npz, lips=...)"
                    )
                raw = {k: data[k] for k in data.files}
        else:
            raise ValueError("use a .json or .npz file")
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"--masks {path}: cannot read it ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"--masks {path} must map region names to index lists, got {type(raw).__name__}")
    known = (*MASK_KEYS, INNER_LIP_KEY)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"--masks {path}: unknown region(s) {unknown}; use {', '.join(known)}")
    masks: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        try:
            idx = np.asarray(value)
            if idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise TypeError
            idx = idx.astype(np.int64)
        except (TypeError, ValueError):
            raise ValueError(f"--masks {path}: {key!r} must be a list of integer vertex indices") from None
        shape_ok = idx.ndim == 2 and idx.shape[1] == 2 if key == INNER_LIP_KEY else idx.ndim == 1
        if not shape_ok or idx.size == 0:
            want = "[[upper, lower], ...] pairs" if key == INNER_LIP_KEY else "a non-empty list of indices"
            raise ValueError(f"--masks {path}: {key!r} must be {want}, got shape {idx.shape}")
        if idx.min() < 0 or idx.max() >= n_vertices:
            raise ValueError(
                f"--masks {path}: {key!r} has indices outside 0..{n_vertices - 1}; the file must be for "
                f"the dataset's {n_vertices}-vertex mesh"
            )
        masks[key] = idx
    return masks


def skipped_metrics(n_vertices: int, regions: dict, clips: Sequence[Clip]) -> list[str]:
    """What this evaluation cannot measure, and why (printed under the table, kept in the JSON)."""
    notes = []
    for key, metric in MASK_METRICS.items():
        if key not in regions:
            notes.append(
                f"{metric} skipped: no {key!r} mask for the {n_vertices}-vertex mesh "
                f"(pass --masks FILE with a {key!r} index list)"
            )
    with_phones = sum(1 for c in clips if c.phones)
    if with_phones == 0:
        notes.append("PER skipped: the clips have no timed phone labels (real captures have none)")
    elif with_phones < len(clips):
        notes.append(f"PER over the {with_phones} of {len(clips)} clips that have phone labels")
    if with_phones and INNER_LIP_KEY not in regions:
        notes.append(
            f"closure rates skipped: no {INNER_LIP_KEY!r} for the {n_vertices}-vertex mesh (pass --masks FILE)"
        )
    return notes


def evaluate(
    model,
    clips: Sequence[Clip],
    *,
    device: str | torch.device = "cpu",
    cache: MelCache | None = None,
    progress: bool = False,
    closure_threshold: float = DEFAULT_CLOSURE_THRESHOLD_M,
    lip_reader=None,
    masks: dict[str, np.ndarray] | None = None,
) -> dict:
    """Metrics over `clips`, pooled and per language: {"all": {...}, "by_language": {...}, "clips": [...],
    "skipped": [why a metric is missing, ...]}; `masks` (see `load_masks`) for non-template meshes."""
    if not clips:
        raise ValueError("no clips to evaluate; check --split and --data")
    device = torch.device(device)
    cache = cache if cache is not None else MelCache(None)
    was_training = model.training
    model.eval()
    pooled = _Accumulator()
    by_language: dict[str, _Accumulator] = defaultdict(_Accumulator)
    rows = []
    items = clips
    if progress:
        from tqdm import tqdm

        items = tqdm(clips, desc="eval", unit="clip", leave=False)
    try:
        for clip in items:
            result = evaluate_clip(
                model,
                clip,
                cache.mel(clip),
                _regions_for(clip.template.shape[0], masks),
                device,
                closure_threshold,
                lip_reader,
            )
            pooled.add(result)
            by_language[clip.language].add(result)
            rows.append(result)
    finally:
        model.train(was_training)
    return {
        "all": pooled.summary(),
        "by_language": {lang: acc.summary() for lang, acc in sorted(by_language.items())},
        "clips": rows,
        "skipped": sorted(
            {
                note
                for n in sorted({c.template.shape[0] for c in clips})
                for note in skipped_metrics(n, _regions_for(n, masks), clips)
            }
        ),
    }


def format_table(report: dict) -> str:
    """One row per split and language."""
    header = ["split", "language"] + [h for _, h, _ in COLUMNS]
    lines = []
    for split, result in report["splits"].items():
        for lang, metrics in [("all", result["all"]), *result["by_language"].items()]:
            cells = [split, lang]
            for key, _, fmt in COLUMNS:
                value = metrics.get(key)
                cells.append(
                    "-"
                    if value is None or (isinstance(value, float) and math.isnan(value))
                    else fmt.format(value)
                )
            lines.append(cells)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    render = [
        "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in [header, *lines]
    ]
    notes = sorted({note for result in report["splits"].values() for note in result.get("skipped", [])})
    return "\n".join([render[0], "-" * len(render[0]), *render[1:], *(f"note: {n}" for n in notes)])


def run(
    weights,
    data,
    splits=DEFAULT_SPLITS,
    max_clips=None,
    device="auto",
    progress=True,
    lip_reader=None,
    masks=None,
    command: Sequence[str] | None = None,
) -> dict:
    """Load, evaluate every split, return the report; `lip_reader` is another model's weights to
    read the lips with, so models whose own lip reader is weak or absent (the baseline) compare fairly.
    `masks` is a --masks file; `command` (argv) is recorded so a report can be reproduced and cited."""
    from engine.data.readers import open_dataset
    from engine.training.distributed import resolve_device
    from engine.weights import load_checkpoint

    path = resolve_weights(weights)
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data} is not a folder")
    dev = resolve_device(device)
    dataset = open_dataset(data)
    chosen = {}
    for split in splits:
        try:
            clips = dataset.clips(split)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}; pass them with --split") from None
        if not clips:
            raise ValueError(f"split {split!r} of {data} is empty; choose another --split")
        chosen[split] = clips[:max_clips] if max_clips else clips
    region_masks = load_masks(masks, dataset.n_vertices) if masks is not None else None
    model = load_checkpoint(path).to(dev)
    reader = None
    if lip_reader is not None:
        reader = load_checkpoint(resolve_weights(lip_reader)).to(dev).eval()
        if reader.cfg.n_vertices != model.cfg.n_vertices:
            raise ValueError(
                f"--lip-reader reads {reader.cfg.n_vertices}-vertex meshes, the model makes {model.cfg.n_vertices}"
            )
    cache = MelCache(data / "cache" / "log_mel")
    reader_path = resolve_weights(lip_reader) if lip_reader is not None else path
    report: dict = {
        "command": shlex.join(command) if command is not None else None,
        "argv": list(command) if command is not None else None,
        "weights": str(path),
        "weights_sha256": file_sha256(path),
        "lip_reader": str(reader_path),
        "lip_reader_sha256": file_sha256(reader_path),
        "data": str(data),
        "dataset_kind": dataset.kind,
        "n_vertices": dataset.n_vertices,
        "masks": str(masks) if masks is not None else None,
        "torch_threads": torch.get_num_threads(),
        "units": {
            "lve_mm2": "mm^2",
            "eve_mm2": "mm^2",
            "fdd_mm2": "mm^2 (gt - pred)",
            "per": "fraction",
            "closure_rate": f"share of p/b/m phones with inner-lip gap < {DEFAULT_CLOSURE_THRESHOLD_M * 1000:g} mm",
        },
        "splits": {},
    }
    for split, clips in chosen.items():
        started = time.perf_counter()
        report["splits"][split] = evaluate(
            model, clips, device=dev, cache=cache, progress=progress, lip_reader=reader, masks=region_masks
        )
        report["splits"][split]["seconds"] = round(time.perf_counter() - started, 2)
    return report


def unseen_voice_main(argv: list[str]) -> int:
    """`python -m engine.eval --protocol unseen-engine ...`: see engine.voice_eval."""
    from engine.closure.detector import ClosureDetectorError
    from engine.voice_eval import format_report, parse_run, run_protocol, write_report
    from engine.weights import CheckpointError

    parser = argparse.ArgumentParser(
        prog="python -m engine.eval --protocol unseen-engine",
        description="Lip contact, rest, rounding, LVE and PER on engines and voices left out of training, "
        "with default conditioning, beside the ground-truth and frozen-face controls.",
    )
    parser.add_argument("--data", required=True, type=Path, help="corpus with unseen-engine views")
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="NAME=WEIGHTS[@VIEW][#DETECTOR]: NAME an engine left out of that run (view unseen-NAME) or "
        "any label (view test_voices); DETECTOR the closure detector's .npz (default: the shipped one) "
        "or 'off'; repeat for folds and seeds",
    )
    parser.add_argument("--max-clips", type=int, default=60, help="clips per run (default 60)")
    parser.add_argument("--oracle", action="store_true", help="also report oracle emotion and style")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    if args.max_clips < 1:
        parser.error("--max-clips must be >= 1")
    try:
        runs = [parse_run(text) for text in args.run]
        report = run_protocol(args.data, runs, args.max_clips, args.oracle)
    except (FileNotFoundError, ValueError, KeyError, CheckpointError, ClosureDetectorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["command"] = ["python", "-m", "engine.eval", "--protocol", "unseen-engine", *argv]
    print(format_report(report))
    if args.json:
        print(f"report written to {write_report(report, args.json)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--protocol" in argv:
        at = argv.index("--protocol")
        protocol = argv[at + 1] if at + 1 < len(argv) else ""
        if protocol != "unseen-engine":
            print(f"error: --protocol {protocol!r}: the only protocol is 'unseen-engine'", file=sys.stderr)
            return 2
        return unseen_voice_main(argv[:at] + argv[at + 2 :])
    parser = argparse.ArgumentParser(prog="python -m engine.eval", description="Evaluate DualFace weights.")
    parser.add_argument("--weights", required=True, help="a .safetensors file or a run folder")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder")
    parser.add_argument("--split", default=",".join(DEFAULT_SPLITS), help="comma-separated split names")
    parser.add_argument("--json", type=Path, help="also write the full report (with per-clip rows) here")
    parser.add_argument("--max-clips", type=int, help="evaluate at most N clips per split")
    parser.add_argument(
        "--lip-reader", help="read lips (PER) with these weights instead (compare runs on one reader)"
    )
    parser.add_argument(
        "--masks",
        type=Path,
        help="JSON/NPZ region masks (lips, upper_face, eyes_forehead, inner_lip_pairs) for a mesh other "
        "than the 468-vertex template; without them LVE/FDD/EVE are skipped on such meshes",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from engine.weights import CheckpointError

    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not splits:
        parser.error("--split needs at least one split name")
    if args.max_clips is not None and args.max_clips < 1:
        parser.error("--max-clips must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    try:
        report = run(
            args.weights,
            args.data,
            splits,
            args.max_clips,
            args.device,
            not args.no_progress,
            args.lip_reader,
            args.masks,
            ["python", "-m", "engine.eval", *argv],
        )
    except (FileNotFoundError, ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
