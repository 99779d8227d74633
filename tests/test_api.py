"""Engine: exact decoding, chunked long audio, emotion schedules, progress/cancel, batch and streaming.

A small random model is written to a temporary checkpoint and loaded through `Engine(weights=...)`,
exactly as a user's weights would be. Its output heads get random weights (a fresh decoder predicts
the rest face), so the motion is non-trivial and every comparison below can fail.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from engine.api import Cancelled, Engine, log_mel_windowed
from engine.audio.io import AudioError
from engine.inference import chunking, decode
from engine.inference.chunking import crossfade_weights, merge_chunks, plan_chunks, plan_windows
from engine.inference.device import select_device
from engine.inference.schedule import emotion_cond, parse_schedule, schedule_to_cond
from engine.request import AnimateRequest

SR = 16000

TINY = dict(
    audio_dim=32, audio_layers=2, audio_heads=2, audio_window=6, mesh_patches=8, patch_dim=16,
    vertex_embed_dim=4, mesh_heads=2, d_model=32, decoder_layers=2, decoder_heads=2, decoder_window=16,
    motion_window=8, align_radius=3, ff_mult=2, consistency_dim=16,
)  # fmt: skip


def make_checkpoint(path, seed: int = 0):
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.manual_seed(seed)
    model = DualFace(ModelConfig(**TINY))
    torch.nn.init.normal_(model.decoder.offset_head.weight, std=0.02)
    torch.nn.init.normal_(model.decoder.arkit_head.weight, std=0.5)
    return save_checkpoint(model, path)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.set_num_threads(1)
    path = make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.safetensors")
    return Engine(weights=path, device="cpu", threads=1, backend="torch")  # tests reach torch internals


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with syllable-rate envelopes: cheap audio that moves a random model."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t) * np.sin(2 * np.pi * 0.37 * t + 1.0), 0, None)
    return (0.3 * envelope * rng.standard_normal(n)).astype(np.float32)


def reference_inputs(engine, audio, fps=30.0):
    from engine.audio.features import log_mel, n_motion_frames
    from engine.data.style import SpeakerStyle

    n = n_motion_frames(len(audio), fps)
    mel = torch.from_numpy(log_mel(audio))[None]
    cond = torch.from_numpy(emotion_cond("neutral", 1.0, n, fps))[None]
    style = torch.from_numpy(SpeakerStyle().as_vector())[None]
    return mel, cond, style


def test_cached_decoding_equals_full_prefix_through_the_engine(engine):
    from engine.inference.finish import finish_motion

    audio = speechlike(1.0)
    take = engine.animate(audio, sample_rate=SR)
    assert take.offsets.shape == (30, 468, 3) and take.arkit.shape == (30, 52)
    assert np.abs(take.offsets).max() > 1e-4  # the motion is not the rest face
    job = engine._prepare(AnimateRequest(audio, sample_rate=SR))  # level-normalised audio
    clip = engine._encode(job, None)
    offsets, arkit, motion = decode.decode_clips(engine.model, [clip])[0]
    mel, cond, style = reference_inputs(engine, job.audio)
    ref_offsets, ref_arkit = engine.model.generate_full_prefix(mel, 30.0, cond, style)
    assert np.abs(offsets - ref_offsets[0].numpy()).max() < 1e-5
    assert np.abs(arkit - ref_arkit[0].numpy()).max() < 1e-5
    # the take is that decode, finished: lips closed where the engine's detector hears p/b/m, rest in
    # pauses and ARKit refitted to the vertices
    finished = finish_motion(
        offsets, arkit, job.audio, 30.0, cond[0].numpy(), style[0].numpy(), engine.closure_detector
    )
    np.testing.assert_allclose(take.offsets, finished[0], atol=1e-6)
    np.testing.assert_allclose(take.arkit, finished[1], atol=1e-5)
    # the lip reader reuses the decoder's motion embeddings: same as reading the motion again
    with torch.no_grad():
        reread = engine.model.read_lips(torch.from_numpy(offsets)[None])[0].numpy()
    assert np.abs(decode.lip_logprobs(engine.model, motion, "cpu") - reread).max() < 1e-4


def test_animation_frame_count_phonemes_and_captions(engine):
    take = engine.animate(speechlike(1.01), sample_rate=SR, fps=25)
    assert take.n_frames == math.ceil(1.01 * 25)
    assert take.fps == 25.0
    assert 0.0 <= take.arkit.min() and take.arkit.max() <= 1.0
    for phone in take.audio_phonemes + take.lip_phonemes:
        assert 0.0 <= phone.start < phone.end <= take.duration + 0.2
    for caption in take.captions:
        assert 0.0 <= caption.sync <= 1.0 and 0.0 <= caption.confidence <= 1.0
    silent = engine.animate(np.zeros(SR // 2, dtype=np.float32), sample_rate=SR)
    assert silent.n_frames == 15 and np.all(np.isfinite(silent.offsets))


def test_windowed_encoder_and_mel_equal_whole_clip(engine, monkeypatch):
    audio = speechlike(6.0, seed=3)
    mel_full = log_mel_windowed(audio)
    monkeypatch.setattr("engine.api.MEL_WINDOW_SAMPLES", SR)  # 1 s windows
    assert np.abs(log_mel_windowed(audio) - mel_full).max() < 1e-5
    monkeypatch.setattr(decode, "ENCODER_CORE_FRAMES", 20)  # 0.8 s windows
    mel = torch.from_numpy(mel_full)
    windowed = decode.encode_audio_windowed(engine.model, mel, 30.0, 180)
    whole = engine.model.encode_audio(mel[None], 30.0, 180)[0]
    assert len(plan_windows(150, 20, decode.encoder_context(engine.model))) > 3
    assert torch.abs(windowed - whole).max() < 1e-4


def test_chunk_plan_covers_every_frame_and_crossfade_is_smooth():
    chunks = plan_chunks(1000, 150, 30, 12)
    assert chunks[0].decode_start == 0 and chunks[-1].own_end == 1000
    for a, b in zip(chunks, chunks[1:]):
        assert b.own_start == a.own_end - 12  # exactly `fade` frames blended
        assert b.decode_start == b.own_start - 30
    assert plan_chunks(100, 150, 30, 12) == [chunking.Chunk(0, 0, 100)]
    w = crossfade_weights(12)
    assert np.all(np.diff(w) > 0) and 0 < w[0] < 0.05 and 0.95 < w[-1] < 1
    # constant per-chunk outputs merge to a ramp between the constants, never outside them
    outputs = [np.full((c.length, 1), float(i)) for i, c in enumerate(chunks)]
    merged = merge_chunks(outputs, chunks, 1000, 12)[:, 0]
    assert np.all(np.diff(merged) >= 0) and merged[0] == 0 and merged[-1] == len(chunks) - 1


def _velocity(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(x.reshape(len(x), -1), axis=0), axis=1)


def test_chunked_decoding_has_no_seams(engine, monkeypatch):
    monkeypatch.setattr(engine, "plan", decode.DecodePlan(chunk_frames=60, warmup_frames=16, fade_frames=8))
    take = engine.animate(speechlike(12.0, seed=5), sample_rate=SR, captions=False)
    chunks = plan_chunks(take.n_frames, 60, 16, 8)
    assert len(chunks) >= 5
    speed = _velocity(take.offsets)
    typical = np.percentile(speed, 95)
    for c in chunks[1:]:
        border = speed[c.own_start - 1 : c.own_start + 9]  # into, through and out of the blend
        assert border.max() <= typical * 1.05, (c, border.max(), typical)
    # and chunking changes the motion only a little against one long decode
    monkeypatch.setattr(engine, "plan", decode.DecodePlan(chunk_frames=10_000))
    single = engine.animate(speechlike(12.0, seed=5), sample_rate=SR, captions=False)
    error = np.abs(single.offsets - take.offsets).max()
    assert error < 0.5 * np.abs(single.offsets).max()


def test_batch_equals_single_calls(engine):
    a, b = speechlike(1.5, seed=1), speechlike(2.5, seed=2)
    batch = engine.animate_batch(
        [{"audio": a, "sample_rate": SR}, {"audio": b, "sample_rate": SR, "emotion": "happy", "fps": 60}]
    )
    one = engine.animate(a, sample_rate=SR)
    two = engine.animate(b, sample_rate=SR, emotion="happy", fps=60)
    assert np.abs(batch[0].offsets - one.offsets).max() < 1e-5
    assert np.abs(batch[1].offsets - two.offsets).max() < 1e-5
    assert batch[1].n_frames == 150
    with pytest.raises(AudioError):  # validated before any decoding
        engine.animate_batch([{"audio": a, "sample_rate": SR}, {"audio": a}])


def test_emotion_schedule_interpolates_per_frame():
    keys = parse_schedule([(0.0, "neutral", 1.0), (1.0, "happy", 0.8), (2.0, "sad", 1.0)], intensity=0.5)
    cond = schedule_to_cond(keys, 90, 30.0)
    neutral, happy, sad = 0, 2, 3
    assert cond[0, neutral] == pytest.approx(0.5)
    assert cond[15, neutral] == pytest.approx(0.25) and cond[15, happy] == pytest.approx(0.2)
    assert cond[30, happy] == pytest.approx(0.4) and cond[30, neutral] == pytest.approx(0.0)
    assert cond[45, happy] == pytest.approx(0.2) and cond[45, sad] == pytest.approx(0.25)
    assert np.allclose(cond[60:, sad], 0.5)  # held after the last key
    assert cond.sum(axis=1).max() <= 0.5 + 1e-6
    late = schedule_to_cond(parse_schedule([(1.0, "angry", 1.0)]), 10, 30.0)
    assert np.allclose(late[:, 4], 1.0)  # held before the first key
    assert np.allclose(schedule_to_cond(keys, 10, 30.0, first_frame=30), cond[30:40])
    for bad, match in [
        ([(1.0, "happy", 1.0), (0.5, "sad", 1.0)], "ascending"),
        ([(0.0, "bored", 1.0)], "unknown emotion"),
        ([(0.0, "happy", 1.5)], "between 0 and 1"),
        ([(-1.0, "happy", 1.0)], ">= 0"),
        ([], "empty"),
        ([(0.0, "happy")], "time_s, emotion, intensity"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_schedule(bad)


def test_emotion_changes_the_motion(engine):
    audio = speechlike(2.0)
    neutral = engine.animate(audio, sample_rate=SR, captions=False)
    schedule = [(0, "neutral", 1), (1.0, "neutral", 1), (1.5, "angry", 1)]
    switched = engine.animate(audio, sample_rate=SR, emotion=schedule, captions=False)
    # the decoder is causal in its conditioning: frames before the cross-fade are untouched
    assert np.abs(switched.offsets[:31] - neutral.offsets[:31]).max() < 1e-6
    assert np.abs(switched.offsets[40:] - neutral.offsets[40:]).max() > 1e-5


def test_progress_and_cancel(engine):
    seen = []
    engine.animate(speechlike(3.0), sample_rate=SR, progress=seen.append)
    assert seen[-1] == 1.0 and all(a < b for a, b in zip(seen, seen[1:])) and len(seen) > 5
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.animate(speechlike(3.0), sample_rate=SR, cancel=cancel)
    midway = threading.Event()

    def stop_at_half(fraction):
        if fraction > 0.5:
            midway.set()

    with pytest.raises(Cancelled):
        engine.animate(speechlike(3.0), sample_rate=SR, progress=stop_at_half, cancel=midway)


def test_bad_arguments_fail_before_work(engine):
    audio = speechlike(0.5)
    with pytest.raises(ValueError, match="fps"):
        engine.animate(audio, sample_rate=SR, fps=29)
    with pytest.raises(ValueError, match="unknown emotion"):
        engine.animate(audio, sample_rate=SR, emotion="bored")
    with pytest.raises(ValueError, match="intensity"):
        engine.animate(audio, sample_rate=SR, intensity=2)
    with pytest.raises(ValueError, match="style"):
        engine.animate(audio, sample_rate=SR, style={"jaw": 1})
    with pytest.raises(ValueError, match="articulation"):
        engine.animate(audio, sample_rate=SR, style={"articulation": 5.0})
    with pytest.raises(AudioError, match="sample_rate"):
        engine.animate(audio)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            select_device("cuda:0")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_stream_matches_offline_closely_with_low_latency(engine):
    audio = speechlike(6.0, seed=7)
    offline = engine.animate(audio, sample_rate=SR, captions=False)
    stream = engine.stream()
    frames = []
    for i in range(0, len(audio), 320):  # 20 ms pieces, like a microphone callback
        frames += stream.push(audio[i : i + 320])
    frames += stream.flush()
    assert [f.index for f in frames] == list(range(offline.n_frames))
    live = np.stack([f.offsets for f in frames])
    scale = np.abs(offline.offsets).max()
    assert np.abs(live - offline.offsets).mean() < 0.1 * scale  # an approximation, but a close one
    latency = np.array(stream.latencies)
    assert np.median(latency) < 0.15, np.median(latency)
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(audio[:320])


def test_stream_rebasing_is_exact_and_other_rates_work(engine):
    from engine.inference.streaming import Stream

    audio = speechlike(4.0, seed=9)
    style = np.asarray(engine.model.cfg.style_dim * [0.5], dtype=np.float32)

    def run(capacity):
        stream = Stream(engine, 30.0, "happy", 1.0, style, SR, 1, capacity_frames=capacity)
        out = []
        for i in range(0, len(audio), 800):
            out += stream.push(audio[i : i + 800])
        return np.stack([f.offsets for f in out + stream.flush()]), stream

    small, rebased = run(40)
    large, _ = run(10_000)
    assert rebased._base > 0  # the bounded state really wrapped around
    assert np.abs(small - large).max() < 1e-6
    stream = engine.stream(sample_rate=44100)
    pcm = (np.sin(np.arange(44100) / 10.0) * 20000).astype(np.int16)
    frames = stream.push(pcm) + stream.flush()
    assert len(frames) == 30


def test_auto_precision_is_float32_and_half_precision_is_cuda_only_opt_in(tmp_path):
    # float16 drifted 4 mm over a 60 s take on an H200 and was slower there: auto never picks it.
    weights = make_checkpoint(tmp_path / "tiny.safetensors")
    engine = Engine(weights=weights, device="cpu", backend="torch")
    assert engine.precision == "float32" and next(engine.model.parameters()).dtype == torch.float32
    assert engine.animate(speechlike(1.0), sample_rate=SR, captions=False).meta["precision"] == "float32"
    with pytest.raises(ValueError, match="CUDA"):
        Engine(weights=weights, device="cpu", precision="float16")
    with pytest.raises(ValueError, match="CUDA"):
        Engine(weights=weights, device="cpu", backend="numpy", precision="float16")
