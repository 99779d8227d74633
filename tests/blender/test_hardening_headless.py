"""Headless takes are never lost: failing saves and renders keep the take, batches run every job."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from blender_helpers import TINY_MODEL, write_speechlike_wav

pytestmark = [pytest.mark.blender, pytest.mark.timeout(600)]
UNWRITABLE = "/proc"  # an existing folder nobody, root included, can create files in


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=1.0)


@pytest.fixture
def system_temp(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "system_temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _actions(bpy) -> list[str]:
    return sorted(a.name for a in bpy.data.actions)


def test_failed_save_keeps_the_take_and_writes_a_fallback_blend(
    scene, audio, engine_weights, system_temp, capsys
):
    import bpy

    from blender_addon import headless

    code = headless.main(
        ["animate", "--add-head", "--audio", str(audio), "--save", f"{UNWRITABLE}/out.blend"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "out.blend" in err
    assert "DF_hello_001" in _actions(bpy)  # the take is still in the scene
    fallbacks = list(system_temp.glob("*.blend"))
    assert len(fallbacks) == 1 and str(fallbacks[0]) in err
    bpy.ops.wm.open_mainfile(filepath=str(fallbacks[0]))
    assert "DF_hello_001" in _actions(bpy)


def test_failed_render_keeps_the_take_and_still_saves(scene, audio, engine_weights, tmp_path, capsys):
    import bpy

    from blender_addon import headless

    saved = tmp_path / "out.blend"
    code = headless.main(
        [
            "animate",
            "--add-head",
            "--audio",
            str(audio),
            "--render",
            f"{UNWRITABLE}/movie.mp4",
            "--save",
            str(saved),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "movie.mp4" in err
    assert saved.is_file() and "DF_hello_001" in _actions(bpy)


def test_save_onto_the_opened_blend_is_refused(scene, audio, engine_weights, tmp_path, capsys):
    import bpy

    from blender_addon import headless

    opened = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(opened))
    before = opened.read_bytes()
    code = headless.main(["animate", "--add-head", "--audio", str(audio), "--save", str(opened)])
    assert code == 2 and "opened" in capsys.readouterr().err
    assert opened.read_bytes() == before and _actions(bpy) == []


@pytest.mark.parametrize("schedule", [5, [[None, "happy", 1]], {"happy": 1}, []])
def test_a_malformed_emotion_schedule_file_is_a_usage_error(
    scene, audio, engine_weights, tmp_path, capsys, schedule
):
    import bpy

    from blender_addon import headless

    path = tmp_path / "emotion.json"
    path.write_text(json.dumps(schedule))
    code = headless.main(["animate", "--add-head", "--audio", str(audio), "--emotion", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "emotion" in err and "Traceback" not in err
    assert _actions(bpy) == []


def test_weights_for_another_mesh_give_a_clean_error(scene, audio, tmp_path, capsys):
    import torch

    from blender_addon import headless
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.manual_seed(0)
    other = save_checkpoint(
        DualFace(ModelConfig(**{**TINY_MODEL, "n_vertices": 100})), tmp_path / "other.safetensors"
    )
    code = headless.main(["animate", "--add-head", "--audio", str(audio), "--weights", str(other)])
    err = capsys.readouterr().err
    assert code == 1 and "100" in err and "468" in err and "Traceback" not in err


def test_batch_runs_every_job_reports_each_and_resumes_only_the_failed(
    scene, audio, engine_weights, tmp_path, system_temp, capsys
):
    from blender_addon import headless

    second = write_speechlike_wav(tmp_path / "second.wav", seconds=1.0, seed=1)
    jobs = [
        {"audio": str(audio), "add_head": True, "output": str(tmp_path / "one.npz")},
        {"audio": str(audio), "add_head": True, "emotion": 5},
        {"audio": str(audio), "add_head": True, "start_frame": "abc"},
        {"audio": str(audio), "add_head": True, "save": f"{UNWRITABLE}/job4.blend"},
        {"audio": str(second), "add_head": True, "output": str(tmp_path / "five.npz")},
    ]
    batch, report = tmp_path / "jobs.json", tmp_path / "report.json"
    batch.write_text(json.dumps(jobs))
    code = headless.main(["animate", "--batch", str(batch), "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 1 and "2 of 5 jobs succeeded" in captured.out
    results = json.loads(report.read_text())["jobs"]
    assert [r["status"] for r in results] == ["ok", "invalid", "invalid", "failed", "ok"]
    assert "emotion" in results[1]["error"] and "start_frame" in results[2]["error"]
    assert "job4.blend" in results[3]["error"] and list(system_temp.glob("*.blend"))
    assert results[0]["outputs"] == [str(tmp_path / "one.npz")] and (tmp_path / "five.npz").is_file()

    jobs[1]["emotion"] = "happy"  # fix one job; --resume reruns only what did not succeed
    batch.write_text(json.dumps(jobs))
    (tmp_path / "one.npz").unlink()  # a deleted output runs its job again
    code = headless.main(["animate", "--batch", str(batch), "--report", str(report), "--resume"])
    assert code == 1
    results = json.loads(report.read_text())["jobs"]
    assert [r["status"] for r in results] == ["ok", "ok", "invalid", "failed", "skipped"]
    assert (tmp_path / "one.npz").is_file()


def test_failed_render_without_save_keeps_the_take_beside_the_opened_file(
    scene, audio, engine_weights, tmp_path, capsys
):
    import bpy

    from blender_addon import headless

    opened = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(opened))
    before = opened.read_bytes()
    code = headless.main(
        ["animate", "--add-head", "--audio", str(audio), "--render", f"{UNWRITABLE}/movie.mp4"]
    )
    err = capsys.readouterr().err
    fallback = tmp_path / "scene_dualface_fallback.blend"
    assert code == 1 and "movie.mp4" in err and str(fallback) in err
    assert fallback.is_file() and opened.read_bytes() == before
    folder = tmp_path / "out.blend"
    folder.mkdir()
    code = headless.main(["animate", "--add-head", "--audio", str(audio), "--save", str(folder)])
    assert code == 2 and "existing folder" in capsys.readouterr().err
