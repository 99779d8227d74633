"""The add-on in a stock Blender's own Python (Debian's Blender 4.3.2: Python 3.13, numpy 2.x, no
`aud`), with torch, scipy, librosa and soundfile unimportable."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest


def riff(
    path: Path, data: bytes, rate: int, channels: int, bits: int, tag: int = 1, declared: int = 0
) -> Path:
    """A WAV file with any format tag (1 PCM, 3 float, 0xFFFE extensible); DECLARED overrides the
    data chunk's size (a cut-short copy)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    if tag == 0xFFFE:  # extensible: valid bits, channel mask, the PCM sub-format GUID
        fmt += struct.pack("<HHI", 22, bits, 0) + bytes.fromhex("0100000000001000800000aa00389b71")
    size = declared or len(data)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.fixture(scope="module")
def stock(lane, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stock_audio")
    tone = np.sin(np.arange(48000) / 7.0)
    riff(folder / "pcm16.wav", (tone[:16000] * 9000).astype("<i2").tobytes(), 16000, 1, 16)
    riff(folder / "float_stereo.wav", np.repeat(tone[:22050], 2).astype("<f4").tobytes(), 44100, 2, 32, tag=3)
    pcm24 = b"".join(int(v * 2**22).to_bytes(3, "little", signed=True) for v in tone[:36000])
    riff(folder / "pcm24_extensible.wav", pcm24, 48000, 1, 24, tag=0xFFFE)
    half = (tone[:8000] * 9000).astype("<i2").tobytes()
    riff(folder / "cut_short.wav", half, 16000, 1, 16, declared=2 * len(half) * 4)
    riff(folder / "too_short.wav", half[:3200], 16000, 1, 16)
    (folder / "not_audio.wav").write_text("this is a text file, not a recording")
    (folder / "voice.mp3").write_bytes(b"ID3" + bytes(500))
    run = lane.script("stock_python.py", str(folder), timeout=120)
    assert run.returncode == 0 and run.report, run.output[-4000:]
    return run


def test_blender_brings_its_own_python_and_numpy(stock):
    report = stock.report
    assert (3, 11) <= tuple(report["python"][:2]) <= (3, 13), report["python"]
    assert report["numpy"] >= "1.26", report["numpy"]
    assert not report["has_aud"], "this lane must cover a Blender without aud (Debian's build has none)"


def test_every_addon_module_imports_without_heavy_packages(stock):
    assert not stock.report["import_errors"], stock.report["import_errors"]
    assert len(stock.report["imported"]) >= 15
    assert not stock.blocked(), stock.blocked()


def test_wav_headers_are_read_without_aud(stock):
    audio = stock.report["audio"]
    assert audio["pcm16.wav"] == {"rate": 16000, "channels": 1, "seconds": pytest.approx(1.0)}
    assert audio["float_stereo.wav"] == {"rate": 44100, "channels": 2, "seconds": pytest.approx(0.5)}
    assert audio["pcm24_extensible.wav"] == {"rate": 48000, "channels": 1, "seconds": pytest.approx(0.75)}
    assert audio["cut_short.wav"]["seconds"] == pytest.approx(0.5), "count only the bytes that are there"


def test_unreadable_audio_gets_a_clear_error(stock):
    audio = stock.report["audio"]
    assert "at least 0.2 s" in audio["too_short.wav"]["error"]
    assert "not a WAV file" in audio["not_audio.wav"]["error"]
    mp3 = audio["voice.mp3"]["error"]
    assert "aud" in mp3 and ".wav" in mp3, mp3


def test_the_addon_loads_no_fitting_code_until_a_fit(stock):
    retarget = stock.report["retarget"]
    assert retarget["error_class"] == "RetargetError"
    assert retarget["loaded"] == ["engine.retarget", "engine.retarget.errors"], retarget["loaded"]
