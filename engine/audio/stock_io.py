"""Reading and resampling audio where soundfile and soxr are missing: a stock Blender.

Blender ships numpy but neither soundfile (libsndfile) nor soxr. PCM WAV, what most voice recordings
are, is read with the standard library's `wave`; every other format (float WAV, flac, ogg, mp3) is
decoded by Blender's own audio library `aud`, which also resamples: its best quality agrees with
soxr's HQ to about 3e-7. engine.audio.io uses these only when its usual libraries cannot be imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_without_soundfile(path: Path) -> tuple[np.ndarray, int]:
    """A recording as float32 [n, channels] in -1..1 and its sample rate."""
    samples, rate = read_pcm_wav(path)
    if samples is not None:
        return samples, rate
    sound = _aud().Sound(str(path))
    return np.ascontiguousarray(sound.data(), dtype=np.float32), int(sound.specs[0])


def resample_without_soxr(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 audio resampled by `aud` at its best quality."""
    resampled = _aud().Sound.buffer(np.ascontiguousarray(audio, dtype=np.float32)[:, None], float(rate))
    return np.ascontiguousarray(resampled.resample(float(target), 3).data()[:, 0], dtype=np.float32)


def _aud():
    try:
        import aud
    except ImportError:
        raise RuntimeError(
            "this Python has neither soundfile/soxr nor Blender's aud: install soundfile and soxr "
            "(pip install soundfile soxr), or use 16-bit PCM WAV at 16 kHz"
        ) from None
    return aud


def read_pcm_wav(path: Path) -> tuple[np.ndarray | None, int]:
    """A PCM WAV (8/16/24/32-bit) as float32 [n, channels] and its rate; (None, 0) for any other file
    (float or compressed WAV, flac, mp3...)."""
    import wave

    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        return None, 0
    if width == 1:
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 3:
        packed = np.frombuffer(raw, dtype=np.uint8)[: len(raw) // 3 * 3].reshape(-1, 3)
        widened = np.zeros((packed.shape[0], 4), dtype=np.uint8)
        widened[:, 1:] = packed  # little-endian: the 24 bits become the top of an int32
        values = widened.view("<i4")[:, 0].astype(np.float32) / 2.0**31
    elif width in (2, 4):
        kind = "<i2" if width == 2 else "<i4"
        values = np.frombuffer(raw, dtype=kind).astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        return None, 0
    return values[: len(values) // channels * channels].reshape(-1, channels), rate
