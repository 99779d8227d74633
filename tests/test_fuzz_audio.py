"""Fuzz: the audio loader turns any array or any (damaged) WAV into model audio or an AudioError."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.audio.io import AudioError, AudioWarning, load_audio

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
]


_DTYPES = st.sampled_from(["<f4", "<f8", "<i2", "<i4", "|u1", "|i1", "<u2", "|b1", "<c8", "<f2"])


def _check(audio: np.ndarray) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
    assert np.isfinite(audio).all()


@fuzz(150)
@given(
    array=hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=64)),
    rate=st.one_of(st.integers(-10, 200_000), st.sampled_from([8000, 16000, 44100, 48000])),
)
def test_any_array_is_model_audio_or_an_audio_error(array, rate):
    try:
        audio = load_audio(array, sample_rate=rate)
    except AudioError as error:
        assert str(error)
        return
    _check(audio)


def _wav_bytes(channels: int, rate: int, bits: int, fmt_tag: int, frames: int, data_size_delta: int) -> bytes:
    block = max(channels * bits // 8, 0)
    data = bytes(np.random.default_rng(frames).integers(0, 256, max(frames * block, 0), dtype=np.uint8))
    declared = max(len(data) + data_size_delta, 0)
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", declared) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


@fuzz(40)
@given(
    channels=st.integers(0, 9),
    rate=st.sampled_from([0, 1, 7999, 8000, 16000, 22050, 48000, 96000, 2**31]),
    bits=st.sampled_from([0, 8, 16, 24, 32, 33]),
    fmt_tag=st.sampled_from([1, 3, 0, 2, 0xFFFE]),
    frames=st.integers(0, 4000),
    data_size_delta=st.integers(-5000, 5000),
)
def test_any_wav_header_is_model_audio_or_an_audio_error(
    tmp_path_factory, channels, rate, bits, fmt_tag, frames, data_size_delta
):
    path = tmp_path_factory.mktemp("wav") / "fuzz.wav"
    path.write_bytes(_wav_bytes(channels, rate, bits, fmt_tag, frames, data_size_delta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)
        try:
            audio = load_audio(path)
        except AudioError as error:
            assert "fuzz.wav" in str(error) or "sample rate" in str(error) or "samples" in str(error)
            return
    _check(audio)
