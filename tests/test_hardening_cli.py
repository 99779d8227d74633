"""`python -m engine animate`: usage errors exit 2, failed takes exit 1, batches report every job and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.cli import main

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    return str(save_checkpoint(DualFace(cfg), tmp_path_factory.mktemp("w") / "tiny.safetensors"))


def _wav(path: Path) -> Path:
    sf.write(path, (0.2 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    return path


@pytest.mark.parametrize("schedule", [5, [[None, "happy", 1]], {"0": "happy"}, [], [[0, "joyful", 1]]])
def test_a_malformed_emotion_schedule_file_is_a_usage_error(tmp_path, weights, capsys, schedule):
    path = tmp_path / "emotion.json"
    path.write_text(json.dumps(schedule))
    code = main(
        ["animate", str(_wav(tmp_path / "a.wav")), "--emotion", str(path), "--weights", weights, "-q"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "emotion" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "emotion.json"]


def test_batch_report_and_resume(tmp_path, weights, capsys):
    good, other = _wav(tmp_path / "good.wav"), _wav(tmp_path / "other.wav")
    jobs = [
        {"audio": str(good)},
        {"audio": str(good), "output": str(tmp_path / "bad.npz"), "emotion": 5},
        {"audio": str(tmp_path / "missing.wav")},
        {"audio": str(other), "intensity": "loud"},
    ]
    batch, report = tmp_path / "jobs.json", tmp_path / "report.json"
    batch.write_text(json.dumps(jobs))
    base = [
        "animate",
        "--batch",
        str(batch),
        "--weights",
        weights,
        "--report",
        str(report),
        "-q",
        "--threads",
        "1",
    ]
    assert main(base) == 1
    results = json.loads(report.read_text())["jobs"]
    assert [r["status"] for r in results] == ["ok", "invalid", "invalid", "invalid"]
    assert results[0]["outputs"] == [str(tmp_path / "good.npz")]
    assert "emotion" in results[1]["error"] and "missing.wav" in results[2]["error"]
    assert "intensity" in results[3]["error"]
    assert "1 of 4 succeeded" in capsys.readouterr().out

    jobs[3]["intensity"] = 0.5
    batch.write_text(json.dumps(jobs))
    assert main(base + ["--resume"]) == 1
    results = json.loads(report.read_text())["jobs"]
    assert [r["status"] for r in results] == ["skipped", "invalid", "invalid", "ok"]
    assert (tmp_path / "other.npz").is_file()
    assert main(["animate", str(good), "--resume", "--weights", weights]) == 2
