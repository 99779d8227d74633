"""Every bad input gets a message naming the fix, and the file is left exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
from blender_helpers import add_arkit_rig, fingerprint, write_speechlike_wav

pytestmark = pytest.mark.blender


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=1.0)


def _mesh(bpy, scene, name, vertices, faces):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _linked_head(bpy, scene, tmp_path):
    from blender_addon.head import add_head

    library = tmp_path / "library.blend"
    head = add_head(scene, "LibraryHead")
    bpy.data.libraries.write(str(library), {head}, fake_user=True)
    bpy.data.objects.remove(head)
    with bpy.data.libraries.load(str(library), link=True) as (_, linked):
        linked.objects = ["LibraryHead"]
    scene.collection.objects.link(linked.objects[0])
    return linked.objects[0]


def _case(name, bpy, scene, tmp_path, audio):
    """(object, audio path, mode, weights) for one bad input."""
    from blender_addon.head import add_head

    good_head = lambda: add_head(scene)  # noqa: E731
    if name == "no object":
        return None, audio, "AUTO", None
    if name == "not a mesh":
        camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
        scene.collection.objects.link(camera)
        return camera, audio, "AUTO", None
    if name == "no faces":
        return _mesh(bpy, scene, "Points", [(0, 0, 0), (1, 0, 0), (0, 1, 0)], []), audio, "AUTO", None
    if name == "missing audio":
        return good_head(), tmp_path / "nope.wav", "AUTO", None
    if name == "unsupported audio":
        text = tmp_path / "notes.txt"
        text.write_text("hello")
        return good_head(), text, "AUTO", None
    if name == "corrupt audio":
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF\x00\x00garbage" * 10)
        return good_head(), broken, "AUTO", None
    if name == "too short audio":
        return good_head(), write_speechlike_wav(tmp_path / "blip.wav", seconds=0.05), "AUTO", None
    if name == "linked mesh":
        return _linked_head(bpy, scene, tmp_path), audio, "AUTO", None
    if name == "missing weights":
        return good_head(), audio, "AUTO", str(tmp_path / "gone.safetensors")
    if name == "vertex mode on another mesh":
        corners = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
        quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        cube = _mesh(bpy, scene, "Box", corners, quads)
        return cube, audio, "VERTEX", None
    if name == "arkit mode without keys":
        return good_head(), audio, "ARKIT", None
    if name == "absolute shape keys":
        rig = add_arkit_rig(scene, "Rig")
        rig.data.shape_keys.use_relative = False
        return rig, audio, "AUTO", None
    raise AssertionError(name)


CASES = {
    "no object": "select a mesh",
    "not a mesh": "not a mesh",
    "no faces": "has no faces",
    "missing audio": "audio file not found",
    "unsupported audio": "unsupported audio type",
    "corrupt audio": "cannot read audio",
    "too short audio": "needs at least",
    "linked mesh": "Make Local",
    "missing weights": "weights file not found",
    "vertex mode on another mesh": "468-vertex DualFace head",
    "arkit mode without keys": "ARKit output needs",
    "absolute shape keys": "relative keys",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_before_anything_is_written(name, scene, tmp_path, audio, engine_weights):
    import bpy

    from blender_addon import engine_bridge, pipeline
    from blender_addon.validation import InputError

    obj, path, mode, weights = _case(name, bpy, scene, tmp_path, audio)
    before = fingerprint(bpy)
    settings = engine_bridge.EngineSettings(weights=weights)
    with pytest.raises(InputError, match=CASES[name]):
        pipeline.prepare(scene, obj, str(path), mode=mode, settings=settings)
    assert fingerprint(bpy) == before

    if weights is not None:
        return  # the panel reads weights from the preferences, not per request
    # The panel's operator reports the same message as an error, and also changes nothing.
    panel = scene.dualface
    panel.target = obj if obj is not None and obj.type == "MESH" else None
    bpy.context.view_layer.objects.active = obj
    panel.audio_path = str(path)
    panel.output_mode = mode
    before = fingerprint(bpy)
    with pytest.raises(RuntimeError, match=CASES[name]):
        bpy.ops.dualface.generate()
    assert fingerprint(bpy) == before


def test_missing_weights_everywhere_says_where_to_get_them(scene, audio, monkeypatch, tmp_path):
    from blender_addon import engine_bridge, pipeline
    from blender_addon.head import add_head
    from blender_addon.validation import InputError

    monkeypatch.setenv("DUALFACE_WEIGHTS", str(tmp_path / "nothing.safetensors"))
    if engine_bridge.BUNDLED_WEIGHTS.is_file():
        pytest.fail("a development checkout must not hold bundled weights inside blender_addon/")
    head = add_head(scene)
    with pytest.raises(InputError, match="no DualFace weights found.*--weights"):
        pipeline.prepare(scene, head, str(audio))


def test_engine_not_set_up_names_the_preference(scene, audio, engine_weights, tmp_path):
    from blender_addon import engine_bridge, pipeline
    from blender_addon.head import add_head
    from blender_addon.validation import InputError

    head = add_head(scene)
    settings = engine_bridge.EngineSettings(mode="WORKER", python=str(tmp_path / "python3"))
    with pytest.raises(InputError, match="does not exist: fix it in the DualFace preferences"):
        pipeline.prepare(scene, head, str(audio), settings=settings)


def test_headless_bad_input_exits_1_with_the_message_and_saves_nothing(
    scene, audio, engine_weights, tmp_path, capsys
):
    import bpy

    from blender_addon import headless

    _mesh(bpy, scene, "Points", [(0, 0, 0), (1, 0, 0), (0, 1, 0)], [])
    saved = tmp_path / "out.blend"
    before = fingerprint(bpy)
    code = headless.main(["animate", "--object", "Points", "--audio", str(audio), "--save", str(saved)])
    assert code == 1
    assert "has no faces" in capsys.readouterr().err
    assert not saved.exists() and fingerprint(bpy) == before
    code = headless.main(["animate", "--add-head", "--audio", str(tmp_path / "nope.wav")])
    assert code == 2 and "audio file not found" in capsys.readouterr().err
    assert fingerprint(bpy) == before  # the head is only added once everything else passed


def test_a_take_longer_than_the_engine_output_is_rejected_without_writing(scene, audio):
    import bpy

    from blender_addon import takes, validation
    from blender_addon.head import add_head
    from engine.animation import Animation

    head = add_head(scene)
    target = validation.check_target(head, "VERTEX")
    wrong = Animation(
        fps=30.0, offsets=np.zeros((10, 100, 3), np.float32), arkit=np.zeros((10, 52), np.float32)
    )
    before = fingerprint(bpy)
    with pytest.raises(validation.InputError, match="do not fit"):
        takes.write_take(scene, target, wrong, validation.check_audio(audio), 1)
    with pytest.raises(validation.InputError, match="resample"):
        takes.write_take(scene, target, Animation(fps=25.0, offsets=wrong.offsets, arkit=wrong.arkit),
                         validation.check_audio(audio), 1)  # fmt: skip
    assert fingerprint(bpy) == before
