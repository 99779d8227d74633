"""Reading recordings: every format and rate a user may have, and a clear error for every bad input."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from engine.audio.io import AudioError, load_audio


def _tone(rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _matches_tone(audio: np.ndarray, seconds: float = 1.0, freq: float = 440.0) -> float:
    """Correlation with the expected 16 kHz tone, robust to codec delay (best over small lags)."""
    expected = _tone(16000, seconds, freq)
    n = min(len(audio), len(expected)) - 2000
    best = 0.0
    for lag in range(0, 1200, 4):
        a = audio[lag : lag + n]
        if len(a) < n:
            break
        best = max(best, float(np.corrcoef(a, expected[:n])[0, 1]))
    return best


@pytest.mark.parametrize(
    "suffix,rate,subtype",
    [(".wav", 44100, "PCM_16"), (".wav", 8000, "PCM_16"), (".flac", 48000, None), (".ogg", 22050, None)],
)
def test_formats_and_rates_become_16k_mono(tmp_path, suffix, rate, subtype):
    stereo = np.stack([_tone(rate), _tone(rate)], axis=1)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, stereo, rate, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 2
    assert _matches_tone(audio) > 0.95


def test_mp3(tmp_path):
    path = tmp_path / "tone.mp3"
    sf.write(path, _tone(44100), 44100, format="MP3")
    audio = load_audio(path)
    assert abs(len(audio) - 16000) < 1600  # mp3 frames pad the end
    assert _matches_tone(audio) > 0.9


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_ffmpeg_fallback_for_formats_libsndfile_lacks(tmp_path):
    wav = tmp_path / "tone.wav"
    sf.write(wav, _tone(32000), 32000)
    m4a = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), str(m4a)], check=True, timeout=60)
    audio = load_audio(m4a)
    assert _matches_tone(audio) > 0.9


def test_arrays_need_a_rate_and_accept_int_pcm_and_channels_first():
    tone = _tone(22050)
    pcm = (tone * 32767).astype(np.int16)
    from_int = load_audio(pcm, sample_rate=22050)
    from_float = load_audio(tone, sample_rate=22050)
    assert np.max(np.abs(from_int - from_float)) < 1e-3
    channels_first = load_audio(np.stack([tone, tone]), sample_rate=22050)
    assert np.allclose(channels_first, from_float, atol=1e-6)
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(tone)


def test_silence_is_valid():
    audio = load_audio(np.zeros(16000, dtype=np.float32), sample_rate=16000)
    assert audio.shape == (16000,) and not audio.any()


@pytest.mark.parametrize("rate", [4000, 96000])
def test_rates_outside_8_to_48_khz_are_rejected(rate):
    with pytest.raises(AudioError, match="8000-48000"):
        load_audio(np.zeros(rate, dtype=np.float32), sample_rate=rate)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(bad):
    audio = np.zeros(1000, dtype=np.float32)
    audio[10] = bad
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(audio, sample_rate=16000)


def test_bad_files(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    no_frames = tmp_path / "no_frames.wav"
    sf.write(no_frames, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="zero length"):
        load_audio(no_frames)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" + bytes(range(256)) * 4)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(corrupt)
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(text)
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)
    with pytest.raises(AudioError, match="only for arrays"):
        load_audio(no_frames, sample_rate=16000)
    with pytest.raises(AudioError, match="dtype"):
        load_audio(np.array(["a", "b"]), sample_rate=16000)
