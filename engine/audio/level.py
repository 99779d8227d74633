"""One speech level for every take: scale the recording so its voiced part sits at a fixed loudness.

The model's log-mel features use fixed constants (engine.audio.features), so a recording made 20 dB
quieter would look like a different, softer voice, and a recording's noise floor would sit at a
different height under the speech. Training clips and user takes both pass through
`normalize_level`, so the model sees speech at one level and only the noise and the voice vary.
The level is measured on the louder frames only: pauses do not change it.

`LevelMeter` measures a recording that arrives in pieces (a long take read from disk) and gives the
same gain as the whole array: `normalize_level` is the meter fed once.
"""

from __future__ import annotations

import numpy as np

TARGET_DBFS = -23.0  # RMS of the active speech after normalisation
FRAME = 320  # 20 ms at 16 kHz
ACTIVE_SHARE = 0.3  # the loudest 30 % of frames count as speech
MAX_GAIN_DB = 40.0  # never lift a near-silent file by more than this (it would only raise hiss)
PEAK_LIMIT = 0.99
SILENT_FILE_DBFS = -55.0  # a recording whose loudest frames are quieter than this holds no speech


class LevelMeter:
    """Frame energies and the peak of a recording fed in pieces of any size, in order."""

    def __init__(self) -> None:
        self.energies: list[np.ndarray] = []  # mean square of each whole 20 ms frame
        self.tail = np.zeros(0, dtype=np.float64)  # samples of the frame not yet complete
        self.peak = 0.0
        self.n_samples = 0

    def push(self, piece: np.ndarray) -> None:
        x = np.asarray(piece, dtype=np.float64).reshape(-1)
        if x.size:
            self.peak = max(self.peak, float(np.abs(x).max()))
        self.n_samples += x.size
        x = np.concatenate([self.tail, x]) if self.tail.size else x
        whole = len(x) // FRAME
        self.energies.append((x[: whole * FRAME].reshape(whole, FRAME) ** 2).mean(axis=1))
        self.tail = x[whole * FRAME :].copy()

    def level_dbfs(self) -> float:
        """RMS level (dBFS) of the loudest ACTIVE_SHARE of 20 ms frames; -inf for digital silence.
        A recording shorter than one frame is one frame; samples after the last whole frame count
        for nothing."""
        energy = np.concatenate(self.energies) if self.energies else np.zeros(0)
        if energy.size == 0:
            energy = np.array([(self.tail**2).mean()]) if self.tail.size else np.zeros(1)
        energy = np.sort(energy)[::-1]
        power = float(energy[: max(1, int(np.ceil(ACTIVE_SHARE * len(energy))))].mean())
        return 10.0 * np.log10(power) if power > 0 else -np.inf

    def gain(self, target_dbfs: float = TARGET_DBFS) -> float | None:
        """The factor that brings the active speech to `target_dbfs` with peaks at most PEAK_LIMIT;
        None for a recording without speech (it stays as it is: lifting it would only raise hiss)."""
        level = self.level_dbfs()
        if not level > SILENT_FILE_DBFS:
            return None
        gain = 10.0 ** (min(target_dbfs - level, MAX_GAIN_DB) / 20.0)
        if self.peak * gain > PEAK_LIMIT:
            gain *= PEAK_LIMIT / (self.peak * gain)
        return gain


def apply_gain(audio: np.ndarray, gain: float | None) -> np.ndarray:
    """`audio` (float32) times `gain` as float32, sample by sample: pieces give the whole's result."""
    x = np.asarray(audio, dtype=np.float32)
    return x.copy() if gain is None else (x * gain).astype(np.float32)


def active_level_dbfs(audio: np.ndarray) -> float:
    """RMS level (dBFS) of the loudest ACTIVE_SHARE of 20 ms frames; -inf for digital silence."""
    meter = LevelMeter()
    meter.push(audio)
    return meter.level_dbfs()


def normalize_level(audio: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """`audio` scaled so its active speech is at `target_dbfs` (peaks limited to 0.99), float32."""
    x = np.asarray(audio, dtype=np.float32)
    meter = LevelMeter()
    meter.push(x)
    return apply_gain(x, meter.gain(target_dbfs))
