"""The parts of the UI that background Blender can exercise: engine set-up, overlay, head, restore."""

from __future__ import annotations

import sys

import pytest
from blender_helpers import ground_truth_animation, write_speechlike_wav

pytestmark = pytest.mark.blender


def test_engine_setup_is_refused_offline_and_installs_only_into_the_user_folder(addon, tmp_path):
    import bpy

    from blender_addon import engine_setup

    assert not bpy.app.online_access  # background Blender starts offline unless told otherwise
    with pytest.raises(RuntimeError, match="offline mode"):
        bpy.ops.dualface.setup_engine()
    with pytest.raises(PermissionError, match="allow online access"):
        engine_setup.start(tmp_path, "CPU", online_access=False)
    assert not engine_setup.state.running and not (tmp_path / "site-packages").exists()
    torch_step, deps_step = engine_setup.pip_commands(tmp_path, "CUDA", python="/py")
    for command in (torch_step, deps_step):
        assert command[:4] == ["/py", "-m", "pip", "install"]
        assert command[command.index("--target") + 1] == str(tmp_path / "site-packages")
    assert torch_step[torch_step.index("--index-url") + 1] == engine_setup.TORCH_INDEX["CUDA"]
    assert torch_step[-1].endswith("torch-cuda.txt") and deps_step[-1].endswith("engine.txt")
    import numpy

    constraints = engine_setup.write_constraints(tmp_path)
    assert constraints.read_text() == f"numpy=={numpy.__version__}\n"  # Blender's numpy is never replaced
    assert str(constraints) in deps_step and not any(a.startswith("numpy") for a in deps_step)
    with pytest.raises(ValueError, match="CPU, CUDA"):
        engine_setup.pip_commands(tmp_path, "ROCM")


def test_an_installed_engine_is_appended_after_blenders_own_modules(tmp_path, monkeypatch):
    from blender_addon import engine_setup

    monkeypatch.setattr(sys, "path", list(sys.path))
    assert not engine_setup.activate(tmp_path)  # nothing installed yet
    (tmp_path / "site-packages").mkdir()
    assert engine_setup.activate(tmp_path)
    assert sys.path[-1] == str(tmp_path / "site-packages")


def test_overlay_finds_the_caption_under_the_playhead():
    from blender_addon.overlay import caption_at

    meta = {"start_frame": 11, "fps": 30.0, "captions": [
        {"start": 0.25, "end": 0.8, "text": "hello", "sync": 0.9},
        {"start": 1.0, "end": 1.7, "text": " ", "sync": 0.1},
    ]}  # fmt: skip
    assert caption_at(meta, 11) is None  # t = 0
    assert caption_at(meta, 11 + 8)["text"] == "hello"  # t = 0.27 s
    assert caption_at(meta, 11 + 24) is None  # t = 0.8 s: the end is exclusive
    assert caption_at(meta, 11 + 40) is None  # blank captions are not drawn


def test_add_head_operator_targets_the_new_head_and_undoes_in_one_step(scene):
    import bpy

    bpy.ops.ed.undo_push(message="empty")
    assert bpy.ops.dualface.add_head("EXEC_DEFAULT", True) == {"FINISHED"}
    head = bpy.data.objects["DualFace Head"]
    assert bpy.context.scene.dualface.target == head
    assert len(head.data.vertices) == 468 and len(head.data.polygons) > 800
    assert head.data.uv_layers and head.material_slots[0].material.name == "DualFace Skin"
    bpy.ops.ed.undo()
    assert "DualFace Head" not in bpy.data.objects


def test_restore_operator_reports_when_there_is_nothing_to_restore(scene, tmp_path):
    import bpy

    from blender_addon import takes, validation
    from blender_addon.head import add_head

    head = add_head(scene)
    scene.dualface.target = head
    with pytest.raises(RuntimeError, match="no DualFace take active"):
        bpy.ops.dualface.restore_previous()
    audio = validation.check_audio(write_speechlike_wav(tmp_path / "hi.wav", 2.0))
    takes.write_take(scene, validation.check_target(head, "VERTEX"), ground_truth_animation(), audio, 1)
    with pytest.raises(RuntimeError, match="no previous action"):
        bpy.ops.dualface.restore_previous()
