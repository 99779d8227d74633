"""What the closure detector hears: log-mel with the speaker and the channel taken out.

A bilabial is heard in how the spectrum changes (a stop's silence and flat burst, a nasal's murmur,
formants falling into and out of the closure), not in a voice's timbre or a microphone's colour.
So each band's level is taken relative to its own loudness-weighted mean over the surrounding
NORM_HALF_WINDOW frames (cepstral-mean normalisation, done locally so a take of any length, or a
piece of it with enough margin, gets the same numbers), and one more channel says how loud the frame
is against that neighbourhood: a stop closure is a dip, whatever the recording's level.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

NORM_HALF_WINDOW = 150  # log-mel frames (10 ms) each side: 1.5 s, several syllables of any voice
N_INPUTS = 81  # 80 normalised bands + relative loudness


INPUT_KINDS = ("normalised", "envelope", "raw")
ENVELOPE_COEFFICIENTS = 20  # cepstral coefficients the envelope input keeps (of 80)


def detector_input(mel: np.ndarray, kind: str = "normalised") -> np.ndarray:
    """[Tm, 80] log-mel (engine.audio.features) -> [Tm, N_INPUTS] float32 detector input.

    `kind`: "normalised" as above; "envelope" also smooths each frame along the bands (the first
    ENVELOPE_COEFFICIENTS cepstral coefficients), so the harmonics of a high voice, resolved in the
    low bands, do not show; "raw" passes the log-mel and the loudness as they are (the ablation that
    shows what the normalisation is worth, engine.closure.train --input raw)."""
    if kind not in INPUT_KINDS:
        raise ValueError(f"detector input {kind!r} is not one of {', '.join(INPUT_KINDS)}")
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[0] == 0:
        raise ValueError(f"detector_input needs log-mel [frames, bands], got shape {mel.shape}")
    loudness = mel.mean(axis=1)  # log-mel is >= 0, silence exactly 0: silent frames weigh nothing
    if kind == "raw":
        return np.ascontiguousarray(np.concatenate([mel, loudness[:, None]], axis=1), dtype=np.float32)
    weight = _window_sum(loudness[:, None])[:, 0]
    safe = np.maximum(weight, 1e-6)[:, None]
    band_mean = _window_sum(mel * loudness[:, None]) / safe
    loud_mean = _window_sum((loudness * loudness)[:, None]) / safe
    has_speech = (weight > 1e-6)[:, None]
    bands = np.where(has_speech, mel - band_mean, 0.0)
    if kind == "envelope":
        bands = bands @ _envelope_matrix(mel.shape[1])
    relative = np.where(has_speech, loudness[:, None] - loud_mean, 0.0)
    return np.ascontiguousarray(np.concatenate([bands, relative], axis=1), dtype=np.float32)


@lru_cache(maxsize=2)
def _envelope_matrix(n_bands: int) -> np.ndarray:
    """[n, n] that keeps the first ENVELOPE_COEFFICIENTS of an orthonormal DCT-II along the bands."""
    k = np.arange(n_bands)[:, None]
    dct = np.cos(np.pi * k * (2 * np.arange(n_bands)[None] + 1) / (2 * n_bands)) * np.sqrt(2.0 / n_bands)
    dct[0] /= np.sqrt(2.0)
    keep = dct[:ENVELOPE_COEFFICIENTS]
    return keep.T @ keep


def _window_sum(x: np.ndarray) -> np.ndarray:
    """Sum over frames t - NORM_HALF_WINDOW .. t + NORM_HALF_WINDOW (clipped at the ends) of x [T, C]."""
    cumulative = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    t = np.arange(x.shape[0])
    lo = np.maximum(t - NORM_HALF_WINDOW, 0)
    hi = np.minimum(t + NORM_HALF_WINDOW + 1, x.shape[0])
    return cumulative[hi] - cumulative[lo]
