"""How well the detector hears p, b and m on a corpus view, at the motion frame rate the metric uses.

recall: share of p/b/m phones with a closure frame within the phone +- 1 frame (what
engine.voice_eval's contact needs); spurious: closures that touch no p/b/m, per p/b/m.
"""

from __future__ import annotations

import numpy as np

from engine.audio.features import FRAME_RATE
from engine.closure.frames import closure_runs, frame_probabilities
from engine.phonemes import BILABIALS

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # reported beside each detector's own threshold
GRID = tuple(round(0.01 * i, 2) for i in range(5, 96))  # thresholds a budget chooses among


def measure_detector(detector, data: str, view: str, max_clips: int = 200, fps: float = 30.0) -> dict:
    """Recall and spurious closures of `detector` on the first `max_clips` clips of `view`, at its own
    threshold and at THRESHOLDS."""
    heard = hear_view(detector, data, view, max_clips, fps)
    thresholds = sorted({*THRESHOLDS, detector.threshold})
    return {
        "view": view,
        "clips": heard.clips,
        "threshold": detector.threshold,
        "by_threshold": {str(t): heard.counts(t) for t in thresholds},
    }


class HeardView:
    """Per clip of a view: the detector's probability at each motion frame and the frames of each
    p/b/m (the phone +- 1 frame); counted at any threshold without running the detector again."""

    def __init__(self, clips: int) -> None:
        self.clips = clips
        self.takes: list[tuple[np.ndarray, list[np.ndarray]]] = []

    def counts(self, threshold: float) -> dict:
        found = bilabials = spurious = 0
        for frame_p, windows in self.takes:
            near = np.zeros(len(frame_p), bool)
            for w in windows:
                near[w] = True
            found += sum(int(frame_p[w].max() >= threshold) for w in windows)
            bilabials += len(windows)
            spurious += sum(int(not near[a : b + 1].any()) for a, b in closure_runs(frame_p, threshold))
        return {
            "recall": found / max(bilabials, 1),
            "spurious_per_bilabial": spurious / max(bilabials, 1),
            "bilabials": bilabials,
        }

    def lowest_threshold_within(self, spurious_per_bilabial: float) -> float:
        """The lowest GRID threshold whose spurious closures per p/b/m do not exceed the budget
        (the most p/b/m found for that many confusions)."""
        for t in GRID:
            if self.counts(t)["spurious_per_bilabial"] <= spurious_per_bilabial:
                return t
        raise ValueError(
            f"no threshold up to {GRID[-1]} keeps spurious closures within {spurious_per_bilabial}"
        )


def hear_view(detector, data: str, view: str, max_clips: int = 200, fps: float = 30.0) -> HeardView:
    from engine.closure.train import clip_mel
    from engine.data.readers import open_dataset
    from engine.metrics import _frames_with_margin
    from engine.voice_eval import view_clips

    clips = [c for c in view_clips(open_dataset(data), view) if c.phones][:max_clips]
    if not clips:
        raise ValueError(f"view {view!r} of {data} has no clips with phone times")
    heard = HeardView(len(clips))
    for clip in clips:
        mel = clip_mel(clip)
        n_frames = int(len(mel) * fps / FRAME_RATE)
        frame_p = frame_probabilities(detector.probabilities(mel), fps, n_frames)
        windows = [
            _frames_with_margin(p.start, p.end, fps, n_frames, 1) for p in clip.phones if p.phone in BILABIALS
        ]
        heard.takes.append((frame_p, windows))
    return heard


def main(argv: list[str] | None = None) -> int:
    """python -m engine.closure.measure --data DIR --run NAME=DETECTOR.npz@VIEW ... [--json FILE]"""
    import argparse
    import json
    import sys

    from engine.closure.detector import ClosureDetectorError, read_detector

    parser = argparse.ArgumentParser(
        prog="python -m engine.closure.measure",
        description="Recall and spurious closures of closure detectors on corpus views, at 30 fps.",
    )
    parser.add_argument("--data", required=True, help="corpus folder")
    parser.add_argument("--run", action="append", required=True, help="NAME=DETECTOR.npz@VIEW; repeatable")
    parser.add_argument("--max-clips", type=int, default=200)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    report: dict = {
        "data": args.data,
        "command": ["python", "-m", "engine.closure.measure", *(argv or sys.argv[1:])],
    }
    report["runs"] = []
    try:
        for text in args.run:
            name, _, rest = text.partition("=")
            path, _, view = rest.partition("@")
            if not name or not path or not view:
                raise ValueError(f"--run {text!r}: use NAME=DETECTOR.npz@VIEW")
            detector = read_detector(path)
            entry = {
                "name": name,
                "detector": path,
                "trained": {k: v for k, v in detector.info.items() if k != "test"},
            }
            entry.update(measure_detector(detector, args.data, view, args.max_clips))
            report["runs"].append(entry)
            best = entry["by_threshold"][str(detector.threshold)]
            print(
                f"{name}: {view}: at {detector.threshold}: recall {best['recall']:.3f}, "
                f"spurious per p/b/m {best['spurious_per_bilabial']:.3f}"
            )
    except (ValueError, KeyError, ClosureDetectorError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        from pathlib import Path

        from engine.atomic_file import atomic_output

        with atomic_output(Path(args.json), "detector report") as temporary:
            temporary.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
