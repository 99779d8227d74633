"""Log-mel features: shape/timing contract, silence = 0, chunk-independence, clear input errors."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from engine.audio.features import (
    F_MAX,
    F_MIN,
    HOP_LENGTH,
    LOG_FLOOR,
    LOG_SCALE,
    N_FFT,
    N_MELS,
    WIN_LENGTH,
    log_mel,
    mel_filterbank,
    n_mel_frames,
    n_motion_frames,
)


def tone(freq: float, seconds: float, sr: int = 16000, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_shape_dtype_and_frame_count():
    audio = tone(440.0, 1.234)
    feats = log_mel(audio)
    assert feats.shape == (n_mel_frames(len(audio)), N_MELS) == (1 + len(audio) // HOP_LENGTH, 80)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()


def test_equals_librosa_melspectrogram():
    rng = np.random.default_rng(3)
    audio = (rng.normal(0, 0.2, 12345) * np.hanning(12345)).astype(np.float32)
    reference = librosa.feature.melspectrogram(
        y=audio,
        sr=16000,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=N_MELS,
        fmin=F_MIN,
        fmax=F_MAX,
    )
    expected = (np.log(np.maximum(reference, LOG_FLOOR) / LOG_FLOOR) / LOG_SCALE).T
    assert np.allclose(
        mel_filterbank(),
        librosa.filters.mel(sr=16000, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX),
        atol=1e-6,
    )
    assert np.allclose(log_mel(audio), expected, atol=1e-4)


def test_silence_is_exactly_zero_and_louder_is_larger():
    assert np.all(log_mel(np.zeros(8000, np.float32)) == 0.0)
    quiet, loud = log_mel(tone(300.0, 0.5, amplitude=0.01)), log_mel(tone(300.0, 0.5, amplitude=0.5))
    assert loud.mean() > quiet.mean() > 0.0


def test_a_tone_lights_up_its_mel_band():
    feats = log_mel(tone(1000.0, 0.5))
    centres = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=20.0, fmax=7600.0)[1:-1]
    peak = int(np.argmax(feats[10:-10].mean(0)))
    assert abs(centres[peak] - 1000.0) < 80.0


def test_features_of_a_chunk_match_the_whole_recording():
    """No per-utterance normalisation: interior frames of a chunk equal those of the full clip."""
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.1, 32000) * np.sin(np.linspace(0, 30, 32000)) ** 2).astype(np.float32)
    whole = log_mel(audio)
    start = 100 * HOP_LENGTH
    chunk = log_mel(audio[start : start + 8000])
    # frames at least half a window (2 hops) from the chunk's edges see identical samples
    assert np.allclose(chunk[2:-3], whole[100 + 2 : 100 + len(chunk) - 3], atol=1e-4)


def test_other_sample_rates_are_resampled():
    at_16k = log_mel(tone(500.0, 1.0))
    at_48k = log_mel(tone(500.0, 1.0, sr=48000), sr=48000)
    assert at_48k.shape == at_16k.shape
    assert np.abs(at_48k[5:-5] - at_16k[5:-5]).mean() < 0.05


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.zeros((2, 800), np.float32), "mono"),
        (np.zeros(800, np.int16), "float"),
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan, 0.0], np.float32), "NaN"),
    ],
)
def test_bad_audio_is_refused_with_the_fix(audio, match):
    with pytest.raises(ValueError, match=match):
        log_mel(audio)


def test_motion_frame_count_covers_the_recording():
    assert n_motion_frames(16000, 30) == 30
    assert n_motion_frames(16001, 30) == 31
    assert n_motion_frames(8000, 25) == 13
