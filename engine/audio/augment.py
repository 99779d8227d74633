"""Make clean TTS audio sound like a recording: room reverb, background noise, microphone/phone-line
colouring, a codec-like resampling round trip, and a level change.

Synthetic speech is studio-clean; user recordings are not. Training on both closes that gap. Every
effect keeps the clip's length exactly, so phone times and motion frames stay aligned with the audio.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

# Chance that each effect runs at strength 1 (scaled by strength).
_P_REVERB, _P_NOISE, _P_EQ, _P_RESAMPLE, _P_CODEC = 0.5, 0.7, 0.5, 0.3, 0.3
_NOISE_KINDS = ("white", "pink", "babble")
_ROUND_TRIP_RATES = (8000, 11025, 12000)
# Lossy codecs a recording may have passed through (ffmpeg encoder, bit rate); each decoded copy is
# re-aligned to the input, since encoders add a few milliseconds of delay.
_CODECS = (
    ("libmp3lame", "mp3", "24k"),
    ("libmp3lame", "mp3", "48k"),
    ("libopus", "ogg", "12k"),
    ("libopus", "ogg", "24k"),
)
_CODEC_MAX_SHIFT = 4000  # samples searched for the encoder delay


def _check(audio: np.ndarray, sr: int, strength: float) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be mono 1-D samples, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got {audio.dtype}; divide int16 by 32768")
    if not np.isfinite(audio).all():
        raise ValueError("audio holds NaN/inf")
    if int(sr) != sr or sr < 8000:
        raise ValueError(f"sample rate must be an integer >= 8000 Hz, got {sr!r}")
    if not (math.isfinite(strength) and 0.0 <= strength <= 2.0):
        raise ValueError(f"strength must be in [0, 2] (1 = default), got {strength!r}")
    return audio.astype(np.float64)


def _power(x: np.ndarray) -> float:
    """Mean power over the louder half of 20 ms frames, so pauses do not inflate the SNR."""
    hop = 320
    n = max(1, len(x) // hop)
    frames = x[: n * hop].reshape(n, -1) if len(x) >= hop else x[None]
    energy = np.sort((frames**2).mean(axis=1))
    return float(energy[len(energy) // 2 :].mean()) + 1e-12


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def _babble(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Several 'talkers': speech-band noise switched on and off at syllable rate (3-6 Hz)."""
    band = butter(2, [300.0, min(3400.0, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    t = np.arange(n) / sr
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 8))):
        rate = rng.uniform(3.0, 6.0)
        envelope = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 2
        out += sosfilt(band, _pink(n, rng)) * envelope
    return out


def _add_noise(x: np.ndarray, sr: int, rng: np.random.Generator, strength: float, info: dict) -> np.ndarray:
    kind = _NOISE_KINDS[int(rng.integers(len(_NOISE_KINDS)))]
    n = len(x)
    noise = (
        rng.standard_normal(n)
        if kind == "white"
        else _pink(n, rng)
        if kind == "pink"
        else _babble(n, sr, rng)
    )
    # 0-30 dB at strength 1, the loud end more often: most recordings are clean-ish, some are not
    snr_db = float(max(0.0, 40.0 - 40.0 * min(strength, 1.5) * rng.uniform() ** 1.5))
    noise *= math.sqrt(_power(x) / (_power(noise) * 10 ** (snr_db / 10)))
    info["noise"] = {"kind": kind, "snr_db": round(snr_db, 2)}
    return x + noise


def _reverb(x: np.ndarray, sr: int, rng: np.random.Generator, strength: float, info: dict) -> np.ndarray:
    """A synthetic room: a direct path plus exponentially decaying noise (RT60 = time to -60 dB)."""
    rt60 = float(rng.uniform(0.1, 0.1 + 0.7 * strength))
    length = max(2, int(rt60 * sr))
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.908 * t / rt60)  # ln(1000) = 6.908
    tail[: int(0.002 * sr)] = 0.0  # first reflection after ~2 ms
    wet = float(rng.uniform(0.1, 0.3 + 0.4 * min(strength, 1.0)))
    ir = tail * wet / (np.sqrt((tail**2).sum()) + 1e-12)
    ir[0] = 1.0
    info["reverb"] = {"rt60_s": round(rt60, 3), "wet": round(wet, 3)}
    return fftconvolve(x, ir)[: len(x)]


def _peaking(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking biquad as one second-order section."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_gain, -2 * np.cos(w0), 1 - alpha * a_gain])
    a = np.array([1 + alpha / a_gain, -2 * np.cos(w0), 1 - alpha / a_gain])
    return np.concatenate([b / a[0], a / a[0]])[None]


def _equalise(x: np.ndarray, sr: int, rng: np.random.Generator, strength: float, info: dict) -> np.ndarray:
    nyquist = sr / 2
    if rng.random() < 0.5:  # band-limited channel: telephone / cheap microphone
        low = float(rng.uniform(60.0, 60.0 + 300.0 * min(strength, 1.0)))
        high = float(min(rng.uniform(7500.0 - 4000.0 * min(strength, 1.0), 7500.0), 0.95 * nyquist))
        sos = butter(2, [low, high], btype="bandpass", fs=sr, output="sos")
        info["eq"] = {"kind": "band", "low_hz": round(low, 1), "high_hz": round(high, 1)}
    else:  # a resonance or dip somewhere in the speech band
        freq = float(np.exp(rng.uniform(np.log(150.0), np.log(min(6000.0, 0.8 * nyquist)))))
        gain = float(rng.uniform(-9.0, 9.0) * strength)
        q = float(rng.uniform(0.5, 3.0))
        sos = _peaking(freq, gain, q, sr)
        info["eq"] = {"kind": "peak", "freq_hz": round(freq, 1), "gain_db": round(gain, 2), "q": round(q, 2)}
    return sosfilt(sos, x)


def _resample_round_trip(x: np.ndarray, sr: int, rng: np.random.Generator, info: dict) -> np.ndarray:
    low = [r for r in _ROUND_TRIP_RATES if r < sr]
    if not low:
        return x
    rate = low[int(rng.integers(len(low)))]
    g = math.gcd(rate, int(sr))
    y = resample_poly(resample_poly(x, rate // g, int(sr) // g), int(sr) // g, rate // g)
    info["resample_hz"] = rate
    if len(y) >= len(x):
        return y[: len(x)]
    return np.pad(y, (0, len(x) - len(y)))


def _codec_round_trip(x: np.ndarray, sr: int, rng: np.random.Generator, info: dict) -> np.ndarray:
    """Encode and decode with a lossy codec through ffmpeg; unchanged when ffmpeg or the codec is missing."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    import soundfile as sf

    codec, ext, rate = _CODECS[int(rng.integers(len(_CODECS)))]
    if shutil.which("ffmpeg") is None:
        return x
    with tempfile.TemporaryDirectory(prefix="dualface-codec-") as tmp:
        src, coded, back = Path(tmp, "in.wav"), Path(tmp, f"coded.{ext}"), Path(tmp, "out.wav")
        peak = max(float(np.abs(x).max()), 1e-9)
        sf.write(src, (x / max(peak, 1.0)).astype(np.float32), int(sr), subtype="FLOAT")
        quiet = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
        try:
            subprocess.run(
                [*quiet, "-i", str(src), "-c:a", codec, "-b:a", rate, str(coded)], check=True, timeout=60
            )
            subprocess.run(
                [*quiet, "-i", str(coded), "-ar", str(int(sr)), "-ac", "1", str(back)], check=True, timeout=60
            )
        except (subprocess.SubprocessError, OSError):
            return x
        y, _ = sf.read(back, dtype="float64", always_2d=False)
    y = y * max(peak, 1.0)
    shift = _best_shift(x, y, _CODEC_MAX_SHIFT)
    y = y[shift:] if shift >= 0 else np.concatenate([np.zeros(-shift), y])
    y = y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
    info["codec"] = {"codec": codec, "bitrate": rate, "delay_samples": int(shift)}
    return y


def _best_shift(x: np.ndarray, y: np.ndarray, max_shift: int) -> int:
    """Delay of `y` against `x` in samples (|delay| <= max_shift), by FFT cross-correlation."""
    n = min(len(x), len(y))
    if n < 32:
        return 0
    max_shift = min(max_shift, n // 2 - 1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(y[:n], size) * np.conj(np.fft.rfft(x[:n], size)), size)
    lags = np.concatenate([np.arange(0, max_shift + 1), np.arange(-max_shift, 0)])
    return int(lags[int(np.argmax(corr[lags]))])


def augment_with_info(
    audio: np.ndarray, sr: int, rng: np.random.Generator, strength: float = 1.0
) -> tuple[np.ndarray, dict]:
    """`augment`, plus a JSON-ready record of what was applied (for the corpus metadata)."""
    x = _check(audio, sr, strength)
    info: dict = {}
    if strength > 0:
        p = min(strength, 1.0)
        if rng.random() < _P_REVERB * p:
            x = _reverb(x, sr, rng, strength, info)
        if rng.random() < _P_NOISE * p:
            x = _add_noise(x, sr, rng, strength, info)
        if rng.random() < _P_EQ * p:
            x = _equalise(x, sr, rng, strength, info)
        if rng.random() < _P_RESAMPLE * p:
            x = _resample_round_trip(x, sr, rng, info)
        if rng.random() < _P_CODEC * p:
            x = _codec_round_trip(x, sr, rng, info)
        gain_db = float(rng.uniform(-6.0, 6.0) * strength)
        x = x * 10 ** (gain_db / 20)
        info["gain_db"] = round(gain_db, 2)
    peak = float(np.abs(x).max())
    if peak > 0.99:  # never clip: a clipped take is a different (and unwanted) distortion
        x = x * (0.99 / peak)
        info["limited"] = True
    return x.astype(np.float32), info


def augment(audio: np.ndarray, sr: int, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A randomly degraded copy of `audio` (mono float), same length, finite, within [-1, 1].

    strength 0 returns the input unchanged (as float32); 1 is the default mix; up to 2 is harsher.
    Deterministic for `rng`'s state.
    """
    return augment_with_info(audio, sr, rng, strength)[0]
