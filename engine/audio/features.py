"""Log-mel features, the only audio representation the model sees.

Normalisation uses fixed constants, never per-utterance statistics: the features of a sample do not
depend on the rest of the recording, so a clip, a chunk of it and a live stream all encode alike.
The log floor maps to exactly 0, so digital silence, batch padding and the encoder's zero padding
are the same value.

The computation is librosa's `feature.melspectrogram` (Hann window, centred frames with zero
padding, Slaney mel scale and norm) written out with numpy (and torch.stft when torch is already
loaded): importing librosa costs seconds of start-up (it pulls in scipy.signal and numba), which the
CLI and the add-on should not pay on every take, and the numpy runtime must not import torch.
tests/test_features.py checks both paths equal librosa's.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE as SAMPLE_RATE

N_MELS = 80
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms -> 100 frames per second
N_FFT = 512
F_MIN = 20.0
F_MAX = 7600.0
LOG_FLOOR = 1e-6  # mel power below this (about -60 dB under speech) is silence
LOG_SCALE = 5.0  # divides ln(power / floor) so speech lands roughly in 0..3.5
SILENCE_VALUE = 0.0  # log-mel value of silence (and of batch padding)
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH


def log_mel(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono audio in [-1, 1] -> [Tm, 80] float32 log-mel, frame i centred at i * 10 ms.

    Audio at another rate is resampled to 16 kHz first. Tm = 1 + n_samples // 160 (at 16 kHz).
    """
    audio = np.asarray(audio)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(
            f"log_mel needs mono audio [n_samples], got shape {audio.shape}; mix channels down first"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(
            f"log_mel needs float audio in [-1, 1], got {audio.dtype}; divide integer PCM by its range"
        )
    if audio.size == 0:
        raise ValueError("log_mel got empty audio; the recording has no samples")
    if not np.all(np.isfinite(audio)):
        raise ValueError("log_mel got NaN or infinite samples; the recording is corrupt")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    audio = audio.astype(np.float32, copy=False)
    if sr != SAMPLE_RATE:
        import librosa  # only here: resampling is the caller's job on the fast path (engine.audio.io)

        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
    mel = power_spectrogram(audio) @ mel_filterbank().T  # [Tm, 80]
    features = np.log(np.maximum(mel, LOG_FLOOR) / LOG_FLOOR) / LOG_SCALE
    return np.ascontiguousarray(features, dtype=np.float32)


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """|STFT|^2 [Tm, n_fft/2+1] with centred frames and zero padding (librosa.stft, center=True).

    torch.stft is about 2x faster than numpy's FFT on CPU, but importing torch costs far more than a
    take's whole STFT: it is used only when some caller has already loaded torch.
    """
    if "torch" not in sys.modules:
        return power_spectrogram_numpy(audio)
    import torch

    spectrum = torch.stft(
        torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        window=torch.from_numpy(_window()),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return (spectrum.real.square() + spectrum.imag.square()).T.contiguous().numpy()


def power_spectrogram_numpy(audio: np.ndarray, block_frames: int = 2048) -> np.ndarray:
    """`power_spectrogram` with numpy's FFT (float64 inside, float32 out), in blocks of frames."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    n_frames = 1 + audio.shape[0] // HOP_LENGTH
    padded = np.zeros(audio.shape[0] + N_FFT, dtype=np.float32)
    padded[N_FFT // 2 : N_FFT // 2 + audio.shape[0]] = audio
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    power = np.empty((n_frames, N_FFT // 2 + 1), dtype=np.float32)
    window = _window()
    for first in range(0, n_frames, block_frames):
        spectrum = np.fft.rfft(frames[first : first + block_frames] * window, axis=1)
        power[first : first + block_frames] = spectrum.real**2 + spectrum.imag**2
    return power


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Periodic Hann of WIN_LENGTH samples, zero-padded to N_FFT in the middle (as librosa does)."""
    n = np.arange(WIN_LENGTH)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hann, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """[80, n_fft/2+1] triangular filters with Slaney area normalisation (librosa.filters.mel)."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def n_mel_frames(n_samples: int) -> int:
    """Number of log-mel frames `log_mel` returns for n_samples at 16 kHz."""
    return 1 + n_samples // HOP_LENGTH


def n_motion_frames(n_samples: int, fps: float, sr: int = SAMPLE_RATE) -> int:
    """Motion frames covering a recording: ceil(duration * fps), as engine.data.motion renders them."""
    return max(1, math.ceil(n_samples / sr * fps - 1e-9))
