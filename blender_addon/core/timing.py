"""Time bases: the engine animates at a few fixed rates, scenes run at whatever the artist chose.

Scene rates the engine does not support (NTSC's 23.976 and 29.97, 120 fps) are generated at the
nearest engine rate (engine.request.SUPPORTED_FPS) and resampled to the scene's rate (linear
interpolation; the motion is smooth at these rates). Emotion keyframes on the panel are sampled per
scene frame and reduced to the few keys the engine's linear schedule needs to reproduce them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from engine.request import SUPPORTED_FPS


def engine_rate_for(scene_fps: float) -> float:
    """The engine rate to generate at: equal to the scene's rate when possible, else the nearest."""
    if not np.isfinite(scene_fps) or scene_fps <= 0:
        raise ValueError(f"scene frame rate must be positive, got {scene_fps}")
    return float(min(SUPPORTED_FPS, key=lambda rate: (abs(rate - scene_fps), -rate)))


def resample_animation(animation, fps: float):
    """A copy of `animation` at `fps` frames per second, same duration (rounded up to whole frames)."""
    if abs(float(animation.fps) - fps) < 1e-6:
        return animation
    n_src = animation.n_frames
    n_dst = max(1, int(np.ceil(n_src * fps / float(animation.fps) - 1e-6)))
    src_t = np.arange(n_src) / float(animation.fps)
    dst_t = np.minimum(np.arange(n_dst) / fps, src_t[-1])
    position = np.interp(dst_t, src_t, np.arange(n_src, dtype=np.float64))
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, n_src - 1)
    blend = (position - lower).astype(np.float32)

    def lerp(array: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (array.ndim - 1)
        w = blend.reshape(shape)
        return (array[lower] * (1.0 - w) + array[upper] * w).astype(np.float32)

    return dataclasses.replace(
        animation,
        fps=float(fps),
        offsets=lerp(np.asarray(animation.offsets)),
        arkit=lerp(np.asarray(animation.arkit)),
        meta={**animation.meta, "resampled_from_fps": float(animation.fps)},
    )


def reduce_schedule(
    emotions: Sequence[str], intensities: Sequence[float], fps: float, tolerance: float = 1e-3
) -> list[tuple[float, str, float]]:
    """Per-frame (emotion, intensity) samples -> the keyframes of an equivalent linear schedule.

    An emotion switch becomes two keys one frame apart (the engine cross-fades between keys, so
    this is as sharp as the frame grid allows); intensity keeps a key wherever linear
    interpolation between the kept neighbours would miss a sample by more than `tolerance`.
    """
    if len(emotions) != len(intensities) or not emotions:
        raise ValueError("need one intensity per emotion sample and at least one sample")
    values = np.clip(np.asarray(intensities, dtype=np.float64), 0.0, 1.0)
    keep = [0]
    for i in range(1, len(emotions)):
        if emotions[i] != emotions[i - 1]:
            if keep[-1] != i - 1:
                keep.append(i - 1)
            keep.append(i)
    keep.append(len(emotions) - 1)
    keep = sorted(set(keep))
    # Split each constant-emotion run until linear interpolation reproduces its intensities.
    refined: list[int] = []
    for a, b in zip(keep, keep[1:]):
        refined.extend(_refine(values, a, b, tolerance) if emotions[a] == emotions[b] else [a])
    refined.append(keep[-1])
    return [(i / float(fps), emotions[i], float(values[i])) for i in sorted(set(refined))]


def _refine(values: np.ndarray, a: int, b: int, tolerance: float) -> list[int]:
    """Indices in [a, b) such that piecewise-linear interpolation matches `values` on [a, b]."""
    kept: list[int] = []
    pending = [(a, b)]
    while pending:
        lo, hi = pending.pop()
        kept.append(lo)
        if hi - lo < 2:
            continue
        span = np.arange(lo, hi + 1)
        error = np.abs(values[lo : hi + 1] - np.interp(span, [lo, hi], [values[lo], values[hi]]))
        worst = int(np.argmax(error))
        if error[worst] > tolerance:
            pending += [(lo, lo + worst), (lo + worst, hi)]
    return kept
