"""Takes written into real Blender: ARKit and vertex modes, the artist's data, strips, undo.

Animations come from the synthetic ground truth (engine.data.motion), so every value written can
be checked against an independent source; the engine-driven path is covered in test_generate.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from blender_helpers import (
    add_arkit_rig,
    evaluated_vertices,
    fingerprint,
    ground_truth_animation,
    key_coordinates,
    write_speechlike_wav,
)

pytestmark = pytest.mark.blender


@pytest.fixture
def audio(tmp_path):
    return write_speechlike_wav(tmp_path / "hello.wav", seconds=2.0)


def _fcurve_points(bpy, action):
    from bpy_extras import anim_utils

    points = {}
    for slot in action.slots:
        channelbag = anim_utils.action_get_channelbag_for_slot(action, slot)
        for fcurve in channelbag.fcurves if channelbag else []:
            co = np.empty(len(fcurve.keyframe_points) * 2, dtype=np.float32)
            fcurve.keyframe_points.foreach_get("co", co)
            points[fcurve.data_path] = co
    return points


def _artist_setup(bpy, scene, obj, audio):
    """An artist's animated key, their own sound strip on channel 1, a short frame range."""
    block = obj.shape_key_add(name="artist_smile", from_mix=False)
    block.value = 0.3
    block.keyframe_insert("value", frame=1)
    block.value = 0.8
    block.keyframe_insert("value", frame=20)
    editor = scene.sequence_editor_create()
    editor.strips.new_sound("artist music", str(audio), 1, 1)
    scene.frame_end = 30
    return obj.data.shape_keys.animation_data.action


def test_arkit_take_keys_existing_keys_in_a_new_action_and_leaves_the_artist_alone(scene, audio):
    import bpy

    from blender_addon import takes, validation

    rig = add_arkit_rig(scene, "Rig", rename={"jawOpen": "JawOpen", "mouthClose": "mouth_close"})
    artist_action = _artist_setup(bpy, scene, rig, audio)
    artist_points = _fcurve_points(bpy, artist_action)
    coordinates = key_coordinates(rig)
    artist_strip = scene.sequence_editor.strips["artist music"]
    artist_strip_state = (artist_strip.channel, artist_strip.frame_final_start, artist_strip.mute)

    animation = ground_truth_animation(fps=30.0, seconds=2.0)
    target = validation.check_target(rig, "AUTO")
    assert target.mode == "ARKIT" and len(target.arkit_keys) == 52
    result = takes.write_take(scene, target, animation, validation.check_audio(audio), 1, captions=True)

    key = rig.data.shape_keys
    assert result.action == "DF_hello_001" and key.animation_data.action.name == "DF_hello_001"
    assert result.channels == 52 and result.keys_written == 52 * animation.n_frames
    assert result.shape_keys_created == []  # ARKit mode never adds keys
    # The artist's action is untouched and stashed (muted) so it survives saving.
    after = _fcurve_points(bpy, artist_action)
    assert set(after) == set(artist_points)
    assert all(np.array_equal(after[path], artist_points[path]) for path in after)
    stash = [t for t in key.animation_data.nla_tracks if t.strips and t.strips[0].action == artist_action]
    assert len(stash) == 1 and stash[0].mute
    for name, co in key_coordinates(rig).items():
        assert np.array_equal(co, coordinates[name]), name
    # The keys follow the animation, frame by frame (frame 1 is t = 0).
    jaw = list(animation.arkit_names).index("jawOpen")
    close = list(animation.arkit_names).index("mouthClose")
    for frame in (1, 17, 33, 60):
        scene.frame_set(frame)
        assert key.key_blocks["JawOpen"].value == pytest.approx(animation.arkit[frame - 1, jaw], abs=1e-5)
        assert key.key_blocks["mouth_close"].value == pytest.approx(
            animation.arkit[frame - 1, close], abs=1e-5
        )
    # Sequencer: the take's audio on a free channel, the artist's strip as it was.
    sound = scene.sequence_editor.strips[result.sound_strip]
    assert sound.type == "SOUND" and sound.channel == 2 and sound.frame_final_start == 1
    assert (artist_strip.channel, artist_strip.frame_final_start, artist_strip.mute) == artist_strip_state
    assert scene.frame_start == 1 and scene.frame_end == 60  # grown to cover the take
    assert sorted(m.name for m in scene.timeline_markers) == ["hello", "mama"]
    assert {m.name: m.frame for m in scene.timeline_markers}["mama"] == 1 + round(1.0 * 30)
    meta = json.loads(key.animation_data.action["dualface"])
    assert meta["previous_action"] == artist_action.name and meta["mode"] == "ARKIT"


def test_vertex_take_reproduces_the_engine_face_with_df_keys(scene, audio):
    import bpy

    from blender_addon import takes, validation
    from blender_addon.head import add_head
    from engine.face.template import load_template

    head = add_head(scene)
    artist = head.shape_key_add(name="artist_brow", from_mix=False)
    artist.value = 0.0  # a sculpted key the artist is not using right now
    artist_co = key_coordinates(head)
    animation = ground_truth_animation(fps=30.0, seconds=2.0)
    target = validation.check_target(head, "AUTO")
    assert target.mode == "VERTEX"
    result = takes.write_take(scene, target, animation, validation.check_audio(audio), 1)

    created = [n for n in result.shape_keys_created]
    assert created and all(n.startswith("DF_hello_001_") for n in created)
    assert 3 <= len(created) <= 16 and result.explained > 0.9999
    assert np.array_equal(key_coordinates(head)["artist_brow"], artist_co["artist_brow"])
    assert artist.value == 0.0 and artist.name == "artist_brow"
    template = load_template().vertices
    for frame in (1, 20, 45):
        expected = template + animation.offsets[frame - 1]
        error = np.abs(evaluated_vertices(bpy, head, frame) - expected).max()
        assert error < 5e-4, f"frame {frame}: {error * 1000:.2f} mm"  # well under a millimetre


def test_a_second_take_stashes_the_first_mutes_its_audio_and_can_be_restored(scene, audio):
    from blender_addon import takes, validation
    from blender_addon.head import add_head

    head = add_head(scene)
    target = validation.check_target(head, "VERTEX")
    info = validation.check_audio(audio)
    first = takes.write_take(scene, target, ground_truth_animation(emotion="happy"), info, 1)
    second = takes.write_take(scene, target, ground_truth_animation(emotion="sad"), info, 1)
    assert (first.action, second.action) == ("DF_hello_001", "DF_hello_002")
    key = head.data.shape_keys
    assert key.animation_data.action.name == "DF_hello_002"
    strips = {s.name: s for s in scene.sequence_editor.strips}
    assert strips[first.sound_strip].mute and not strips[second.sound_strip].mute
    assert strips[first.sound_strip].channel == 1 and strips[second.sound_strip].channel == 2
    # The first take's components rest at zero while the second plays.
    assert all(b.value == 0.0 for b in key.key_blocks if b.name.startswith("DF_hello_001_"))
    assert takes.restore_previous_action(head) == "DF_hello_001"
    assert key.animation_data.action.name == "DF_hello_001"
    assert [t.name for t in key.animation_data.nla_tracks] == ["[DF stash] DF_hello_001"]


def test_other_objects_takes_keep_playing(scene, audio):
    from blender_addon import takes, validation
    from blender_addon.head import add_head

    info = validation.check_audio(audio)
    left, right = add_head(scene, "Left"), add_head(scene, "Right")
    a = takes.write_take(scene, validation.check_target(left, "VERTEX"), ground_truth_animation(), info, 1)
    b = takes.write_take(scene, validation.check_target(right, "VERTEX"), ground_truth_animation(), info, 1)
    strips = scene.sequence_editor.strips
    assert not strips[a.sound_strip].mute and not strips[b.sound_strip].mute


def test_review_scene_holds_the_scene_audio_and_coloured_captions(scene, audio):
    from blender_addon import review, takes, validation
    from blender_addon.core.captions_style import sync_colour
    from blender_addon.head import add_head

    head = add_head(scene)
    result = takes.write_take(
        scene,
        validation.check_target(head, "VERTEX"),
        ground_truth_animation(),
        validation.check_audio(audio),
        11,
    )
    meta = takes.take_metadata(head.data.shape_keys.animation_data.action)
    view = review.build_review(scene, meta, captions=True)
    strips = sorted(view.sequence_editor.strips, key=lambda s: (s.channel, s.frame_final_start))
    assert [s.type for s in strips] == ["SCENE", "SOUND", "TEXT", "TEXT"]
    assert strips[0].scene == scene and strips[0].volume == 0.0
    assert strips[1].frame_final_start == 11
    hello, mama = strips[2], strips[3]
    assert hello.text.startswith("hello") and hello.frame_final_start == 11 + round(0.25 * 30)
    assert tuple(hello.color) == pytest.approx(sync_colour(0.92))
    assert tuple(mama.color) == pytest.approx(sync_colour(0.35))
    assert (view.frame_start, view.frame_end) == (result.frame_start, result.frame_end)
    # The artist's scene gets no text strips: they would replace its 3D render.
    assert all(s.type != "TEXT" for s in scene.sequence_editor.strips_all)
    assert review.build_review(scene, meta, captions=True) == view  # rebuilt in place, not duplicated


def test_scene_rate_not_supported_by_the_engine_is_resampled(scene, audio):
    from blender_addon import pipeline, validation
    from blender_addon.core import timing
    from blender_addon.head import add_head

    scene.render.fps, scene.render.fps_base = 120, 1.0
    head = add_head(scene)
    assert timing.engine_rate_for(120) == 60
    animation = ground_truth_animation(fps=60.0)
    prepared = pipeline.Prepared(
        scene, validation.check_target(head, "VERTEX"), validation.check_audio(audio), 1, None, None, False
    )
    result = pipeline.apply(prepared, animation)
    assert result.frame_end == 240  # 2 s at 120 fps


def test_keyframed_emotion_becomes_a_schedule(scene):
    import bpy

    from blender_addon import pipeline

    settings = scene.dualface
    settings.emotion, settings.intensity = "HAPPY", 0.4
    assert pipeline.scene_schedule(scene, 1, 2.0, "happy", 0.4) == ("happy", 0.4)
    settings.keyframe_insert("emotion", frame=1)
    settings.emotion = "SAD"
    settings.keyframe_insert("emotion", frame=31)
    settings.intensity = 0.4
    settings.keyframe_insert("intensity", frame=1)
    settings.intensity = 1.0
    settings.keyframe_insert("intensity", frame=61)
    schedule, intensity = pipeline.scene_schedule(scene, 1, 2.0, "sad", 1.0)
    assert intensity == 1.0
    happy = [k for k in schedule if k[1] == "happy"]
    sad = [k for k in schedule if k[1] == "sad"]
    assert happy[0][0] == 0.0 and happy[-1][0] == pytest.approx(29 / 30)
    assert sad[0][0] == pytest.approx(1.0)
    assert schedule[0][2] == pytest.approx(0.4, abs=1e-3) and schedule[-1][2] > 0.95
    assert bpy.context.scene == scene


def test_undo_removes_the_whole_take(scene, audio):
    """One undo step: the operator path is covered with the engine in test_generate.py; here the
    same writer runs between two undo pushes, which is what a REGISTER/UNDO operator does."""
    import bpy

    from blender_addon import review, takes, validation

    rig = add_arkit_rig(scene, "Rig")
    bpy.ops.ed.undo_push(message="before take")
    before = fingerprint(bpy)
    result = takes.write_take(
        scene,
        validation.check_target(rig, "ARKIT"),
        ground_truth_animation(),
        validation.check_audio(audio),
        1,
        True,
    )
    review.build_review(scene, takes.take_metadata(bpy.data.actions[result.action]), captions=True)
    bpy.ops.ed.undo_push(message="DualFace take")
    assert fingerprint(bpy) != before
    bpy.ops.ed.undo()
    assert fingerprint(bpy) == before
    assert "DF_hello_001" not in bpy.data.actions


def test_vertex_take_on_a_fitted_foreign_mesh_goes_through_the_retargeting_seam(
    scene, audio, tmp_path, monkeypatch
):
    import bpy

    from blender_addon import pipeline, validation
    from engine.face.template import load_template
    from engine.retarget.bench import subdivide

    monkeypatch.setenv("DUALFACE_CACHE", str(tmp_path / "cache"))
    template = load_template()
    vertices, faces = subdivide(template.vertices.astype(np.float64), template.faces.astype(np.int64))
    mesh = bpy.data.meshes.new("Foreign")
    mesh.from_pydata(vertices.tolist(), [], faces.tolist())
    obj = bpy.data.objects.new("Foreign", mesh)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    # Without a retargeting step vertex output cannot animate a foreign mesh; the pipeline fits
    # on demand (see test_retarget_blender.py), here the fit comes from the operator first.
    with pytest.raises(validation.InputError, match="retarget it first"):
        validation.check_target(obj, "VERTEX")
    assert bpy.ops.dualface.fit_mesh() == {"FINISHED"}
    target = pipeline.resolve_target(obj, "AUTO")
    assert target.mode == "VERTEX"
    animation = ground_truth_animation()
    prepared = pipeline.Prepared(scene, target, validation.check_audio(audio), 1, None, None, False)
    result = pipeline.apply(prepared, animation)
    assert result.shape_keys_created[0] == "Basis" and len(result.shape_keys_created) > 3
    rest = evaluated_vertices(bpy, obj, 1)
    moving = evaluated_vertices(bpy, obj, 20) - rest
    expected = animation.offsets[19] - animation.offsets[0]
    # The template's own vertices come first in a subdivision: they move as the engine's face does.
    assert np.abs(moving[: len(expected)] - expected).max() < 0.1 * np.abs(expected).max()
