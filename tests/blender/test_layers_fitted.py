"""Blinks, gaze and brow raises on a fitted head (vertex mode through a fit), and headless --look-at.

The head is built here: the template face subdivided once, stretched, scaled and imported lying on
its back the way an FBX leaves it, with an eyeball mesh per eye whose origin is the character's. It
has no ARKit keys, so a take fits DualFace to it and drives it with 'DF_' keys; the layers must
reach its lids, brows and eyes through the same fit, each on its own NLA track.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from blender_helpers import PHONES, ground_truth_animation, write_speechlike_wav

pytestmark = pytest.mark.blender

SCALE = 2.0
STRETCH = np.array([1.08, 1.0, 0.95])  # wider and shorter than the template: not its shape


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALFACE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=2.0)


def _animation():
    from engine.animation import TimedPhone

    animation = ground_truth_animation(fps=30.0, seconds=2.0, emotion="neutral")
    return dataclasses.replace(animation, audio_phonemes=[TimedPhone(p, s, e) for p, s, e in PHONES])


def _fitted_head(bpy, scene):
    """(head object, its world vertices at rest): no ARKit keys, not the template, rotated 90 degrees
    in its object transform with the mesh data counter-rotated (upright in the world)."""
    from engine.face.template import load_template
    from engine.retarget.bench import subdivide

    template = load_template()
    vertices, faces = subdivide(template.vertices.astype(np.float64), template.faces.astype(np.int64))
    world = vertices * STRETCH * SCALE
    turn = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # 90 degrees about x
    mesh = bpy.data.meshes.new("Head")
    mesh.from_pydata((world @ turn).tolist(), [], faces.tolist())  # local = turn^-1 applied to world
    head = bpy.data.objects.new("Head", mesh)
    head.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.collection.objects.link(head)
    for side, suffix in (("left", "L"), ("right", "R")):
        corners = world[[template.landmarks[f"eye_outer_{side}"], template.landmarks[f"eye_inner_{side}"]]]
        centre = corners.mean(axis=0) + [0.0, 0.012 * SCALE, 0.0]  # behind the lids
        _ball(bpy, scene, f"Eye_{suffix}", centre, 0.011 * SCALE)
    bpy.context.view_layer.update()
    return head, world


def _ball(bpy, scene, name: str, centre, radius: float):
    """A UV sphere at a world position; its origin stays at the world origin, as an import leaves it."""
    rings, segments = 8, 12
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    sphere = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    points = np.vstack([sphere, [[0, 0, 1], [0, 0, -1]]]) * radius + centre
    top, bottom = len(sphere), len(sphere) + 1
    faces = []
    for r in range(rings - 2):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            faces.append((a, b, b + segments, a + segments))
    faces += [(top, (s + 1) % segments, s) for s in range(segments)]
    last = (rings - 2) * segments
    faces += [(bottom, last + s, last + (s + 1) % segments) for s in range(segments)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(points.tolist(), [], faces)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _take(scene, obj, audio, monkeypatch, layers=("blinks", "gaze", "head")):
    from blender_addon import engine_bridge, pipeline
    from engine.request import AnimateRequest

    animation = _animation()
    monkeypatch.setattr(engine_bridge, "animate", lambda *args, **kwargs: animation)
    prepared = pipeline.prepare(scene, obj, AnimateRequest(str(audio), layers=layers), mode="AUTO")
    return pipeline.run(prepared)


def _local(bpy, obj, frame: int) -> np.ndarray:
    """The evaluated mesh (shape keys) in the object's own frame: free of the head layer's turn."""
    bpy.context.scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(len(evaluated.data.vertices) * 3, dtype=np.float64)
    evaluated.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def _peak(bpy, scene, block, frames=range(1, 61)) -> tuple[int, float]:
    values = {}
    for frame in frames:
        scene.frame_set(frame)
        values[frame] = block.value
    best = max(values, key=values.get)
    return best, values[best]


def _tracks(owner) -> dict:
    anim = owner.animation_data
    return {t.name: t for t in anim.nla_tracks} if anim else {}


def _lid_gap(vertices: np.ndarray) -> float:
    from engine.face import landmarks as lm

    upper, lower = list(lm.EYELID_UPPER_LEFT_0), list(lm.EYELID_LOWER_LEFT_0)
    return float(np.linalg.norm(vertices[upper] - vertices[lower], axis=1).max())


def test_blinks_and_brows_reach_a_fitted_head_on_tracks_of_their_own(scene, cache, audio, monkeypatch):
    import bpy
    from blender_helpers import key_coordinates

    from engine.arkit import ARKIT_INDEX
    from engine.arkit.basis import arkit_basis

    head, world = _fitted_head(bpy, scene)
    head.shape_key_add(name="Basis", from_mix=False)
    artist = head.shape_key_add(name="artist_squint", from_mix=False)
    artist.data[5].co.z += 0.003
    artist.value = 0.3
    artist.keyframe_insert("value", frame=1)
    artist_action = head.data.shape_keys.animation_data.action
    artist_co = key_coordinates(head)["artist_squint"].copy()

    result = _take(scene, head, audio, monkeypatch)
    take = result.action
    assert result.mode == "VERTEX" and "dualface_fit" in head.keys()  # fitted by this take
    key = head.data.shape_keys
    tracks = _tracks(key)
    assert {f"[DF blinks] {take}", f"[DF head] {take}", f"[DF gaze] {take}"} <= set(tracks)
    assert f"[DF head] {take}" in _tracks(head)  # the head turns as an object too
    assert not [n for n in result.notes if "blinks" in n or "brow" in n], result.notes

    # The artist's key and action are untouched (the action stashed, not overwritten).
    np.testing.assert_array_equal(key_coordinates(head)["artist_squint"], artist_co)
    assert result.previous_action == artist_action.name and artist_action.name in bpy.data.actions
    assert any("Eye_L" in note and "not parented" in note for note in result.notes), result.notes

    # Blinks: at the blink peak the lids close by a good share of the head's own size.
    size = float(np.ptp(world, axis=0).max())
    blink = key.key_blocks[f"{take}_eyeBlinkLeft"]
    peak, value = _peak(bpy, scene, blink)
    assert value == pytest.approx(1.0)
    open_gap = _lid_gap(_local(bpy, head, 1) @ np.array(head.matrix_world)[:3, :3].T)
    shut = _lid_gap(_local(bpy, head, peak) @ np.array(head.matrix_world)[:3, :3].T)
    assert open_gap - shut > 0.02 * size, (open_gap, shut, size)  # 11 mm on a 34 cm head
    assert shut < 0.25 * open_gap
    tracks[f"[DF blinks] {take}"].mute = True  # muting the layer stops the blinks
    muted = _lid_gap(_local(bpy, head, peak) @ np.array(head.matrix_world)[:3, :3].T)
    assert muted > 0.8 * open_gap and blink.value == pytest.approx(0.0)

    # Brows: the head layer's brow raises lift the vertices the template's browInnerUp lifts.
    brows = np.flatnonzero(np.linalg.norm(arkit_basis()[ARKIT_INDEX["browInnerUp"]], axis=1) > 5e-3)
    raise_key = key.key_blocks[f"{take}_browInnerUp"]
    top, level = _peak(bpy, scene, raise_key)
    assert level > 0.05
    raised = _local(bpy, head, top)
    tracks[f"[DF head] {take}"].mute = True
    lowered = _local(bpy, head, top)
    up = np.array(head.matrix_world)[:3, :3].T @ np.array([0.0, 0.0, 1.0])  # world up, in the mesh's frame
    lift = (raised[brows] - lowered[brows]) @ up
    assert lift.max() > 0.002 * level * size and lift.min() > -1e-6, lift
    assert raise_key.value == pytest.approx(0.0)


def test_separate_eyes_of_a_fitted_head_turn_about_their_centre(scene, cache, audio, monkeypatch):
    import bpy

    head, _ = _fitted_head(bpy, scene)
    eye = bpy.data.objects["Eye_L"]
    result = _take(scene, head, audio, monkeypatch, layers=("gaze",))
    assert f"[DF gaze] {result.action}" in _tracks(eye)
    assert not any("gaze" in note for note in result.notes), result.notes
    rest = np.array([tuple(v.co) for v in eye.data.vertices])
    centre = rest.mean(axis=0)
    moved = 0.0
    for frame in range(1, 61, 4):
        scene.frame_set(frame)
        matrix = np.array(eye.matrix_world)
        now = rest @ matrix[:3, :3].T + matrix[:3, 3]
        assert np.linalg.norm(now.mean(axis=0) - centre) < 1e-4 * SCALE  # it turns in its socket
        moved = max(moved, float(np.linalg.norm(now - rest, axis=1).max()))
    assert moved > 1e-3 * SCALE  # and it did turn

    # Without separate eyes only the lids follow the gaze, and the take says so.
    for name in ("Eye_L", "Eye_R"):
        bpy.data.objects.remove(bpy.data.objects[name])
    again = _take(scene, head, audio, monkeypatch, layers=("gaze",))
    assert f"[DF gaze] {again.action}" in _tracks(head.data.shape_keys)
    assert any("only its eyelids follow the gaze" in note for note in again.notes), again.notes


def test_headless_look_at_aims_the_eyes_and_an_unknown_object_is_refused(
    scene, audio, engine_weights, monkeypatch, capsys
):
    import bpy

    from blender_addon import engine_bridge, headless

    monkeypatch.setattr(engine_bridge, "animate", lambda *args, **kwargs: _animation())
    args = ["animate", "--add-head", "--audio", str(audio), "--layers", "gaze"]
    objects = sorted(o.name for o in bpy.data.objects)
    code = headless.main([*args, "--look-at", "Nowhere"])
    err = capsys.readouterr().err
    assert code == 1 and "--look-at: no object named 'Nowhere'" in err
    assert sorted(o.name for o in bpy.data.objects) == objects and not bpy.data.actions  # nothing added

    code = headless.main(
        ["animate", "--add-head", "--audio", str(audio), "--layers", "none", "--look-at", "X"]
    )
    assert code == 2 and "add gaze to --layers" in capsys.readouterr().err

    target = bpy.data.objects.new("Look here", None)
    target.location = (0.6, -1.0, 0.05)  # to the subject's left, in front
    scene.collection.objects.link(target)
    assert headless.main([*args, "--look-at", "Look here"]) == 0
    eye = next(o for o in bpy.data.objects if o.get("dualface_head_part") == "eye_left")
    yaws = []
    for frame in range(1, 60, 5):
        scene.frame_set(frame)
        yaws.append(np.degrees(eye.rotation_euler.z))
    assert np.mean(yaws) > 15.0  # turned toward the target (about 30 degrees away)
    assert scene.dualface.gaze_target is None  # the option aims this take; the scene's setting stays


def test_the_head_of_a_fitted_mesh_turns_about_its_neck_in_the_faces_own_axes(
    scene, cache, audio, monkeypatch
):
    """The mesh's local axes are not the face's (it was imported lying down): the turns must still
    be the head layer's nods and turns, about the fitted face's axes and its neck."""
    import bpy
    from mathutils import Euler

    from blender_addon import retarget_ops, take_layers
    from engine.request import AnimateRequest

    head, _ = _fitted_head(bpy, scene)
    rest = np.array(head.matrix_world)
    _take(scene, head, audio, monkeypatch, layers=("head",))
    layers = take_layers.compute_layers_for(AnimateRequest(str(audio), layers=("head",)), _animation())
    axes = np.asarray(retarget_ops.correspondence_for(head).similarity.rotation)
    neck = take_layers._neck(take_layers.LayerTargets(head, fit=retarget_ops.correspondence_for(head)))[0]
    neck_world = rest[:3, :3] @ neck + rest[:3, 3]
    largest = 0.0
    for frame in range(1, 61, 3):
        scene.frame_set(frame)
        now = np.array(head.matrix_world)
        turn = now[:3, :3] @ rest[:3, :3].T  # the world turn since rest
        expected = axes @ np.array(Euler(np.radians(layers.head[frame - 1]), "XYZ").to_matrix()) @ axes.T
        assert np.abs(turn - expected).max() < 2e-3, frame
        assert np.linalg.norm(now[:3, :3] @ neck + now[:3, 3] - neck_world) < 1e-5  # the neck stays
        largest = max(largest, float(np.abs(layers.head[frame - 1]).max()))
    assert largest > 0.3  # degrees: the head did move
