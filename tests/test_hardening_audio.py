"""A WAV cut short is used with a warning that says how much is missing; an intact one loads silently."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import soundfile as sf

from engine.audio.io import AudioWarning, load_audio

pytestmark = pytest.mark.timeout(60)


def _wav(path, seconds=1.0, rate=16000):
    rng = np.random.default_rng(0)
    sf.write(
        path, (0.2 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate, subtype="PCM_16"
    )
    return path


def test_truncated_data_chunk_loads_with_a_warning(tmp_path):
    path = _wav(tmp_path / "cut.wav")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted copy: the header still promises 1 s
    with pytest.warns(AudioWarning, match=r"cut\.wav is truncated.*re-export"):
        audio = load_audio(path)
    assert 0.4 * 16000 < audio.size < 0.6 * 16000 and np.isfinite(audio).all()


def test_intact_wav_and_open_ended_data_chunk_load_silently(tmp_path):
    path = _wav(tmp_path / "whole.wav")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_audio(path).size == 16000
    data = bytearray(path.read_bytes())
    position = data.index(b"data")
    data[position + 4 : position + 8] = struct.pack("<I", 0xFFFFFFFF)  # a streaming writer's placeholder
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioWarning)
        load_audio(path)
