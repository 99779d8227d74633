"""What the voice is doing frame by frame: loudness, pitch, pauses and pitch accents.

Blinks cluster at pauses, heads nod and brows rise on pitch accents; these are the cues the layers
need, measured at the animation's frame rate from 16 kHz mono audio with plain numpy (no model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F0_RANGE = (70.0, 400.0)  # Hz: adult speaking voices
PAUSE_SECONDS = 0.2  # quieter stretches at least this long are pauses (phrase boundaries)
SILENCE_BELOW_PEAK_DB = 32.0  # a frame this far below the loud frames is silent
ACCENT_GAP_SECONDS = 0.3  # accents closer than this are one accent
BLOCK_FRAMES = 1024


@dataclass(frozen=True)
class Prosody:
    fps: float
    energy: np.ndarray  # [T] 0..1: loudness relative to the clip's loud frames
    speaking: np.ndarray  # [T] bool
    f0: np.ndarray  # [T] Hz, 0 where unvoiced
    pause_starts: np.ndarray  # seconds at which pauses begin (after speech)
    accents: np.ndarray  # [K] seconds of pitch accents
    accent_strength: np.ndarray  # [K] 0..1

    @property
    def n_frames(self) -> int:
        return int(len(self.energy))


def _frames(
    audio: np.ndarray, sample_rate: int, fps: float, first: int, count: int, window: float
) -> np.ndarray:
    """[count, W] windows of ``window`` seconds centred on frames first.. (zero-padded at the ends)."""
    size = int(round(window * sample_rate))
    centres = np.round(np.arange(first, first + count) / fps * sample_rate).astype(np.int64)
    padded = np.pad(audio, (size, size + 1))
    idx = centres[:, None] + np.arange(size)[None] + size - size // 2
    return padded[np.clip(idx, 0, len(padded) - 1)]


def _f0(windows: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pitch by normalised autocorrelation (0 where no clear period)."""
    w = windows - windows.mean(axis=1, keepdims=True)
    w = w * np.hanning(w.shape[1])[None]
    n = int(2 ** np.ceil(np.log2(2 * w.shape[1])))
    spectrum = np.fft.rfft(w, n=n)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, n=n)[:, : w.shape[1]]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(sample_rate / F0_RANGE[1]), int(sample_rate / F0_RANGE[0])
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(ac)), lag]
    return np.where(peak > 0.45, sample_rate / lag, 0.0)


def measure(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> Prosody:
    """Prosody of ``audio`` (float mono) at ``fps`` for ``n_frames`` frames."""
    audio = np.asarray(audio, dtype=np.float64).ravel()
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or inf")
    rms_db = np.empty(n_frames)
    f0 = np.zeros(n_frames)
    for start in range(0, n_frames, BLOCK_FRAMES):  # in blocks: memory stays flat for long takes
        count = min(BLOCK_FRAMES, n_frames - start)
        windows = _frames(audio, sample_rate, fps, start, count, 0.04)
        rms_db[start : start + count] = 10.0 * np.log10(np.mean(windows**2, axis=1) + 1e-10)
        f0[start : start + count] = _f0(windows, sample_rate)
    loud = np.percentile(rms_db, 95) if n_frames else 0.0
    speaking = (rms_db > loud - SILENCE_BELOW_PEAK_DB) & (rms_db > -60.0)
    energy = np.clip((rms_db - (loud - SILENCE_BELOW_PEAK_DB)) / SILENCE_BELOW_PEAK_DB, 0.0, 1.0)
    f0 = np.where(speaking, f0, 0.0)
    return Prosody(
        fps=float(fps),
        energy=energy.astype(np.float32),
        speaking=speaking,
        f0=f0.astype(np.float32),
        pause_starts=_pause_starts(speaking, fps),
        **_accents(energy, f0, fps),
    )


def _pause_starts(speaking: np.ndarray, fps: float) -> np.ndarray:
    starts, run, spoke = [], 0, False
    need = int(np.ceil(PAUSE_SECONDS * fps))
    for i, s in enumerate(speaking):
        if s:
            spoke, run = True, 0
            continue
        run += 1
        if spoke and run == need:
            starts.append((i - need + 1) / fps)
    return np.asarray(starts, dtype=np.float64)


def _accents(energy: np.ndarray, f0: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Pitch accents: voiced frames where pitch and loudness peak together, strongest first kept."""
    voiced = f0 > 0
    if voiced.sum() < 3:
        return {"accents": np.zeros(0), "accent_strength": np.zeros(0)}
    semitones = np.where(voiced, 12.0 * np.log2(np.maximum(f0, 1.0) / np.median(f0[voiced])), 0.0)
    score = np.where(voiced, 0.5 * np.clip(semitones / 4.0, -1, 1) + energy, 0.0)
    width = max(1, int(round(0.08 * fps)))
    kernel = np.ones(width) / width
    smooth = np.convolve(score, kernel, mode="same")
    peaks = [i for i in range(1, len(smooth) - 1) if smooth[i] >= smooth[i - 1] and smooth[i] > smooth[i + 1]]
    threshold = np.percentile(smooth[voiced], 60)
    peaks = sorted((i for i in peaks if smooth[i] > threshold), key=lambda i: -smooth[i])
    kept: list[int] = []
    for i in peaks:
        if all(abs(i - j) >= ACCENT_GAP_SECONDS * fps for j in kept):
            kept.append(i)
    kept.sort()
    top = smooth[kept].max() if kept else 1.0
    return {
        "accents": np.asarray(kept, dtype=np.float64) / fps,
        "accent_strength": np.clip(smooth[kept] / max(top, 1e-6), 0.0, 1.0),
    }
