"""'Add DualFace Head': the engine's own template face as a ready-to-animate mesh, and its head.

Vertex mode reproduces the engine's output exactly on this mesh, so it is the quickest way to
hear-and-see a take, and the reference an artist retargets from. ``complete=True`` adds the rest
of a head (engine.face.head builds the geometry) as separate meshes parented to the face, so the
face keeps its 468 vertices: skull, neck and mouth cavity follow the face surface near their rim
(a Surface Deform modifier, weighted by a vertex group), lower teeth and tongue ride the jaw in
every take (the part system), and the eyes turn about their centres (the gaze layer).
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from . import takes

HEAD_NAME = "DualFace Head"
MATERIAL_NAME = "DualFace Skin"
SKIN_COLOUR = (0.68, 0.40, 0.29, 1.0)  # linear albedo of light skin; Workbench and EEVEE both read it
CLEARANCE = 1.0  # metres between the added head and the scene's other objects


def add_head(
    scene: bpy.types.Scene, name: str = HEAD_NAME, location=(0.0, 0.0, 0.0), complete: bool = False
) -> bpy.types.Object:
    """Create the template face (UVs, smooth shading, a skin material, a Basis key) and select it;
    ``complete`` also adds skull, neck, eyes, teeth, tongue and mouth cavity as its children."""
    from engine.face.template import load_template

    template = load_template()
    vertices = np.asarray(template.vertices, dtype=np.float32)
    faces = np.asarray(template.faces, dtype=np.int32)
    if complete:  # open the eyes so the eyeballs show (same vertices, so every take is the same)
        from engine.face.head import eye_cover_faces

        faces = np.delete(faces, eye_cover_faces(template), axis=0)
    mesh = _triangle_mesh(name, vertices, faces, np.asarray(template.uvs, dtype=np.float32)[faces.ravel()])
    mesh.materials.append(_skin_material())
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    if complete:
        add_head_parts(scene, obj)
    for other in scene.objects:
        other.select_set(False)
    obj.select_set(True)
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else None
    (view_layer or scene.view_layers[0]).objects.active = obj
    return obj


def _skin_material() -> bpy.types.Material:
    return _material(MATERIAL_NAME, SKIN_COLOUR)


def _material(name: str, colour, roughness: float = 0.55) -> bpy.types.Material:
    """A one-colour material (reused when the file has DualFace's own of that name)."""
    material = bpy.data.materials.get(name)
    if material is not None and material.library is None:
        return material
    material = bpy.data.materials.new(name)
    material.diffuse_color = colour  # type: ignore[assignment]  # the stubs type it as a read-only array
    if material.node_tree is None:  # Blender < 5 creates materials without nodes
        material.use_nodes = True
    tree = material.node_tree
    shader = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None) if tree else None
    if shader is not None:
        # Principled BSDF inputs are value sockets; the stubs only know the base NodeSocket.
        shader.inputs["Base Color"].default_value = colour  # type: ignore[union-attr, attr-defined]
        shader.inputs["Roughness"].default_value = roughness  # type: ignore[union-attr, attr-defined]
    return material


def free_location(scene: bpy.types.Scene) -> tuple[float, float, float]:
    """Where a new head neither sits inside nor crowds the scene's objects: the origin when it is
    clear, else beside everything on +x. The startup file's cube, for one, would swallow a head
    added at the origin and hide it from every camera."""
    boxes = [_world_bounds(o) for o in scene.objects if o.type not in _NO_VOLUME and not o.hide_render]
    reach = 0.25  # the head's own half size with a margin
    if not any(all(lo[i] - reach < 0.0 < hi[i] + reach for i in range(3)) for lo, hi in boxes):
        return (0.0, 0.0, 0.0)
    return (max(hi[0] for _, hi in boxes) + CLEARANCE, 0.0, 0.0)


_NO_VOLUME = {"CAMERA", "LIGHT", "LIGHT_PROBE", "SPEAKER", "EMPTY"}


def _world_bounds(obj) -> tuple[list[float], list[float]]:
    from mathutils import Vector

    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    return [min(c[i] for c in corners) for i in range(3)], [max(c[i] for c in corners) for i in range(3)]


# ---- the rest of the head ------------------------------------------------------------------------

PART_NAMES = {  # engine.face.head part -> object name suffix; names tell the part system what each is
    "skull": "Skull",
    "neck": "Neck",
    "eye_left": "Eye Left",
    "eye_right": "Eye Right",
    "upper_teeth": "Upper Teeth",
    "lower_teeth": "Lower Teeth",
    "tongue": "Tongue",
    "mouth": "Mouth Cavity",
}
FOLLOW_GROUP = "DualFace follow"  # vertex group: how closely a skin part follows the face
GLOSSY = {"sclera": 0.25, "iris": 0.3, "pupil": 0.2, "teeth": 0.3, "tongue": 0.4, "mouth": 0.9}


def add_head_parts(scene: bpy.types.Scene, face: bpy.types.Object) -> dict[str, bpy.types.Object]:
    """Skull, neck, eyes, teeth, tongue and mouth cavity as children of ``face``; returns them by part."""
    from engine.face.head import MATERIALS, alveolar_ridge, default_head, tongue_tip_raise

    parts = default_head()
    made: dict[str, bpy.types.Object] = {}
    for key, part in parts.items():
        materials = [
            _material(f"DualFace {m.title()}", MATERIALS[m], GLOSSY.get(m, 0.55)) for m in part.materials
        ]
        origin = np.asarray(part.pivot if part.role == "eye" else np.zeros(3), dtype=np.float32)
        obj = _part_object(f"{face.name} {PART_NAMES[key]}", part, origin, materials)
        scene.collection.objects.link(obj)
        obj.parent = face
        obj.location = tuple(float(c) for c in origin)
        obj["dualface_head_part"] = key
        if part.role == "skin" and hasattr(obj, "dualface_part"):
            obj.dualface_part = "IGNORE"  # type: ignore[attr-defined]  # registered by retarget_ops
        made[key] = obj
    tongue = made["tongue"]
    tongue.shape_key_add(name="Basis", from_mix=False)
    raise_key = tongue.shape_key_add(name=takes.TONGUE_TIP_KEY, from_mix=False)
    raise_key.slider_max = 2.0
    rest = parts["tongue"].vertices
    raise_key.data.foreach_set(
        "co", (rest + tongue_tip_raise(parts["tongue"], alveolar_ridge(parts["upper_teeth"]))).ravel()
    )
    for key in ("skull", "mouth"):
        _follow_face(made[key], face, parts[key].follow)
    return made


def _triangle_mesh(
    name: str, vertices: np.ndarray, faces: np.ndarray, corner_uvs: np.ndarray
) -> bpy.types.Mesh:
    """A new smooth-shaded triangle mesh with one UV per face corner (layer "UVMap")."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    if uv_layer is None:
        raise RuntimeError("Blender refused a UV layer on a new mesh (at most 8 per mesh)")
    uv_layer.data.foreach_set("uv", corner_uvs.ravel())
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    return mesh


def _part_object(name: str, part, origin: np.ndarray, materials) -> bpy.types.Object:
    vertices = np.asarray(part.vertices, dtype=np.float32) - origin
    faces = np.asarray(part.faces, dtype=np.int32)
    mesh = _triangle_mesh(name, vertices, faces, np.asarray(part.uvs, dtype=np.float32))
    for material in materials:
        mesh.materials.append(material)
    mesh.polygons.foreach_set("material_index", np.asarray(part.material, dtype=np.int32))
    return bpy.data.objects.new(name, mesh)


def _follow_face(obj: bpy.types.Object, face: bpy.types.Object, weights: np.ndarray) -> None:
    """Bind ``obj`` to the face surface (Surface Deform) where ``weights`` > 0, so the seam holds."""
    group = obj.vertex_groups.new(name=FOLLOW_GROUP)
    for value in np.unique(weights[weights > 0]):
        group.add([int(i) for i in np.flatnonzero(weights == value)], float(value), "REPLACE")
    modifier: Any = obj.modifiers.new("DualFace follow face", "SURFACE_DEFORM")  # SurfaceDeformModifier
    modifier.target = face
    modifier.vertex_group = FOLLOW_GROUP
    with bpy.context.temp_override(object=obj, active_object=obj):
        bpy.ops.object.surfacedeform_bind(modifier=modifier.name)
