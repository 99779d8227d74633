"""The tongue tip on the alveolar ridge for t, d, n, l, th: part of the lips layer (articulation).

The tongue rides the jaw; for the coronal consonants its tip must rise to the ridge behind the
upper teeth whatever the jaw is doing. Given the phones the engine heard and the jaw's rigid
motion, this gives the weight of the tongue's tip-raise shape that puts the tip on the ridge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CORONALS = frozenset({"T", "D", "N", "L", "TH", "DH"})
RAMP_SECONDS = 0.05  # the tip leaves and reaches the ridge this long around the consonant
MAX_RAISE = 2.0  # the tip-raise shape's slider maximum


def coronal_curve(phones: Sequence, fps: float, n_frames: int) -> np.ndarray:
    """[T] 0..1: 1 while a coronal consonant is held, ramping in and out around it."""
    times = np.arange(n_frames) / fps
    curve = np.zeros(n_frames)
    for p in phones:
        if p.phone not in CORONALS:
            continue
        rise = np.clip((times - (p.start - RAMP_SECONDS)) / RAMP_SECONDS, 0.0, 1.0)
        fall = np.clip(((p.end + RAMP_SECONDS) - times) / RAMP_SECONDS, 0.0, 1.0)
        curve = np.maximum(curve, np.minimum(rise, fall))
    return curve


def tip_weights(
    coronal: np.ndarray, rotations: np.ndarray, translations: np.ndarray, tip: np.ndarray, ridge: np.ndarray
) -> np.ndarray:
    """[T] tip-raise weights: the share of the shape (tip -> ridge at rest) that meets the ridge.

    ``rotations [T,3,3]`` / ``translations [T,3]`` move the tongue with the jaw; the tip-raise
    shape moves the tip by ``ridge - tip`` in the tongue's rest frame, so the weight solves
    ``R (tip + w d) + t = ridge`` in the least-squares sense.
    """
    d = (ridge - tip).astype(np.float64)
    local_ridge = np.einsum("tji,tj->ti", rotations, ridge[None] - translations)  # R^T (ridge - t)
    w = ((local_ridge - tip[None]) @ d) / float(d @ d)
    return (coronal * np.clip(w, 0.0, MAX_RAISE)).astype(np.float32)
