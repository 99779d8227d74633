"""The numpy runtime against the torch model: same features, motion, ARKit, motion embeddings and phone
log-probs on random weights (several small architectures) and on the shipped weights; it never
imports torch; its weights reader checks the file like engine.weights."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.audio.features import log_mel, n_motion_frames, power_spectrogram_numpy
from engine.inference.decode import (
    ClipInput,
    DecodePlan,
    audio_logprobs,
    audio_valid_frames,
    decode_clips,
    encode_audio_windowed,
    lip_logprobs,
)
from engine.model.config import ModelConfig
from engine.model.dualface import DualFace
from engine.numpy_runtime.runtime import NumpyCheckpointError, NumpyModel
from engine.numpy_runtime.safetensors import payload_sha256, read_safetensors
from engine.request import DEFAULT_WEIGHTS
from engine.weights import save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(
    audio_dim=32, audio_layers=2, audio_heads=2, audio_window=3, mesh_patches=8, patch_dim=16,
    vertex_embed_dim=4, mesh_heads=2, d_model=32, decoder_layers=2, decoder_heads=4, decoder_window=12,
    motion_window=6, align_radius=2, ff_mult=2, consistency_dim=8,
)  # fmt: skip
PLAN = DecodePlan(chunk_frames=24, warmup_frames=6, fade_frames=4)


def speechy(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t) * np.sin(2 * np.pi * 0.4 * t + 0.3), 0, None)
    return (0.3 * envelope * rng.standard_normal(t.shape[0])).astype(np.float32)


def random_model(seed: int, **overrides) -> DualFace:
    """A small DualFace with every weight random, output heads included (they start at zero)."""
    torch.manual_seed(seed)
    model = DualFace(ModelConfig(**{**SMALL, **overrides})).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "offset_head" in name or "arkit_head" in name:
                parameter.normal_(0.0, 0.3)
    return model


def both_backends(model, numpy_model: NumpyModel, audio: np.ndarray, fps: float, plan: DecodePlan):
    """Decode one clip with each backend; returns (torch outputs, numpy outputs) as numpy tuples."""
    n = n_motion_frames(audio.shape[0], fps)
    mel = log_mel(audio)
    rng = np.random.default_rng(1)
    cond = rng.uniform(0, 1, (n, model.cfg.n_emotions)).astype(np.float32)
    style = rng.uniform(0, 1, model.cfg.style_dim).astype(np.float32)
    with torch.no_grad():
        feat = encode_audio_windowed(model, torch.from_numpy(mel), fps, n)
    clip = ClipInput(
        feat, audio_valid_frames(mel.shape[0], fps, n, "cpu"), torch.from_numpy(cond), torch.from_numpy(style)
    )
    offsets, arkit, motion = decode_clips(model, [clip], plan)[0]
    reference = (
        feat.numpy(),
        offsets,
        arkit,
        motion,
        lip_logprobs(model, motion, "cpu"),
        audio_logprobs(model, feat),
    )
    np_clip = numpy_model.encode(mel, fps, n, cond, style)
    offsets2, arkit2, motion2 = numpy_model.decode([np_clip], plan)[0]
    ours = (
        np_clip.audio_feat,
        offsets2,
        arkit2,
        motion2,
        numpy_model.lip_logprobs(motion2),
        numpy_model.audio_logprobs(np_clip),
    )
    return reference, ours


@pytest.mark.parametrize(
    "overrides",
    [{}, {"vertex_layer_budget": 20_000}, {"mesh_attention": False, "emotion": False}, {"motion_layers": 0}],
    ids=["default", "low-rank", "linear-motion", "no-time-layers"],
)
def test_random_weights_agree(tmp_path, overrides):
    model = random_model(7, **overrides)
    path = save_checkpoint(model, tmp_path / "random.safetensors")
    numpy_model = NumpyModel(path)
    reference, ours = both_backends(model, numpy_model, speechy(4.3), 30.0, PLAN)  # 129 frames: 5 chunks
    names = ("features", "offsets", "arkit", "motion", "lip log-probs", "audio log-probs")
    scale = float(np.abs(reference[1]).max())
    assert scale > 1e-4, "the random model should move the face"
    for name, want, got in zip(names, reference, ours):
        assert got.shape == want.shape, name
        tolerance = 1e-4 * max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= tolerance, f"{name}: {np.abs(got - want).max()}"


def test_random_weights_agree_at_24_fps_and_long_encoder_windows(tmp_path):
    """Audio past one encoder window (30 s cores + context: 34 s) and a frame rate off the 25 Hz grid."""
    model = random_model(3)
    path = save_checkpoint(model, tmp_path / "random.safetensors")
    reference, ours = both_backends(model, NumpyModel(path), speechy(36.0, seed=2), 24.0, DecodePlan())
    for want, got in zip(reference, ours):
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights absent")
def test_shipped_weights_agree_on_a_short_clip():
    from engine.weights import load_checkpoint

    reference, ours = both_backends(load_checkpoint(), NumpyModel(), speechy(6.0, seed=5), 30.0, DecodePlan())
    assert np.abs(ours[1] - reference[1]).max() <= 1e-5  # metres: 0.01 mm
    assert np.abs(ours[2] - reference[2]).max() <= 1e-4  # ARKit weights
    assert np.abs(ours[4] - reference[4]).max() <= 1e-3  # lip log-probs


def test_subsampling_matches_the_torch_encoders_strides():
    """The numpy runtime counts encoder frames as ceil(mel / SUBSAMPLING); the torch encoder's strided
    convolutions must leave exactly that many, at ENCODER_RATE frames per second of log-mel."""
    from engine.audio.features import FRAME_RATE
    from engine.inference.chunking import ENCODER_RATE, SUBSAMPLING
    from engine.model.audio_encoder import subsampled_length

    lengths = torch.arange(1, 200)
    assert subsampled_length(lengths).tolist() == [-(-n // SUBSAMPLING) for n in range(1, 200)]
    assert ENCODER_RATE * SUBSAMPLING == FRAME_RATE


def test_reader_matches_engine_weights_payload_hash_and_dtypes(tmp_path):
    from safetensors.numpy import save_file

    arrays = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.arange(4, dtype=np.int64),
        "c": np.array([1.5, -2.0], dtype=np.float16),
        "d": np.array([True, False]),
        "e": np.array(3.25, dtype=np.float64),
    }
    save_file(arrays, str(tmp_path / "x.safetensors"), metadata={"k": "v"})
    read, metadata, codes = read_safetensors(tmp_path / "x.safetensors")
    assert metadata == {"k": "v"}
    for name, value in arrays.items():
        assert read[name].dtype == value.dtype and np.array_equal(read[name], value), name
    from engine.weights import _payload_sha256

    assert payload_sha256(read, codes) == _payload_sha256(
        {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
    )


def test_damaged_weights_are_refused_with_the_fix(tmp_path):
    model = random_model(1)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NumpyCheckpointError, match="truncated"):
        NumpyModel(path)
    path.with_suffix(".json").unlink()  # no side-car: the header and payload checks still hold
    with pytest.raises(NumpyCheckpointError, match="truncated|outside the file"):
        NumpyModel(path)
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(NumpyCheckpointError, match="sha256"):
        NumpyModel(path)
    with pytest.raises(NumpyCheckpointError, match="no DualFace weights"):
        NumpyModel(tmp_path / "absent.safetensors")


def test_numpy_stft_equals_librosa():
    import librosa

    from engine.audio.features import HOP_LENGTH, N_FFT, WIN_LENGTH

    audio = speechy(1.37, seed=4)
    reference = (
        np.abs(
            librosa.stft(
                audio,
                n_fft=N_FFT,
                hop_length=HOP_LENGTH,
                win_length=WIN_LENGTH,
                center=True,
                pad_mode="constant",
            )
        ).T
        ** 2
    )
    assert np.allclose(power_spectrogram_numpy(audio, block_frames=50), reference, rtol=1e-4, atol=1e-6)


BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _NoTorch())
    """
)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights absent")
def test_runtime_runs_a_take_with_torch_blocked():
    script = BLOCK_TORCH + textwrap.dedent(
        """
        import numpy as np
        from engine.audio.features import log_mel, n_motion_frames
        from engine.numpy_runtime.runtime import NumpyModel
        audio = (0.2 * np.sin(np.arange(32000) * 0.05)).astype(np.float32)
        model = NumpyModel()
        n = n_motion_frames(audio.shape[0], 30)
        cond = np.zeros((n, 8), np.float32); cond[:, 0] = 1
        clip = model.encode(log_mel(audio), 30.0, n, cond, np.full(5, 0.5, np.float32))
        from engine.inference.chunking import DecodePlan
        offsets, arkit, motion = model.decode([clip], DecodePlan())[0]
        assert offsets.shape == (n, 468, 3) and np.isfinite(offsets).all()
        assert "torch" not in sys.modules
        print("ok", n)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok 60")


def write_test_wav(path: Path, seconds: float) -> Path:
    from engine.bench import write_wav

    return write_wav(path, speechy(seconds, seed=9))


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights absent")
def test_engine_and_cli_run_with_torch_blocked(tmp_path):
    """`import engine.api`, `Engine(backend="auto")` on a machine without torch, and the CLI."""
    wav = write_test_wav(tmp_path / "take.wav", 3.0)
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        from engine.api import Engine
        engine = Engine()
        take = engine.animate({str(wav)!r})
        assert engine.backend == "numpy" and take.meta["backend"] == "numpy"
        assert take.offsets.shape == (90, 468, 3) and take.arkit.shape == (90, 52)
        from engine.cli import main
        code = main(["animate", {str(wav)!r}, "-o", {str(tmp_path / "cli.npz")!r}, "-q", "--srt",
                     {str(tmp_path / "cli.srt")!r}])
        assert code == 0, code
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from engine.animation import Animation

    take = Animation.load(tmp_path / "cli.npz")
    assert take.n_frames == 90 and take.meta["backend"] == "numpy"
    srt = tmp_path / "cli.srt"
    assert srt.is_file() and srt.read_text().count(" --> ") == len(take.captions)  # one cue per caption


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights absent")
def test_engine_backends_give_the_same_take():
    from engine.api import Engine

    audio = speechy(4.0, seed=12)
    numpy_take = Engine(backend="numpy").animate(audio, sample_rate=16000)
    torch_take = Engine(backend="torch", device="cpu").animate(audio, sample_rate=16000)
    assert np.abs(numpy_take.offsets - torch_take.offsets).max() <= 1e-4  # 0.1 mm
    assert np.abs(numpy_take.arkit - torch_take.arkit).max() <= 1e-3
    assert [p.phone for p in numpy_take.lip_phonemes] == [p.phone for p in torch_take.lip_phonemes]
    assert [c.text for c in numpy_take.captions] == [c.text for c in torch_take.captions]


def test_backend_choice_and_its_errors(monkeypatch):
    from engine.inference import device

    assert device.choose_backend("auto", "cpu") == "numpy"
    assert device.choose_backend("numpy", "auto") == "numpy"
    assert device.choose_backend("auto", "cuda") == "torch"  # asked for
    assert device.choose_backend("auto", "auto", has_torch_model=True) == "torch"
    monkeypatch.setattr(device, "nvidia_gpu_present", lambda: True)
    assert device.choose_backend("auto", "auto") == "torch"
    monkeypatch.setattr(device, "nvidia_gpu_present", lambda: False)
    assert device.choose_backend("auto", "auto") == "numpy"
    with pytest.raises(ValueError, match="numpy backend runs on the CPU"):
        device.choose_backend("numpy", "cuda:0")
    with pytest.raises(ValueError, match="unknown backend"):
        device.choose_backend("jax")
    with pytest.raises(ValueError, match="unknown device"):
        device.choose_backend("numpy", "tpu")
    monkeypatch.setattr(device, "torch_installed", lambda: False)
    with pytest.raises(ValueError, match="torch is not installed"):
        device.choose_backend("torch")
    assert device.choose_backend("auto", "auto") == "numpy"


STOCK_BLENDER_BLOCK = textwrap.dedent(
    """
    import sys
    ABSENT = ("torch", "soundfile", "soxr", "scipy", "librosa", "safetensors", "tqdm", "numba")
    class _StockBlender:  # a stock Blender's Python: numpy, and none of these
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, _StockBlender())
    """
)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped weights absent")
def test_extension_zip_bundles_what_a_numpy_only_take_needs(tmp_path):
    """Build the zip, unpack its engine wheel and weights, and run a take from them with numpy only."""
    import zipfile

    from build_addon import build

    archive = build(tmp_path / "dist", DEFAULT_WEIGHTS)
    unpacked = tmp_path / "installed"
    with zipfile.ZipFile(archive) as outer:
        outer.extractall(unpacked)
    wheel = next((unpacked / "wheels").glob("*.whl"))
    with zipfile.ZipFile(wheel) as inner:
        inner.extractall(unpacked / "site")
    wav = write_test_wav(tmp_path / "line.wav", 2.0)
    script = STOCK_BLENDER_BLOCK + textwrap.dedent(
        f"""
        import engine
        assert engine.__file__.startswith({str(unpacked / "site")!r}), engine.__file__
        from engine.api import Engine
        take = Engine(weights={str(unpacked / "weights" / "dualface.safetensors")!r}).animate({str(wav)!r})
        assert take.n_frames == 60 and take.meta["backend"] == "numpy"
        print("ok")
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(unpacked / "site")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_pcm_wav_without_soundfile_reads_what_soundfile_reads(tmp_path):
    import soundfile

    from engine.audio.stock_io import read_pcm_wav

    signal = (0.4 * np.sin(np.arange(8000) * 0.03)).astype(np.float32)
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32"):
        path = tmp_path / f"{subtype}.wav"
        soundfile.write(path, np.stack([signal, -0.5 * signal], axis=1), 22050, subtype=subtype)
        ours, rate = read_pcm_wav(path)
        theirs, _ = soundfile.read(path, dtype="float32", always_2d=True)
        assert rate == 22050 and ours is not None and np.array_equal(ours, theirs), subtype
    soundfile.write(tmp_path / "float.wav", signal, 16000, subtype="FLOAT")
    assert read_pcm_wav(tmp_path / "float.wav") == (None, 0)  # float WAV: Blender's aud decodes it


def test_numpy_engine_streams_and_exposes_the_model_through_a_torch_engine(tmp_path):
    from engine.api import Engine

    path = save_checkpoint(random_model(2), tmp_path / "m.safetensors")
    engine = Engine(weights=path, backend="numpy")
    assert engine.backend == "numpy" and engine.precision == "float32" and engine._torch_engine is None
    stream = engine.stream()
    frames = stream.push(speechy(1.0)) + stream.flush()
    assert len(frames) == 30 and engine._torch_engine is not None  # streaming runs on torch
    assert isinstance(engine.model, DualFace)
    with pytest.raises(ValueError, match="float16"):
        Engine(weights=path, backend="numpy", precision="float16")


def test_numpy_engine_reports_progress_and_cancels(tmp_path):
    import threading

    from engine.api import Cancelled, Engine

    engine = Engine(
        weights=save_checkpoint(random_model(4), tmp_path / "m.safetensors"), backend="numpy", plan=PLAN
    )
    seen: list[float] = []
    engine.animate(speechy(6.0), sample_rate=16000, progress=seen.append, captions=False)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 5
    cancel = threading.Event()

    def stop_halfway(fraction: float) -> None:
        if fraction > 0.3:
            cancel.set()

    with pytest.raises(Cancelled):
        engine.animate(speechy(6.0), sample_rate=16000, progress=stop_halfway, cancel=cancel)


def test_numpy_batch_equals_single_calls(tmp_path, monkeypatch):
    from engine.api import Engine
    from engine.numpy_runtime import decode

    monkeypatch.setattr(decode, "GROUP_CHUNKS", 3)  # chunks of both clips share groups
    engine = Engine(
        weights=save_checkpoint(random_model(6), tmp_path / "m.safetensors"), backend="numpy", plan=PLAN
    )
    a, b = speechy(3.0, seed=1), speechy(5.5, seed=2)
    batch = engine.animate_batch(
        [
            {"audio": a, "sample_rate": 16000},
            {"audio": b, "sample_rate": 16000, "emotion": "happy", "fps": 60},
        ]
    )
    one = engine.animate(a, sample_rate=16000)
    two = engine.animate(b, sample_rate=16000, emotion="happy", fps=60)
    assert np.abs(batch[0].offsets - one.offsets).max() < 1e-6
    assert np.abs(batch[1].offsets - two.offsets).max() < 1e-6 and batch[1].n_frames == 330
