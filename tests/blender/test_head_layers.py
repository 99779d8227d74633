"""The complete DualFace head and the take's layers in real Blender: parts follow, layers are optional.

Animations come from the synthetic ground truth with its phones, so the jaw, the coronal consonants
and the layers can be checked against independent numbers; the engine itself is not needed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from blender_helpers import PHONES, ground_truth_animation, write_speechlike_wav

pytestmark = pytest.mark.blender

ALL_LAYERS = ("blinks", "gaze", "head")
MM = 1e-3


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=2.0)


def _animation(emotion: str = "neutral"):
    from engine.animation import TimedPhone

    animation = ground_truth_animation(fps=30.0, seconds=2.0, emotion=emotion)
    return dataclasses.replace(animation, audio_phonemes=[TimedPhone(p, s, e) for p, s, e in PHONES])


def _take(scene, obj, audio, monkeypatch, layers=ALL_LAYERS, animation=None, mode="AUTO"):
    from blender_addon import engine_bridge, pipeline
    from engine.request import AnimateRequest

    animation = animation or _animation()
    monkeypatch.setattr(engine_bridge, "animate", lambda *args, **kwargs: animation)
    prepared = pipeline.prepare(scene, obj, AnimateRequest(str(audio), layers=layers), mode=mode)
    return pipeline.run(prepared), animation


def _world(bpy, obj, frame: int) -> np.ndarray:
    """World positions of the evaluated mesh (shape keys, modifiers, parents) at ``frame``."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    matrix = np.array(evaluated.matrix_world)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def _parts(bpy, head) -> dict:
    return {
        o["dualface_head_part"]: o for o in bpy.data.objects if o.parent == head and "dualface_head_part" in o
    }


def _tracks(owner) -> dict[str, bool]:
    anim = owner.animation_data
    return {t.name: t.mute for t in anim.nla_tracks} if anim else {}


def test_the_complete_head_adds_every_part_around_the_unchanged_face(scene):
    import bpy

    from blender_addon.head import add_head
    from engine.face.head import eye_cover_faces
    from engine.face.template import load_template

    head = add_head(scene, complete=True)
    template = load_template()
    co = np.empty(len(head.data.vertices) * 3, dtype=np.float32)
    head.data.vertices.foreach_get("co", co)
    assert np.array_equal(co.reshape(-1, 3), template.vertices)  # the 468 vertices, as they were
    assert len(head.data.polygons) == len(template.faces) - len(eye_cover_faces(template))  # eyes open
    parts = _parts(bpy, head)
    assert set(parts) == {
        "skull",
        "neck",
        "eye_left",
        "eye_right",
        "upper_teeth",
        "lower_teeth",
        "tongue",
        "mouth",
    }
    for part in parts.values():
        assert part.data.materials and part.data.uv_layers
    assert {m.name for m in parts["eye_left"].data.materials} >= {"DualFace Iris", "DualFace Pupil"}
    assert parts["tongue"].data.shape_keys.key_blocks.get("DF Tongue Tip") is not None
    assert parts["skull"].modifiers[0].type == "SURFACE_DEFORM" and parts["skull"].modifiers[0].is_bound
    plain = add_head(scene, "Plain")
    assert len(plain.data.polygons) == len(template.faces) and not plain.children  # the default is the face


def test_teeth_ride_the_jaw_and_the_tongue_tip_meets_the_ridge(scene, audio, monkeypatch):
    import bpy

    from blender_addon.head import add_head
    from engine.arkit import ARKIT_INDEX
    from engine.face.head import alveolar_ridge, default_head, tongue_tip_index

    head = add_head(scene, complete=True)
    result, animation = _take(scene, head, audio, monkeypatch, layers=())
    parts = _parts(bpy, head)
    assert result.parts[parts["lower_teeth"].name]["action"] and result.parts[parts["tongue"].name]["action"]
    assert result.parts[parts["upper_teeth"].name]["action"] is None
    open_frame = int(np.argmax(animation.arkit[:, ARKIT_INDEX["jawOpen"]]))
    assert animation.arkit[open_frame, ARKIT_INDEX["jawOpen"]] > 0.3
    lower_rest, lower_open = (
        _world(bpy, parts["lower_teeth"], 1),
        _world(bpy, parts["lower_teeth"], 1 + open_frame),
    )
    chin = head.data.vertices[152]
    chin_drop = _world(bpy, head, 1)[chin.index, 2] - _world(bpy, head, 1 + open_frame)[chin.index, 2]
    drop = lower_rest[:, 2].mean() - lower_open[:, 2].mean()
    assert drop > 2 * MM and 0.3 * chin_drop < drop < 1.2 * chin_drop
    assert (
        np.abs(_world(bpy, parts["upper_teeth"], 1 + open_frame) - _world(bpy, parts["upper_teeth"], 1)).max()
        < 1e-6
    )
    ridge = alveolar_ridge(default_head()["upper_teeth"])
    tip = tongue_tip_index(default_head()["tongue"])
    for phone, start, end in PHONES:
        if phone in ("L", "T", "D", "N", "TH"):
            frame = 1 + round(0.5 * (start + end) * 30)
            tip_at = _world(bpy, parts["tongue"], frame)[tip]
            assert np.linalg.norm(tip_at - ridge) < 3 * MM, f"tongue tip {phone}"
    vowel = 1 + round(1.2 * 30)  # AA: the tip lies low
    assert np.linalg.norm(_world(bpy, parts["tongue"], vowel)[tip] - ridge) > 5 * MM


def test_layers_get_their_own_tracks_blinks_close_the_lids_and_muting_one_removes_it(
    scene, audio, monkeypatch
):
    import bpy

    from blender_addon.head import add_head
    from engine.face import landmarks as lm

    head = add_head(scene, complete=True)
    result, _ = _take(scene, head, audio, monkeypatch)
    take = result.action
    key_tracks = _tracks(head.data.shape_keys)
    assert {f"[DF {layer}] {take}" for layer in ALL_LAYERS} <= set(key_tracks)
    assert f"[DF head] {take}" in _tracks(head)
    parts = _parts(bpy, head)
    assert f"[DF gaze] {take}" in _tracks(parts["eye_left"])
    blink = head.data.shape_keys.key_blocks[f"{take}_eyeBlinkLeft"]
    strip = head.data.shape_keys.animation_data.nla_tracks[f"[DF blinks] {take}"].strips[0]
    values = {}
    for frame in range(1, 61):
        scene.frame_set(frame)
        values[frame] = blink.value
    peak = max(values, key=values.get)
    assert values[peak] == pytest.approx(1.0)
    upper, lower = list(lm.EYELID_UPPER_LEFT_0), list(lm.EYELID_LOWER_LEFT_0)
    shut = _world(bpy, head, peak)
    assert np.linalg.norm(shut[upper] - shut[lower], axis=1).max() <= 0.5 * MM
    strip.mute = True
    opened = _world(bpy, head, peak)
    assert np.linalg.norm(opened[upper] - opened[lower], axis=1).max() > 3 * MM
    assert strip.action.name == f"{take}_blinks"


def test_eyes_stay_in_their_sockets_while_the_head_moves(scene, audio, monkeypatch):
    import bpy

    from blender_addon.head import add_head
    from engine.face.head import EYE_RADIUS, eye_centre
    from engine.face.template import load_template

    head = add_head(scene, complete=True)
    _take(scene, head, audio, monkeypatch)
    parts = _parts(bpy, head)
    template = load_template()
    turned = []
    for frame in range(5, 60, 6):
        scene.frame_set(frame)
        matrix = np.array(head.matrix_world)
        turned.append(np.degrees(np.arccos(np.clip((np.trace(matrix[:3, :3]) - 1) / 2, -1, 1))))
        for side in ("left", "right"):
            ball = _world(bpy, parts[f"eye_{side}"], frame)
            socket = eye_centre(template, side) @ matrix[:3, :3].T + matrix[:3, 3]
            distance = np.linalg.norm(ball - socket, axis=1)  # every point of the ball on its sphere
            assert np.abs(distance - EYE_RADIUS).max() < 0.05 * MM
    assert max(turned) > 0.3  # the head did move


def test_layers_are_optional(scene, audio, monkeypatch):
    import bpy

    from blender_addon.head import add_head

    head = add_head(scene, complete=True)
    result, _ = _take(scene, head, audio, monkeypatch, layers=())
    assert result.layers == {}
    assert not any(name.startswith("[DF ") for name in _tracks(head.data.shape_keys))
    assert not _tracks(head) and not _tracks(_parts(bpy, head)["eye_left"])
    only, _ = _take(scene, head, audio, monkeypatch, layers=("gaze",))
    assert set(only.layers) == {"gaze"}
    names = [k.name for k in head.data.shape_keys.key_blocks]
    assert not any(n.startswith(only.action) and "Blink" in n for n in names)


def test_a_take_never_overwrites_the_artists_animation_and_restore_silences_the_layers(
    scene, audio, monkeypatch
):

    from blender_addon import keyframes, takes
    from blender_addon.head import add_head

    head = add_head(scene, complete=True)
    head.location = (0.0, 0.0, 0.1)
    head.keyframe_insert("location", frame=1)
    artist_object_action = head.animation_data.action
    block = head.shape_key_add(name="artist_smile", from_mix=False)
    block.value = 0.4
    block.keyframe_insert("value", frame=1)
    artist_keys_action = head.data.shape_keys.animation_data.action
    result, _ = _take(scene, head, audio, monkeypatch)
    assert head.animation_data.action == artist_object_action  # the head layer is a strip, not a swap
    assert len(keyframes.find_fcurve(head, "location", 2).keyframe_points) == 1
    assert head.data.shape_keys.animation_data.action.name == result.action
    assert takes.restore_previous_action(head) == artist_keys_action.name
    assert all(mute for name, mute in _tracks(head.data.shape_keys).items() if name.endswith(result.action))
    assert all(mute for name, mute in _tracks(head).items() if name.startswith("[DF "))


def test_the_eyes_follow_a_gaze_target(scene, audio, monkeypatch):
    import bpy

    from blender_addon.head import add_head

    head = add_head(scene, complete=True)
    target = bpy.data.objects.new("Look here", None)
    target.location = (0.6, -1.0, 0.05)  # to the subject's left, in front
    scene.collection.objects.link(target)
    scene.dualface.gaze_target = target
    _take(scene, head, audio, monkeypatch, layers=("gaze",))
    eye = _parts(bpy, head)["eye_left"]
    yaws = []
    for frame in range(1, 60, 5):
        scene.frame_set(frame)
        yaws.append(np.degrees(eye.rotation_euler.z))
    assert np.mean(yaws) > 15.0  # turned toward the target (about 30 degrees away)


def _arkit_mesh(bpy, scene, name: str, keys: list[str], centre, parent):
    """A small box with ARKit-named keys (each moves it a little) parented to ``parent``."""
    mesh = bpy.data.meshes.new(name)
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32) * 0.005
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh.from_pydata((corners + np.asarray(centre, np.float32)).tolist(), [], faces)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    obj.parent = parent
    obj.shape_key_add(name="Basis", from_mix=False)
    for key in keys:
        block = obj.shape_key_add(name=key, from_mix=False)
        block.data[0].co.z -= 0.002
    return obj


def test_every_mesh_of_an_arkit_character_moves_in_the_take(scene, audio, monkeypatch):
    import bpy
    from blender_helpers import add_arkit_rig

    arm = bpy.data.objects.new("Armature", bpy.data.armatures.new("Armature"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bone = arm.data.edit_bones.new("Head")
    bone.head, bone.tail = (0.0, 0.02, -0.06), (0.0, 0.02, 0.06)
    bpy.ops.object.mode_set(mode="OBJECT")
    head = add_arkit_rig(scene, "Wolf3D_Head")
    head.parent = arm
    teeth = _arkit_mesh(
        bpy, scene, "Wolf3D_Teeth", ["jawOpen", "mouthClose", "tongueOut"], (0, -0.045, -0.045), arm
    )
    eyes = _arkit_mesh(
        bpy, scene, "EyeLeft", ["eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft"], (0.03, -0.03, 0.026), arm
    )
    teeth_before = teeth.shape_key_add(name="artist_pose", from_mix=False)
    teeth_before.keyframe_insert("value", frame=1)
    artist_teeth_action = teeth.data.shape_keys.animation_data.action
    stranger = _arkit_mesh(bpy, scene, "OtherCharacter", ["jawOpen"], (2.0, 0.0, 0.0), None)
    result, animation = _take(scene, head, audio, monkeypatch, mode="ARKIT")
    assert result.mode == "ARKIT"
    assert result.parts["Wolf3D_Teeth"]["action"] and result.parts["EyeLeft"]["part"] == "arkit"
    assert "OtherCharacter" not in result.parts and stranger.data.shape_keys.animation_data is None
    teeth_action = teeth.data.shape_keys.animation_data.action
    assert teeth_action.name == result.parts["Wolf3D_Teeth"]["action"]
    assert result.parts["Wolf3D_Teeth"]["previous_action"] == artist_teeth_action.name  # stashed
    assert any(
        artist_teeth_action == s.action
        for t in teeth.data.shape_keys.animation_data.nla_tracks
        for s in t.strips
    )
    jaw_head = head.data.shape_keys.key_blocks["jawOpen"]
    jaw_teeth = teeth.data.shape_keys.key_blocks["jawOpen"]
    for frame in (10, 30, 45):
        scene.frame_set(frame)
        assert jaw_teeth.value == pytest.approx(jaw_head.value, abs=1e-6)
    assert f"[DF gaze] {result.action}" in _tracks(eyes.data.shape_keys)
    assert f"[DF head] {result.action}" in _tracks(arm) and not _tracks(head)  # the head bone turns
    turned = []
    for frame in range(5, 60, 6):
        scene.frame_set(frame)
        turned.append(arm.pose.bones["Head"].rotation_quaternion.angle)
    assert max(turned) > np.radians(0.3)
