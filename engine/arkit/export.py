"""Write a take's ARKit weights for other tools: Live Link Face CSV (Unreal, most importers) and JSON.

The CSV copies what the Live Link Face app writes, because importers match its header byte for
byte: capitalised names, Apple's column order (which lists jawRight before jawLeft and mouthRight
before mouthLeft, unlike ARKit's documentation order in ``engine.arkit.names``), a ``Timecode`` of
``HH:MM:SS:FF.mmm`` and a ``BlendShapeCount`` column.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES
from engine.atomic_file import atomic_output, write_text_atomic

# The app swaps two pairs relative to ARKit's documentation order; everything else is identical.
_LIVE_LINK_SWAPS = {
    "jawLeft": "jawRight",
    "jawRight": "jawLeft",
    "mouthLeft": "mouthRight",
    "mouthRight": "mouthLeft",
}
LIVE_LINK_FACE_ORDER: tuple[str, ...] = tuple(_LIVE_LINK_SWAPS.get(name, name) for name in ARKIT_NAMES)
assert sorted(LIVE_LINK_FACE_ORDER) == sorted(ARKIT_NAMES)
# Head and eye rotations that the app appends; written as zeros when asked for (we animate no head).
HEAD_EYE_COLUMNS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip


class ExportError(ValueError):
    """The weights cannot be written as given; the message says what to change."""


def _capitalised(name: str) -> str:
    return name[0].upper() + name[1:]


def _check(weights: np.ndarray, fps: float) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(ARKIT_NAMES):
        raise ExportError(
            f"ARKit weights must be [frames, {len(ARKIT_NAMES)}] in engine.arkit.ARKIT_NAMES order, "
            f"got shape {weights.shape}"
        )
    if not np.all(np.isfinite(weights)):
        raise ExportError("ARKit weights contain NaN or infinity; re-run the take or clip the weights first")
    if not (isinstance(fps, int | float) and np.isfinite(fps) and fps > 0):
        raise ExportError(f"fps must be a positive number, got {fps!r}")
    return weights


def timecode(frame: int, fps: float, start_seconds: float = 0.0) -> str:
    """Live Link Face timecode ``HH:MM:SS:FF.mmm`` (frame number with its sub-frame fraction)."""
    seconds = start_seconds + frame / fps
    whole = int(np.floor(seconds + 1e-9))
    frames_in_second = round((seconds - whole) * fps, 3)
    if frames_in_second >= fps:  # 29.9999 rounding up to the next second
        whole, frames_in_second = whole + 1, 0.0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{frames_in_second:06.3f}"


def write_arkit_csv(
    path: str | Path,
    weights: np.ndarray,
    fps: float,
    *,
    include_head_eye: bool = False,
    start_seconds: float = 0.0,
) -> Path:
    """Write ``weights`` ([T, 52], engine.arkit order) as a Live Link Face CSV; returns the path.

    ``include_head_eye`` appends the nine rotation columns (zeros) for importers that insist on
    the app's 61 columns.
    """
    weights = np.clip(_check(weights, fps), 0.0, 1.0)
    columns = [ARKIT_INDEX[n] for n in LIVE_LINK_FACE_ORDER]
    header = ["Timecode", "BlendShapeCount"] + [_capitalised(n) for n in LIVE_LINK_FACE_ORDER]
    extra = list(HEAD_EYE_COLUMNS) if include_head_eye else []
    header += extra
    count = len(LIVE_LINK_FACE_ORDER) + len(extra)
    path = Path(path)
    with atomic_output(path, "ARKit CSV") as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for t, row in enumerate(weights[:, columns]):
            values = [f"{v:.6f}" for v in row] + ["0.000000"] * len(extra)
            writer.writerow([timecode(t, fps, start_seconds), count, *values])
    return path


def read_arkit_csv(path: str | Path) -> np.ndarray:
    """Weights [T, 52] in engine.arkit order from a Live Link Face style CSV (any column order)."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ExportError(f"{path} is empty; export the take again")
    lookup = {h.lower(): i for i, h in enumerate(rows[0])}
    missing = [n for n in ARKIT_NAMES if n.lower() not in lookup]
    if missing:
        raise ExportError(f"{path} lacks ARKit columns {missing[:5]}...; is it a Live Link Face CSV?")
    idx = [lookup[n.lower()] for n in ARKIT_NAMES]
    return np.array([[float(r[i]) for i in idx] for r in rows[1:]], dtype=np.float32).reshape(-1, 52)


def arkit_json(weights: np.ndarray, fps: float) -> dict:
    """``{fps, names, frames}``: names in engine.arkit order, one list of 52 weights per frame."""
    weights = np.clip(_check(weights, fps), 0.0, 1.0)
    return {
        "fps": float(fps),
        "names": list(ARKIT_NAMES),
        "frames": [[round(float(v), 6) for v in row] for row in weights],
    }


def write_arkit_json(path: str | Path, weights: np.ndarray, fps: float) -> Path:
    """Write :func:`arkit_json` to ``path`` (atomically); returns the path."""
    payload = arkit_json(weights, fps)
    path = Path(path)
    write_text_atomic(path, json.dumps(payload, separators=(",", ":")), "ARKit JSON")
    return path
