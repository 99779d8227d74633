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
    from engine.face.arkit_basis import arkit_basis

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
    from engine.face.arkit_basis import apply_arkit
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
