"""`python -m engine animate`: outputs on success, a clear error and *nothing written* on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.animation import Animation
from engine.cli import main
from engine.request import emotion_from_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    model = DualFace(cfg)
    torch.nn.init.normal_(model.decoder.offset_head.weight, std=0.02)
    return str(save_checkpoint(model, tmp_path_factory.mktemp("w") / "tiny.safetensors"))


def _wav(path: Path, seconds: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    sf.write(path, (0.2 * rng.standard_normal(int(seconds * 22050))).astype(np.float32), 22050)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_animate_writes_take_and_captions(tmp_path, weights, capsys):
    wav = _wav(tmp_path / "line.wav")
    code = main(
        ["animate", str(wav), "--emotion", "0:neutral,0.5:happy:0.7", "--intensity", "0.8", "-o",
         str(tmp_path / "take.npz"), "--srt", str(tmp_path / "take.srt"), "--vtt", str(tmp_path / "take.vtt"),
         "--captions-json", str(tmp_path / "take.json"), "--weights", weights, "--device", "cpu", "--fps", "25",
         "--threads", "1", "--json", "-q"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == 0 and summary["jobs"][0]["frames"] == 25
    take = Animation.load(tmp_path / "take.npz")
    assert take.fps == 25.0 and take.offsets.shape == (25, 468, 3)
    assert take.meta["emotion"][1] == [0.5, "happy", pytest.approx(0.56)]
    assert (tmp_path / "take.vtt").read_text().startswith("WEBVTT")
    assert "captions" in json.loads((tmp_path / "take.json").read_text())
    assert _files(tmp_path) == ["line.wav", "take.json", "take.npz", "take.srt", "take.vtt"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["animate", "{dir}/missing.wav"], "not found"),
        (["animate", "{wav}", "--emotion", "bored"], "unknown emotion"),
        (["animate", "{wav}", "--emotion", "0:happy,x:sad"], "must be numbers"),
        (["animate", "{wav}", "--intensity", "3"], "intensity"),
        (["animate", "{wav}", "--fps", "29"], "fps"),
        (["animate", "{wav}", "-o", "{dir}/nowhere/take.npz"], "does not exist"),
        (["animate", "{wav}", "-o", "{dir}/take.txt"], "must end in .npz"),
        (["animate", "{wav}", "--srt", "{dir}/take.vtt"], "must end in .srt"),
        (["animate", "{wav}", "--style", "{{not json"], "--style must be JSON"),
        (["animate", "{wav}", "--style", '{{"jaw": 1}}'], "style"),
        (["animate"], "give an audio file"),
        (["animate", "--batch", "{dir}/list.txt", "--srt", "{dir}/a.srt"], "--captions"),
    ],
)
def test_usage_errors_write_nothing(tmp_path, weights, capsys, args, message):
    wav = _wav(tmp_path / "line.wav")
    (tmp_path / "list.txt").write_text(str(wav) + "\n")
    before = _files(tmp_path)
    argv = [a.format(dir=tmp_path, wav=wav) for a in args] + ["--weights", weights, "--device", "cpu", "-q"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert _files(tmp_path) == before


def test_bad_audio_fails_after_loading_and_writes_nothing(tmp_path, weights, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(300))
    before = _files(tmp_path)
    code = main(
        [
            "animate",
            str(broken),
            "--srt",
            str(tmp_path / "b.srt"),
            "--weights",
            weights,
            "--device",
            "cpu",
            "-q",
        ]
    )
    assert code == 1
    assert "cannot decode" in capsys.readouterr().out
    assert _files(tmp_path) == before


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    wav = _wav(tmp_path / "line.wav")
    assert main(["animate", str(wav), "--weights", str(tmp_path / "none.safetensors"), "-q"]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert _files(tmp_path) == ["line.wav"]


def test_batch_reports_failures_and_keeps_good_results(tmp_path, weights, capsys):
    good = _wav(tmp_path / "good.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, dtype=np.float32), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 20)
    out = tmp_path / "out"
    out.mkdir()
    jobs = [
        {"audio": str(good), "emotion": "sad"},
        {"audio": str(bad)},
        {"audio": str(silent), "fps": 60},
        {"audio": str(tmp_path / "missing.wav")},
        {"audio": str(good), "output": str(out / "typo.npz"), "emotoin": "sad"},
    ]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    code = main(
        ["animate", "--batch", str(tmp_path / "jobs.json"), "--out-dir", str(out), "--captions", "srt,vtt",
         "--weights", weights, "--device", "cpu", "-q"]
    )  # fmt: skip
    assert code == 1
    report = capsys.readouterr().out
    assert "2 of 5 succeeded" in report
    assert "not found" in report and "emotoin" in report and "cannot decode" in report
    assert _files(out) == ["good.npz", "good.srt", "good.vtt", "silent.npz", "silent.srt", "silent.vtt"]
    assert Animation.load(out / "silent.npz").n_frames == 30
    (tmp_path / "list.txt").write_text(f"# takes\n{good}\n\n{silent}\n")
    assert (
        main(
            ["animate", "--batch", str(tmp_path / "list.txt"), "--weights", weights, "--device", "cpu", "-q"]
        )
        == 0
    )
    assert (tmp_path / "good.npz").exists() and (tmp_path / "silent.npz").exists()


def test_emotion_forms_on_the_command_line(tmp_path):
    assert emotion_from_text("Happy") == "happy"
    assert emotion_from_text("0:neutral, 2.5:happy:0.8") == ((0.0, "neutral", 1.0), (2.5, "happy", 0.8))
    schedule = tmp_path / "s.json"
    schedule.write_text('[[0, "calm", 1], [1, "sad", 0.5]]')
    assert emotion_from_text(str(schedule)) == ((0, "calm", 1), (1, "sad", 0.5))


@pytest.mark.slow  # a fresh interpreter imports torch: several seconds on a busy machine
def test_module_entry_point(tmp_path, weights):
    wav = _wav(tmp_path / "a.wav", 0.5)
    result = subprocess.run(
        [sys.executable, "-m", "engine", "animate", str(wav), "--weights", weights, "--device", "cpu", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.npz").exists()
    assert "ok" in result.stdout
