"""Long takes stream to disk in flat memory (engine.numpy_runtime.long_take) and give exactly the take
`Engine.animate` gives: level normalisation, rest in pauses, the ARKit refit, phones and captions.

The streaming path's pieces (conversion blocks, level blocks, log-mel pieces, decode groups, finish
pieces, phone pieces) are made small here so that a 25 s recording crosses every kind of seam many
times; the memory figures themselves are measured by `python -m engine.bench` (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

import engine.api as api
from engine.animation import Animation
from engine.api import Cancelled, Engine
from engine.audio.io import load_audio
from engine.audio.level import LevelMeter, active_level_dbfs, normalize_level
from engine.inference.rest import FrameLevels, frame_levels_db, rest_weights
from engine.numpy_runtime import decode as numpy_decode
from engine.numpy_runtime import long_take
from engine.request import AnimateRequest, write_outputs

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "engine" / "assets" / "sample_speech.wav"


def quiet_speech_with_pauses(seconds: float, seed: int = 0) -> np.ndarray:
    """The sample sentence repeated at changing, quiet levels with pauses of room noise between."""
    speech = load_audio(SAMPLE)
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    while total < seconds * 16000:
        pause = (0.00002 * rng.standard_normal(int(rng.uniform(0.3, 1.5) * 16000))).astype(np.float32)
        parts += [speech * np.float32(rng.uniform(0.03, 0.15)), pause]
        total += len(speech) + len(pause)
    return np.concatenate(parts)[: int(seconds * 16000)]


def write_recording(path: Path, seconds: float, resampled: bool = False) -> Path:
    """A 16 kHz mono 16-bit WAV, or (`resampled`) a 44.1 kHz stereo float one that the streaming
    path converts, mixes and resamples in blocks."""
    import soxr

    audio = quiet_speech_with_pauses(seconds)
    if not resampled:
        soundfile.write(path, audio, 16000, subtype="PCM_16")
        return path
    audio = soxr.resample(audio, 16000, 44100, quality="HQ").astype(np.float32)
    soundfile.write(path, np.stack([audio, 0.8 * audio], axis=1), 44100, subtype="FLOAT")
    return path


@pytest.fixture
def small_pieces(monkeypatch):
    """Every streaming piece small, long takes from 5 s; returns the list of streamed takes."""
    monkeypatch.setattr(numpy_decode, "GROUP_CHUNKS", 2)  # both paths: decode groups of two chunks
    for name, value in (
        ("PHONE_PIECE_FRAMES", 40),
        ("BLOCK_SAMPLES", 7001),
        ("FINISH_FRAMES", 97),
    ):
        monkeypatch.setattr(long_take, name, value)
    monkeypatch.setattr(api, "LONG_TAKE_SECONDS", 5.0)
    monkeypatch.setattr(api, "MEL_WINDOW_SAMPLES", 16000 * 3)  # both paths: log-mel in 3 s pieces
    streamed: list[Path] = []
    original = long_take.animate_to_files

    def recording(net, job, *args, **kwargs):
        streamed.append(job.audio)
        return original(net, job, *args, **kwargs)

    monkeypatch.setattr(long_take, "animate_to_files", recording)
    return streamed


@pytest.fixture(scope="module")
def engine():
    return Engine(backend="numpy")


def test_pieces_give_the_whole_recordings_levels_bit_for_bit():
    rng = np.random.default_rng(3)
    for n in (0, 100, 320, 16001, 48000):
        audio = (0.05 * rng.standard_normal(n)).astype(np.float32)
        cuts = [0, *sorted(rng.integers(0, n + 1, 6)), n]
        meter, levels = LevelMeter(), FrameLevels(16000)
        for a, b in zip(cuts, cuts[1:]):
            meter.push(audio[a:b])
            levels.push(audio[a:b])
        assert meter.level_dbfs() == active_level_dbfs(audio) or n == 0
        assert np.array_equal(levels.levels(), frame_levels_db(audio, 16000))
        assert len(levels.levels()) == 1 + n // 160
    # the same numbers as before the refactor: the level of a known signal, and its normalisation
    tone = (0.1 * np.sin(2 * np.pi * np.arange(16000) / 80)).astype(np.float32)  # 4 periods a frame
    assert active_level_dbfs(tone) == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.01)
    assert active_level_dbfs(normalize_level(tone)) == pytest.approx(-23.0, abs=1e-3)


def test_a_long_take_streams_to_the_take_engine_animate_gives(engine, small_pieces, tmp_path):
    wav = write_recording(tmp_path / "long.wav", 25.0)
    fields = dict(emotion=((0.0, "neutral", 1.0), (12.0, "happy", 0.8)), style={"jaw_ratio": 0.7}, fps=30)
    reference = engine.animate(str(wav), **fields)

    # the recording is one the finishing steps change: a large gain, pauses and speech
    audio = load_audio(wav)
    assert abs(active_level_dbfs(audio) - active_level_dbfs(normalize_level(audio))) > 10.0
    weights = rest_weights(normalize_level(audio), 16000, 30.0, reference.n_frames)
    assert (weights == 1.0).sum() > 60 and (weights == 0.0).sum() > 300

    take, written = engine.write_take(
        str(wav), output=str(tmp_path / "long.npz"), caption_files=[str(tmp_path / "long.srt")], **fields
    )
    assert small_pieces == [wav] and isinstance(take, long_take.WrittenTake)
    assert written == [tmp_path / "long.npz", tmp_path / "long.srt"]
    loaded = Animation.load(tmp_path / "long.npz")
    assert loaded.n_frames == take.n_frames == reference.n_frames == 750
    # same windows, groups and chunks as the in-memory take: the motion is the same to the bit (allowing
    # 1e-6 mm for a BLAS that rounds differently with the number of rows); the ARKit refit's
    # iterative solver, run on pieces, differs by rounding amplified
    assert np.abs(loaded.offsets - reference.offsets).max() <= 1e-9
    assert np.abs(loaded.arkit - reference.arkit).max() <= 2e-4  # the refit's sensitivity to rounding
    for ours, theirs in ((loaded.lip_phonemes, reference.lip_phonemes),
                         (loaded.audio_phonemes, reference.audio_phonemes)):  # fmt: skip
        assert [(p.phone, p.start, p.end) for p in ours] == [(p.phone, p.start, p.end) for p in theirs]
        assert [p.confidence for p in ours] == pytest.approx([p.confidence for p in theirs], abs=1e-5)
    assert len(reference.captions) >= 5
    assert [(c.text, c.start, c.end) for c in loaded.captions] == [
        (c.text, c.start, c.end) for c in take.captions
    ]
    assert [(c.text, c.start, c.end) for c in take.captions] == [
        (c.text, c.start, c.end) for c in reference.captions
    ]
    assert [c.sync for c in take.captions] == pytest.approx([c.sync for c in reference.captions], abs=1e-6)
    assert {**loaded.meta, "batch_seconds": 0} == {**reference.meta, "batch_seconds": 0}
    # the caption file is the one the in-memory take writes
    memory_srt = tmp_path / "memory.srt"
    write_outputs(reference, AnimateRequest(str(wav), caption_files=(str(memory_srt),)))
    assert (tmp_path / "long.srt").read_text() == memory_srt.read_text()


def test_cli_streams_long_takes_only(engine, small_pieces, tmp_path):
    from engine.cli import main
    from engine.serve import _result

    long_wav = write_recording(tmp_path / "long.wav", 8.0, resampled=True)
    short_wav = write_recording(tmp_path / "short.wav", 3.0)
    for wav, frames in ((long_wav, 240), (short_wav, 90)):
        code = main(["animate", str(wav), "--backend", "numpy", "--captions", "srt,json", "-q"])
        assert code == 0
        take = Animation.load(wav.with_suffix(".npz"))
        assert take.n_frames == frames
        assert wav.with_suffix(".srt").is_file() and wav.with_suffix(".json").is_file()
    assert small_pieces == [long_wav]  # the short take stays in memory
    # a 44.1 kHz file is resampled block by block while streaming, at once in memory: rounding apart,
    # the same take
    reference = engine.animate(str(long_wav))
    streamed = Animation.load(long_wav.with_suffix(".npz"))
    assert np.abs(streamed.offsets - reference.offsets).max() <= 1e-7  # metres: 1e-4 mm
    assert [p.phone for p in streamed.lip_phonemes] == [p.phone for p in reference.lip_phonemes]
    # a long take with layers (they read the whole take) or without files to write stays in memory too
    layered, _ = engine.write_take(str(long_wav), output=str(tmp_path / "l.npz"), layers=["blinks"])
    assert isinstance(layered, Animation) and small_pieces == [long_wav]
    # the worker's answer for a streamed take: counts and captions, the arrays left in the file
    request = AnimateRequest(str(long_wav), output=str(tmp_path / "w.npz"))
    streamed, written = engine.write_take(request)
    result = _result(streamed, request, written)
    assert result["n_frames"] == 240 and result["output"] == request.output and "arrays" not in result


def test_a_cancelled_long_take_writes_nothing(engine, small_pieces, tmp_path):
    wav = write_recording(tmp_path / "long.wav", 8.0, resampled=True)
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.3:
            cancel.set()

    with pytest.raises(Cancelled):
        engine.write_take(
            str(wav), output=str(tmp_path / "x.npz"), caption_files=[str(tmp_path / "x.srt")],
            progress=progress, cancel=cancel,
        )  # fmt: skip
    assert small_pieces == [wav] and seen == sorted(seen) and 0.3 < seen[-1] < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]
