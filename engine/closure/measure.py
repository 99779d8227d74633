"""How well the detector hears p, b and m on a corpus view, at the motion frame rate the metric uses.

recall: share of p/b/m phones with a closure frame within the phone +- 1 frame (what
engine.voice_eval's contact needs); spurious: closures that touch no p/b/m, per p/b/m.
"""

from __future__ import annotations

import numpy as np

from engine.audio.features import FRAME_RATE
from engine.closure.frames import THRESHOLD, closure_runs, frame_probabilities
from engine.phonemes import BILABIALS

THRESHOLDS = tuple(sorted({0.3, 0.4, 0.5, 0.6, 0.7, THRESHOLD}))


def measure_detector(detector, data: str, view: str, max_clips: int = 200, fps: float = 30.0) -> dict:
    from engine.closure.train import clip_mel
    from engine.data.readers import open_dataset
    from engine.metrics import _frames_with_margin
    from engine.voice_eval import view_clips

    counts = {t: [0, 0, 0] for t in THRESHOLDS}  # found, bilabials, spurious runs
    clips = [c for c in view_clips(open_dataset(data), view) if c.phones][:max_clips]
    for clip in clips:
        mel = clip_mel(clip)
        n_frames = int(len(mel) * fps / FRAME_RATE)
        frame_p = frame_probabilities(detector.probabilities(mel), fps, n_frames)
        windows = [
            _frames_with_margin(p.start, p.end, fps, n_frames, 1) for p in clip.phones if p.phone in BILABIALS
        ]
        near = np.zeros(n_frames, bool)
        for w in windows:
            near[w] = True
        for t in THRESHOLDS:
            counts[t][0] += sum(int(frame_p[w].max() >= t) for w in windows)
            counts[t][1] += len(windows)
            counts[t][2] += sum(int(not near[a : b + 1].any()) for a, b in closure_runs(frame_p, t))
    return {
        "view": view,
        "clips": len(clips),
        "by_threshold": {
            str(t): {
                "recall": c[0] / max(c[1], 1),
                "spurious_per_bilabial": c[2] / max(c[1], 1),
                "bilabials": c[1],
            }
            for t, c in counts.items()
        },
    }


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
            best = entry["by_threshold"][str(THRESHOLD)]
            print(
                f"{name}: {view}: recall {best['recall']:.3f}, spurious per p/b/m {best['spurious_per_bilabial']:.3f}"
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
