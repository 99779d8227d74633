"""One speech level for every take: scale the recording so its voiced part sits at a fixed loudness.

The model's log-mel features use fixed constants (engine.audio.features), so a recording made 20 dB
quieter would look like a different, softer voice, and a recording's noise floor would sit at a
different height under the speech. Training clips and user takes both pass through
`normalize_level`, so the model sees speech at one level and only the noise and the voice vary.
The level is measured on the louder frames only: pauses do not change it.
"""

from __future__ import annotations

import numpy as np

TARGET_DBFS = -23.0  # RMS of the active speech after normalisation
FRAME = 320  # 20 ms at 16 kHz
ACTIVE_SHARE = 0.3  # the loudest 30 % of frames count as speech
MAX_GAIN_DB = 40.0  # never lift a near-silent file by more than this (it would only raise hiss)
PEAK_LIMIT = 0.99
SILENT_FILE_DBFS = -55.0  # a recording whose loudest frames are quieter than this holds no speech


def active_level_dbfs(audio: np.ndarray) -> float:
    """RMS level (dBFS) of the loudest ACTIVE_SHARE of 20 ms frames; -inf for digital silence."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n = max(1, len(x) // FRAME)
    frames = x[: n * FRAME].reshape(n, -1) if len(x) >= FRAME else x[None]
    energy = np.sort((frames**2).mean(axis=1))[::-1]
    top = energy[: max(1, int(np.ceil(ACTIVE_SHARE * len(energy))))]
    power = float(top.mean())
    return 10.0 * np.log10(power) if power > 0 else -np.inf


def normalize_level(audio: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """`audio` scaled so its active speech is at `target_dbfs` (peaks limited to 0.99), float32."""
    x = np.asarray(audio, dtype=np.float32)
    level = active_level_dbfs(x)
    if not level > SILENT_FILE_DBFS:  # a silent recording stays silent: lifting it would only raise hiss
        return x.copy()
    gain_db = min(target_dbfs - level, MAX_GAIN_DB)
    gain = 10.0 ** (gain_db / 20.0)
    peak = float(np.abs(x).max()) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (x * gain).astype(np.float32)
