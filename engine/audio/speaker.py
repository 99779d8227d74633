"""Change who is speaking, not only the room: vocal-tract length, pitch and speaking rate.

A model trained on a few TTS voices learns those voices. Real speakers differ mostly in vocal-tract
length (formants move together by a factor of about 0.8-1.25 between large men and children) and in
pitch (an octave and more); a speaking rate differs per person and per take. These transforms make
new speakers from each synthetic one:

- `shift_formants`: scales the spectral envelope along frequency (cepstrally smoothed per frame),
  keeping the harmonics, so formants move while the pitch stays.
- `change_speaker`: pitch shift (librosa's resample + phase vocoder, which moves formants with the
  pitch) followed by a formant correction, so pitch and vocal-tract length change independently.
- `change_rate`: time stretch; the caller rescales the phone times by the returned factor, so the
  motion stays aligned with the new audio.

All take and return mono float audio; lengths are kept except by `change_rate`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

STFT_SIZE = 1024  # this module's own STFT for formant, pitch and rate changes (not the log-mel's)
STFT_HOP = 256
LIFTER = 36  # cepstral coefficients kept for the envelope: above the formants, below the pitch

# Ranges of the random speaker draw. The training corpus draws inside TRAIN_*; the "extreme" test
# transforms lie outside them, so a held-out test can ask for speakers no training clip resembles.
TRAIN_FORMANT_RANGE = (0.86, 1.16)
TRAIN_PITCH_RANGE = (-5.0, 5.0)  # semitones
TRAIN_RATE_RANGE = (0.8, 1.25)
EXTREME_FORMANT_CHOICES = (0.8, 1.24)
EXTREME_PITCH_CHOICES = (-8.0, 8.0)


@dataclass(frozen=True)
class SpeakerChange:
    """One speaker transform: formant ratio (vocal tract), pitch in semitones, speaking-rate factor."""

    formant_ratio: float = 1.0
    pitch_semitones: float = 0.0
    rate: float = 1.0

    def to_dict(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()}

    @classmethod
    def random(cls, rng: np.random.Generator, extreme: bool = False) -> SpeakerChange:
        if extreme:
            return cls(
                float(rng.choice(EXTREME_FORMANT_CHOICES)) * float(rng.uniform(0.98, 1.02)),
                float(rng.choice(EXTREME_PITCH_CHOICES)) + float(rng.uniform(-1.0, 1.0)),
                float(rng.uniform(*TRAIN_RATE_RANGE)),
            )
        formant = math.exp(rng.uniform(math.log(TRAIN_FORMANT_RANGE[0]), math.log(TRAIN_FORMANT_RANGE[1])))
        return cls(formant, float(rng.uniform(*TRAIN_PITCH_RANGE)), float(rng.uniform(*TRAIN_RATE_RANGE)))


def _stft(x: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.stft(x, n_fft=STFT_SIZE, hop_length=STFT_HOP, window="hann", center=True)


def _envelope(magnitude: np.ndarray) -> np.ndarray:
    """Log spectral envelope per frame [F, T] by cepstral liftering of the log magnitude."""
    log_mag = np.log(np.maximum(magnitude, 1e-8))
    cepstrum = np.fft.irfft(log_mag, axis=0)
    cepstrum[LIFTER:-LIFTER] = 0.0
    return np.fft.rfft(cepstrum, axis=0).real[: magnitude.shape[0]]


def shift_formants(audio: np.ndarray, sr: int, ratio: float) -> np.ndarray:
    """Move the formants by `ratio` (> 1: shorter vocal tract) and keep pitch and length."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    if abs(ratio - 1.0) < 1e-3 or x.size < STFT_SIZE:
        return x.copy()
    spec = _stft(x)
    magnitude = np.abs(spec)
    env = _envelope(magnitude)
    n_bins = magnitude.shape[0]
    source = np.minimum(np.arange(n_bins) / ratio, n_bins - 1)  # new envelope at k = old at k / ratio
    below = np.floor(source).astype(int)
    above = np.minimum(below + 1, n_bins - 1)
    frac = (source - below)[:, None]
    warped = env[below] * (1.0 - frac) + env[above] * frac
    gain = np.exp(np.clip(warped - env, -6.0, 6.0))
    out = librosa.istft(spec * gain, hop_length=STFT_HOP, window="hann", center=True, length=len(x))
    return out.astype(np.float32)


def change_speaker(audio: np.ndarray, sr: int, change: SpeakerChange) -> np.ndarray:
    """Pitch and vocal-tract length changed independently; same length as the input."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    moved = 1.0
    if abs(change.pitch_semitones) > 1e-3 and x.size >= STFT_SIZE:
        x = librosa.effects.pitch_shift(x, sr=sr, n_steps=change.pitch_semitones, n_fft=STFT_SIZE)
        moved = 2.0 ** (change.pitch_semitones / 12.0)  # the shift moved the formants this much too
    x = shift_formants(x, sr, change.formant_ratio / moved)
    return _limit(x)


def change_rate(audio: np.ndarray, rate: float) -> tuple[np.ndarray, float]:
    """Speech `rate` times as fast; returns (audio, time factor for phone times = 1 / rate)."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    if abs(rate - 1.0) < 1e-3 or x.size < STFT_SIZE:
        return x.copy(), 1.0
    y = librosa.effects.time_stretch(x, rate=rate, n_fft=STFT_SIZE)
    return _limit(y), len(y) / len(x)


def _limit(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32)
