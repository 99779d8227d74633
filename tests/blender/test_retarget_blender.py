"""Any head inside Blender: fit, ARKit shape keys on a foreign mesh, mapping table, ARKit export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytestmark = pytest.mark.blender


def _head_object(bpy, name="Head", scale=1.0, rotate_x_deg=0.0):
    """The template face, subdivided once (so it is not the template), as a Blender mesh object.

    ``rotate_x_deg`` is applied as the object's rotation with the mesh data counter-rotated, as an
    FBX import leaves it: the head is upright in the world but not in its local space.
    """
    from engine.face.template import load_template
    from engine.retarget.bench import subdivide

    tpl = load_template()
    v, f = subdivide(tpl.vertices.astype(np.float64), tpl.faces.astype(np.int64))
    angle = np.deg2rad(rotate_x_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    local = (v * scale) @ rot  # = rot^-1 applied to each row
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(local.tolist(), [], f.tolist())
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj.rotation_euler = (angle, 0.0, 0.0)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.context.view_layer.update()
    return obj, v * scale


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALFACE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_make_arkit_shape_keys_on_a_foreign_mesh(scene, cache):
    import bpy

    from engine.arkit import ARKIT_NAMES
    from engine.arkit.basis import arkit_basis

    obj, world = _head_object(bpy, scale=10.0, rotate_x_deg=90.0)
    obj.shape_key_add(name="Basis", from_mix=False)
    own = obj.shape_key_add(name="jawOpen", from_mix=False)  # the artist's own key
    own_co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    own.data.foreach_get("co", own_co)

    assert bpy.ops.dualface.fit_mesh() == {"FINISHED"}
    assert list(cache.rglob("*.npz")), "the fit is cached for later takes"
    assert bpy.ops.dualface.make_arkit_keys() == {"FINISHED"}

    blocks = obj.data.shape_keys.key_blocks
    assert all(name in blocks for name in ARKIT_NAMES)
    assert len([b for b in blocks if b.name.startswith("jawOpen")]) == 1  # never duplicated
    after = np.empty_like(own_co)
    blocks["jawOpen"].data.foreach_get("co", after)
    np.testing.assert_array_equal(after, own_co)  # never overwritten

    # The new keys move the original template vertices like the template's own shapes, in world
    # space (the object is rotated 90 degrees and scaled 10x).
    basis = arkit_basis()
    rest = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    blocks["Basis"].data.foreach_get("co", rest)
    matrix = np.array(obj.matrix_world)
    for name in ("eyeBlinkLeft", "mouthSmileRight"):
        co = np.empty_like(rest)
        blocks[name].data.foreach_get("co", co)
        delta_world = (co - rest).reshape(-1, 3) @ matrix[:3, :3].T
        expected = 10.0 * basis[ARKIT_NAMES.index(name)]
        err = np.abs(delta_world[:468] - expected).max()
        assert err < 0.05 * np.abs(expected).max(), (name, err)

    # Running it again adds nothing and says so.
    assert bpy.ops.dualface.make_arkit_keys() == {"CANCELLED"}

    # The mapping table lists every ARKit name with its key.
    table = {row.arkit_name: row.key_name for row in obj.dualface_arkit_map}
    assert table["jawOpen"] == "jawOpen" and table["eyeBlinkLeft"] == "eyeBlinkLeft"


def test_mapping_table_overrides_and_export(scene, cache, tmp_path):
    import bpy

    from blender_addon import retarget_ops
    from engine.arkit import ARKIT_NAMES

    obj, _ = _head_object(bpy)
    obj.shape_key_add(name="Basis", from_mix=False)
    for name in ("Jaw_Open", "EyeBlink_L", "my_smile"):
        obj.shape_key_add(name=name, from_mix=False)
    assert bpy.ops.dualface.refresh_arkit_map() == {"FINISHED"}
    table = {row.arkit_name: row for row in obj.dualface_arkit_map}
    assert table["jawOpen"].key_name == "Jaw_Open"
    assert table["mouthSmileLeft"].key_name == ""
    table["mouthSmileLeft"].key_name = "my_smile"  # the user's own mapping
    mapping = retarget_ops.current_mapping(obj)
    assert mapping.matched["mouthSmileLeft"] == "my_smile"
    assert "mouthSmileRight" in mapping.missing
    bpy.ops.dualface.refresh_arkit_map()  # keeps the hand-set row
    assert retarget_ops.current_mapping(obj).matched["mouthSmileLeft"] == "my_smile"

    keys = obj.data.shape_keys
    keys.key_blocks["Jaw_Open"].value = 0.0
    keys.key_blocks["Jaw_Open"].keyframe_insert("value", frame=1)
    keys.key_blocks["Jaw_Open"].value = 1.0
    keys.key_blocks["Jaw_Open"].keyframe_insert("value", frame=11)
    keys.key_blocks["my_smile"].value = 0.25
    scene.frame_start, scene.frame_end = 1, 11

    out = tmp_path / "take.csv"
    assert bpy.ops.dualface.export_arkit(filepath=str(out), file_format="CSV") == {"FINISHED"}
    rows = list(csv.reader(out.open()))
    assert len(rows) == 12 and rows[0][:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"]
    jaw = rows[0].index("JawOpen")
    assert float(rows[1][jaw]) == pytest.approx(0.0) and float(rows[11][jaw]) == pytest.approx(1.0)
    assert 0.0 < float(rows[6][jaw]) < 1.0
    assert float(rows[3][rows[0].index("MouthSmileLeft")]) == pytest.approx(0.25)

    out_json = tmp_path / "take.json"
    assert bpy.ops.dualface.export_arkit(filepath=str(out_json), file_format="JSON") == {"FINISHED"}
    data = json.loads(out_json.read_text())
    assert data["names"] == list(ARKIT_NAMES) and len(data["frames"]) == 11


def test_fit_reports_bad_meshes_and_changes_nothing(scene, cache):
    import bpy

    mesh = bpy.data.meshes.new("Blob")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], [], [(0, 1, 2), (0, 2, 3)])
    obj = bpy.data.objects.new("Blob", mesh)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    with pytest.raises(RuntimeError, match="only 4 vertices"):
        bpy.ops.dualface.fit_mesh()
    assert "dualface_fit" not in obj.keys()
    with pytest.raises(RuntimeError, match="only 4 vertices"):
        bpy.ops.dualface.make_arkit_keys()
    assert mesh.shape_keys is None


def test_take_offsets_and_parts(scene, cache):
    import bpy

    from blender_addon import retarget_ops
    from engine.animation import Animation
    from engine.arkit import ARKIT_INDEX
    from engine.arkit.basis import apply_arkit
    from engine.face.template import load_template

    obj, world = _head_object(bpy)
    assert not retarget_ops.can_retarget(obj)
    bpy.ops.dualface.fit_mesh()
    assert retarget_ops.can_retarget(obj)

    weights = np.zeros((3, 52), dtype=np.float32)
    weights[1:, ARKIT_INDEX["jawOpen"]] = [0.5, 1.0]
    anim = Animation(fps=30.0, offsets=apply_arkit(weights), arkit=weights)
    offsets = retarget_ops.vertex_offsets_for(obj, anim)
    assert offsets.shape == (3, len(obj.data.vertices), 3)
    np.testing.assert_allclose(offsets[:, :468], anim.offsets, atol=0.05 * np.abs(anim.offsets).max())

    tpl = load_template()
    chin = tpl.vertices[tpl.landmarks["chin"]]
    teeth_mesh = bpy.data.meshes.new("LowerTeeth")
    box = np.array([[x, y, z] for x in (-0.02, 0.02) for y in (0.025, 0.035) for z in (0.025, 0.035)]) + chin
    teeth_mesh.from_pydata(
        box.tolist(), [], [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1)]
    )
    teeth = bpy.data.objects.new("Teeth_Lower", teeth_mesh)
    scene.collection.objects.link(teeth)
    teeth.dualface_head = obj
    assert retarget_ops.part_of(teeth, obj) == "lower_teeth"
    moved = retarget_ops.part_offsets_for(teeth, obj, anim)
    assert np.abs(moved[0]).max() < 1e-9 and np.abs(moved[2]).max() > 0.005
    teeth.dualface_part = "IGNORE"
    assert retarget_ops.part_offsets_for(teeth, obj, anim) is None


def test_landmarks_marked_with_vertex_groups_allow_any_orientation(scene, cache):
    import bpy

    from blender_addon import retarget_ops
    from engine.face.template import load_template

    tpl = load_template()
    obj, _ = _head_object(bpy, scale=2.0)
    obj.rotation_euler = (0.3, 1.2, 2.5)  # lying on its side in the world: no automatic search
    bpy.context.view_layer.update()
    marks = (
        "nose_tip",
        "chin",
        "mouth_corner_left",
        "mouth_corner_right",
        "eye_outer_left",
        "eye_outer_right",
    )
    for name in marks:
        group = obj.vertex_groups.new(name=f"DF_{name}")
        group.add([int(tpl.landmarks[name])], 1.0, "REPLACE")
    picked = retarget_ops._picked_landmarks(obj)
    assert set(picked) == set(marks)
    assert bpy.ops.dualface.fit_mesh() == {"FINISHED"}
    corr = retarget_ops.correspondence_for(obj)
    matrix = np.array(obj.matrix_world)
    assert corr.similarity.scale == pytest.approx(2.0, rel=0.02)
    np.testing.assert_allclose(corr.similarity.rotation, matrix[:3, :3], atol=0.02)  # mesh data holds the 2x


def _box(bpy, scene, name, centre, size):
    """A closed box mesh (12 triangles) at a world position, identity transform."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata((corners * np.asarray(size) + centre).tolist(), [], faces)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _world_vertices(bpy, obj, frame):
    from blender_helpers import evaluated_vertices

    local = evaluated_vertices(bpy, obj, frame).astype(np.float64)
    matrix = np.array(obj.matrix_world)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def _kabsch(source, target):
    """Rotation and translation that best carry ``source`` points onto ``target``."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((target - mu_t).T @ (source - mu_s))
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ fix @ vt
    return rotation, mu_t - rotation @ mu_s


def test_a_take_on_an_unfitted_foreign_head_fits_it_and_moves_its_teeth(
    scene, cache, tmp_path, engine_weights, monkeypatch
):
    """End to end through the pipeline: vertex mode on a non-template head with no ARKit keys
    fits it (cached), and the lower teeth found next to it ride the jaw in the same take."""
    import bpy
    from blender_helpers import fingerprint, ground_truth_animation, write_speechlike_wav

    from blender_addon import engine_bridge, pipeline
    from engine.face.template import load_template

    scale = 2.0
    head, world = _head_object(bpy, scale=scale, rotate_x_deg=90.0)
    tpl = load_template()
    chin = world[tpl.landmarks["chin"]]
    teeth = _box(bpy, scene, "LowerTeeth", chin + scale * np.array([0.0, 0.03, 0.03]), scale * 0.01)
    eye = _box(bpy, scene, "Eye_L", world[tpl.landmarks["eye_outer_left"]] + [0, 0.02, 0], 0.01)
    far = _box(bpy, scene, "Teeth_Of_Another_Head", chin + [1.0, 0.0, 0.0], 0.01)
    # The artist's own animated key on the teeth: must survive untouched, its action stashed.
    teeth.shape_key_add(name="Basis", from_mix=False)
    bite = teeth.shape_key_add(name="artist_bite", from_mix=False)
    bite.value = 0.2
    bite.keyframe_insert("value", frame=1)
    artist_action = teeth.data.shape_keys.animation_data.action

    animation = ground_truth_animation(fps=30.0, seconds=2.0)
    monkeypatch.setattr(engine_bridge, "animate", lambda *args, **kwargs: animation)
    audio = write_speechlike_wav(tmp_path / "hello.wav")

    prepared = pipeline.prepare(scene, head, str(audio), mode="AUTO")
    assert prepared.target.mode == "VERTEX" and prepared.fit is not None  # no fit yet: this take fits
    bpy.ops.ed.undo_push(message="before take")
    before = fingerprint(bpy)
    result = pipeline.run(prepared)
    assert list(cache.rglob("*.npz")) and "dualface_fit" in head.keys()

    assert result.action == "DF_hello_001"
    assert set(result.parts) == {"LowerTeeth", "Eye_L"}  # the far mesh belongs to someone else
    assert result.parts["Eye_L"]["action"] is None  # eyes stay rigid: no keys, no action
    assert eye.data.shape_keys is None and far.data.shape_keys is None
    part_action = teeth.data.shape_keys.animation_data.action
    assert part_action.name == result.parts["LowerTeeth"]["action"] == "DF_hello_001_LowerTeeth"
    assert result.parts["LowerTeeth"]["previous_action"] == artist_action.name
    stashed = teeth.data.shape_keys.animation_data.nla_tracks
    assert [t.name for t in stashed] == [f"[DF stash] {artist_action.name}"] and stashed[0].mute
    assert teeth.data.shape_keys.key_blocks["artist_bite"].value == pytest.approx(0.2)

    # The head moves like the engine's face (its first vertices are the template's) ...
    chin_motion = np.linalg.norm(animation.offsets[:, tpl.landmarks["chin"]], axis=1)
    open_frame, closed_frame = int(np.argmax(chin_motion)), int(np.argmin(chin_motion))
    rest = _world_vertices(bpy, head, 1 + closed_frame)
    moved = _world_vertices(bpy, head, 1 + open_frame) - rest
    expected = scale * (animation.offsets[open_frame] - animation.offsets[closed_frame])
    assert np.abs(moved[:468] - expected).max() < 0.1 * np.abs(expected).max()
    # ... and the teeth ride the jaw: the rigid motion of the head's own jaw vertices as Blender
    # evaluates them, carried onto the teeth, predicts where the teeth went.
    jaw = np.flatnonzero(tpl.jaw_weight >= 0.95)
    jaw_closed, jaw_open = rest[jaw], rest[jaw] + moved[jaw]
    rotation, translation = _kabsch(jaw_closed, jaw_open)
    teeth_closed = _world_vertices(bpy, teeth, 1 + closed_frame)
    teeth_open = _world_vertices(bpy, teeth, 1 + open_frame)
    shift = np.linalg.norm(teeth_open - teeth_closed, axis=1).max()
    assert shift > 0.005 * scale  # the mouth really opened
    predicted = teeth_closed @ rotation.T + translation
    assert np.abs(predicted - teeth_open).max() < 0.1 * shift

    bpy.ops.ed.undo_push(message="DualFace take")
    bpy.ops.ed.undo()
    assert fingerprint(bpy) == before  # one undo step removes head and part keys and actions

    # After the undo the next take fits again, from the disk cache: no landmark search, no ICP.
    import engine.retarget.head as retarget_head

    def no_search(*args, **kwargs):
        raise AssertionError("the cached fit should have been used")

    monkeypatch.setattr(retarget_head, "find_landmarks", no_search)
    again = pipeline.prepare(bpy.context.scene, bpy.data.objects["Head"], str(audio), mode="AUTO")
    pipeline.fit_head(again)
    assert again.correspondence.n_vertices == len(world)


def test_the_dualface_heads_own_teeth_move_in_its_take_and_ignored_meshes_do_not(
    scene, cache, tmp_path, engine_weights, monkeypatch
):
    import bpy
    from blender_helpers import ground_truth_animation, write_speechlike_wav

    from blender_addon import engine_bridge, pipeline
    from blender_addon.head import add_head
    from engine.face.template import load_template

    head = add_head(scene, "Face")
    tpl = load_template()
    chin = tpl.vertices[tpl.landmarks["chin"]].astype(np.float64)
    tongue = _box(bpy, scene, "Mesh", chin + [0.0, 0.03, 0.03], 0.008)
    tongue.dualface_head, tongue.dualface_part = head, "TONGUE"  # pointed at the head by hand
    ignored = _box(bpy, scene, "LowerTeeth", chin + [0.0, 0.03, 0.03], 0.008)
    ignored.dualface_part = "IGNORE"
    animation = ground_truth_animation(fps=30.0, seconds=2.0)
    monkeypatch.setattr(engine_bridge, "animate", lambda *args, **kwargs: animation)
    audio = write_speechlike_wav(tmp_path / "hello.wav")

    prepared = pipeline.prepare(scene, head, str(audio), mode="AUTO")
    assert prepared.fit is not None  # the template head is fitted only because it has parts
    result = pipeline.run(prepared)
    assert set(result.parts) == {"Mesh"} and result.parts["Mesh"]["part"] == "tongue"
    assert ignored.data.shape_keys is None
    chin_motion = np.linalg.norm(animation.offsets[:, tpl.landmarks["chin"]], axis=1)
    frame = 1 + int(np.argmax(chin_motion))
    rest = np.array([tuple(v.co) for v in tongue.data.vertices])
    moved = _world_vertices(bpy, tongue, frame) - rest
    assert np.linalg.norm(moved, axis=1).min() > 0.002  # every tongue vertex went with the jaw


def test_when_only_the_parts_need_a_fit_a_failed_fit_skips_them_not_the_take(
    scene, cache, tmp_path, engine_weights, monkeypatch
):
    import bpy
    from blender_helpers import ground_truth_animation, write_speechlike_wav

    from blender_addon import engine_bridge, pipeline, retarget_ops
    from blender_addon.head import add_head
    from engine.face.template import load_template
    from engine.retarget import RetargetError

    head = add_head(scene, "Face")
    chin = load_template().vertices[load_template().landmarks["chin"]].astype(np.float64)
    teeth = _box(bpy, scene, "LowerTeeth", chin + [0.0, 0.03, 0.03], 0.008)

    def refuse(inputs, use_cache=True):
        raise RetargetError("no face found (test)")

    monkeypatch.setattr(retarget_ops, "fit_correspondence", refuse)
    monkeypatch.setattr(engine_bridge, "animate", lambda *args, **kwargs: ground_truth_animation())
    prepared = pipeline.prepare(scene, head, str(write_speechlike_wav(tmp_path / "hello.wav")))
    result = pipeline.run(prepared)
    assert result.mode == "VERTEX" and result.parts == {}
    assert any("no face found (test)" in note for note in result.notes)
    assert teeth.data.shape_keys is None and "dualface_fit" not in head.keys()
    assert bpy.data.actions[result.action].name == "DF_hello_001"
