"""The Generate operator and the headless command with a real (small, random) engine checkpoint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from blender_helpers import add_arkit_rig, fingerprint, python_command, write_speechlike_wav

pytestmark = pytest.mark.blender
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=2.0)


def _ffprobe(path) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type,codec_name",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_generate_operator_writes_a_take_that_one_undo_removes(scene, audio, engine_weights):
    import bpy

    rig = add_arkit_rig(scene, "Rig")
    settings = scene.dualface
    settings.target = rig
    settings.audio_path = str(audio)
    settings.emotion, settings.intensity = "HAPPY", 0.6
    settings.keyframe_insert("emotion", frame=1)
    settings.emotion = "SURPRISED"
    settings.keyframe_insert("emotion", frame=30)  # the engine gets a happy -> surprised schedule
    bpy.ops.ed.undo_push(message="before take")
    before = fingerprint(bpy)
    assert bpy.ops.dualface.generate("EXEC_DEFAULT", True) == {"FINISHED"}  # True: push an undo step
    rig = bpy.data.objects["Rig"]
    action = rig.data.shape_keys.animation_data.action
    assert action.name == "DF_hello_001"
    meta = json.loads(action["dualface"])
    assert meta["mode"] == "ARKIT" and meta["frame_end"] == 60  # 2 s at 30 fps from frame 1
    assert any(s.type == "SOUND" for s in scene.sequence_editor.strips)
    bpy.ops.ed.undo()
    assert fingerprint(bpy) == before


def test_cancel_before_the_engine_starts_writes_nothing(scene, audio, engine_weights):
    import threading

    import bpy

    from blender_addon import engine_bridge, pipeline
    from blender_addon.head import add_head

    head = add_head(scene)
    prepared = pipeline.prepare(scene, head, str(audio), mode="VERTEX")
    before = fingerprint(bpy)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(engine_bridge.TakeCancelled):
        pipeline.run(prepared, cancel=cancel)
    assert fingerprint(bpy) == before


@pytest.mark.slow
def test_headless_animate_renders_an_mp4_with_audio_and_captions(scene, audio, engine_weights, tmp_path):
    import bpy

    from blender_addon import headless

    add_arkit_rig(scene, "Head")
    source = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    movie, saved = tmp_path / "out.mp4", tmp_path / "out.blend"
    code = headless.main(
        ["animate", "--object", "Head", "--audio", str(audio), "--emotion", "happy", "--intensity", "0.6",
         "--captions", "--render", str(movie), "--resolution", "160x120", "--save", str(saved)]
    )  # fmt: skip
    assert code == 0
    probe = _ffprobe(movie)
    kinds = {s["codec_type"]: s["codec_name"] for s in probe["streams"]}
    assert kinds == {"video": "h264", "audio": "aac"}
    assert float(probe["format"]["duration"]) == pytest.approx(2.0, abs=0.1)
    assert bpy.data.filepath == str(source)  # the opened file is never overwritten
    bpy.ops.wm.open_mainfile(filepath=str(saved))
    actions = [a.name for a in bpy.data.actions]  # the take and its layers (blinks, gaze, head)
    assert "DF_hello_001" in actions and all(name.startswith("DF_hello_001") for name in actions)
    review = next(s for s in bpy.data.scenes if s.get("dualface_review_of") == "Scene")
    texts = [s for s in review.sequence_editor.strips_all if s.get("dualface_role") == "caption"]
    titles = [s.text for s in review.sequence_editor.strips_all if s.get("dualface_role") == "title"]
    assert len(titles) == 1 and "hello" in titles[0] and "happy 60%" in titles[0]
    captions = json.loads(bpy.data.actions["DF_hello_001"]["dualface"])["captions"]
    assert len(texts) == len([c for c in captions if c["text"].strip()]) >= 1
    assert len(bpy.data.scenes["Scene"].timeline_markers) == len(texts)


@pytest.mark.slow
def test_headless_batch_isolates_jobs_and_fails_when_one_fails(
    scene, audio, engine_weights, tmp_path, capsys
):
    import bpy

    from blender_addon import headless

    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "empty.blend"))
    jobs = {
        "defaults": {"add_head": True, "mode": "vertex"},
        "jobs": [
            {"audio": audio.name, "emotion": "happy", "save": "one.blend"},
            {"audio": "missing.wav", "save": "two.blend"},
            {"audio": audio.name, "emotion": "sad", "intensity": 0.5, "save": "three.blend"},
        ],
    }
    batch = tmp_path / "jobs.json"
    batch.write_text(json.dumps(jobs))
    assert headless.main(["animate", "--batch", str(batch)]) == 1
    output = capsys.readouterr()
    assert "2 of 3 jobs succeeded" in output.out
    assert "failed jobs: 2" in output.err and "missing.wav" in output.err
    assert not (tmp_path / "two.blend").exists()
    for name in ("one.blend", "three.blend"):
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / name))
        # Each job started from the opened file: one head, one take, never the other job's.
        actions = [a.name for a in bpy.data.actions]  # the take, its parts and its layers
        assert "DF_hello_001" in actions and all(name.startswith("DF_hello_001") for name in actions)
        assert [o.name for o in bpy.data.objects if o.parent is None] == ["DualFace Head"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["animate", "--object", "Head"], "--audio is required"),
        (["animate", "--audio", "a.wav", "--object", "H", "--emotion", "grumpy"], "choose one of"),
        (["animate", "--audio", "a.wav", "--object", "H", "--resolution", "big"], "640x480"),
        (["animate", "--audio", "a.wav", "--object", "H", "--mode", "mesh"], "invalid choice"),
        (["animate", "--audio", "a.wav", "--object", "H", "--empty-scene"], "add --add-head"),
        (["paint"], "invalid choice"),
    ],
)
def test_headless_usage_errors_exit_2(scene, argv, message, capsys, tmp_path, monkeypatch):
    from blender_addon import headless

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    assert headless.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_command_is_registered_for_blender_minus_c(addon):
    import bpy

    from blender_addon import headless

    # Registering the same id again is refused with a warning: proof the first one is in place.
    assert hasattr(bpy.utils, "register_cli_command")
    assert headless.COMMAND == "dualface" and addon._cli_handle is not None


@pytest.mark.slow
def test_headless_runs_in_a_real_blender_process(tmp_path, tiny_weights):
    """The bpy module in a fresh interpreter: the same path `blender -b -c dualface` takes."""
    audio = write_speechlike_wav(tmp_path / "clip.wav", seconds=1.0)
    script = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "import bpy, blender_addon\n"
        "blender_addon.register()\n"
        "from blender_addon import headless\n"
        f"sys.exit(headless.main(['animate', '--add-head', '--audio', {str(audio)!r}, '--weights', "
        f"{str(tiny_weights)!r}, '--save', {str(tmp_path / 'out.blend')!r}]))\n"
    )
    env = {"BLENDER_USER_RESOURCES": str(tmp_path / "user"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        python_command(script), capture_output=True, text=True, timeout=300, env=env,
        cwd=str(REPO),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DualFace: take DF_clip_001" in result.stdout
    assert (tmp_path / "out.blend").is_file()


@pytest.mark.slow
def test_external_python_worker_generates_the_same_kind_of_take(scene, audio, tiny_weights):
    """Blender installs without torch run the engine in another Python through engine.serve.

    Under pytest-blender, Blender's own Python has no torch: set DUALFACE_TEST_PYTHON to one that has."""
    import os
    import sys
    import threading

    import bpy

    from blender_addon import engine_bridge, pipeline
    from blender_addon.head import add_head

    head = add_head(scene)
    python = os.environ.get("DUALFACE_TEST_PYTHON", sys.executable)
    settings = engine_bridge.EngineSettings(
        mode="WORKER", python=python, weights=str(tiny_weights), device="cpu"
    )
    progress: list[float] = []
    try:
        prepared = pipeline.prepare(scene, head, str(audio), mode="VERTEX", settings=settings)
        result = pipeline.run(prepared, progress=progress.append)
        assert result.action == "DF_hello_001" and result.frame_end == 60
        assert progress and progress[-1] == pytest.approx(1.0)
        cancel = threading.Event()
        cancel.set()
        before = fingerprint(bpy)
        with pytest.raises(engine_bridge.TakeCancelled):
            pipeline.run(prepared, cancel=cancel)
        assert fingerprint(bpy) == before
    finally:
        engine_bridge.shutdown()


def test_the_generate_job_runs_the_engine_on_a_worker_thread_and_can_be_cancelled(
    scene, audio, engine_weights
):
    """What the modal operator's timer polls (modal operators never run in background mode)."""
    import threading

    from blender_addon import operators, pipeline
    from blender_addon.head import add_head

    prepared = pipeline.prepare(scene, add_head(scene), str(audio), mode="VERTEX")
    job = operators._Job(prepared)
    job.thread.start()
    assert job.done.wait(120)
    assert job.error is None and not job.cancelled
    assert job.animation.n_frames == 60 and job.progress == pytest.approx(1.0)
    assert job.thread.name != threading.main_thread().name

    cancelled = operators._Job(prepared)
    cancelled.cancel.set()
    cancelled.thread.start()
    assert cancelled.done.wait(120)
    assert cancelled.cancelled and cancelled.animation is None and cancelled.error is None


def test_the_addon_takes_rates_and_the_weights_override_from_the_engine_contract(monkeypatch, tmp_path):
    """No torch-free copies: the add-on reads engine.request, so a new rate or variable reaches it."""
    from blender_addon import engine_bridge
    from blender_addon.core import timing
    from engine.request import SUPPORTED_FPS, WEIGHTS_ENV

    assert all(timing.engine_rate_for(rate) == rate for rate in SUPPORTED_FPS)
    assert {timing.engine_rate_for(rate) for rate in (23.976, 29.97, 48.0, 120.0)} <= set(SUPPORTED_FPS)
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"not read here")
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    monkeypatch.setattr(engine_bridge, "BUNDLED_WEIGHTS", tmp_path / "no_bundle.safetensors")
    assert engine_bridge.resolve_weights(None) == str(weights)
