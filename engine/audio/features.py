"""Log-mel features, the only audio representation the model sees.

Normalisation uses fixed constants, never per-utterance statistics: the features of a sample do not
depend on the rest of the recording, so a clip, a chunk of it and a live stream all encode alike.
The log floor maps to exactly 0, so digital silence, batch padding and the encoder's zero padding
are the same value.
"""

from __future__ import annotations

import math

import librosa
import numpy as np

SAMPLE_RATE = 16000
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
        raise ValueError(f"log_mel needs mono audio [n_samples], got shape {audio.shape}; mix channels down first")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"log_mel needs float audio in [-1, 1], got {audio.dtype}; divide integer PCM by its range")
    if audio.size == 0:
        raise ValueError("log_mel got empty audio; the recording has no samples")
    if not np.all(np.isfinite(audio)):
        raise ValueError("log_mel got NaN or infinite samples; the recording is corrupt")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    audio = audio.astype(np.float32, copy=False)
    if sr != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=N_MELS,
        fmin=F_MIN,
        fmax=F_MAX,
    )
    features = np.log(np.maximum(mel, LOG_FLOOR) / LOG_FLOOR) / LOG_SCALE
    return np.ascontiguousarray(features.T, dtype=np.float32)


def n_mel_frames(n_samples: int) -> int:
    """Number of log-mel frames `log_mel` returns for n_samples at 16 kHz."""
    return 1 + n_samples // HOP_LENGTH


def n_motion_frames(n_samples: int, fps: float, sr: int = SAMPLE_RATE) -> int:
    """Motion frames covering a recording: ceil(duration * fps), as engine.data.motion renders them."""
    return max(1, math.ceil(n_samples / sr * fps - 1e-9))
