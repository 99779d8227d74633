"""'Add DualFace Head': the engine's own template face as a ready-to-animate mesh.

Vertex mode reproduces the engine's output exactly on this mesh, so it is the quickest way to
hear-and-see a take, and the reference an artist retargets from.
"""

from __future__ import annotations

import bpy
import numpy as np

HEAD_NAME = "DualFace Head"
MATERIAL_NAME = "DualFace Skin"
SKIN_COLOUR = (0.68, 0.40, 0.29, 1.0)  # linear albedo of light skin; Workbench and EEVEE both read it
CLEARANCE = 1.0  # metres between the added head and the scene's other objects


def add_head(scene: bpy.types.Scene, name: str = HEAD_NAME, location=(0.0, 0.0, 0.0)) -> bpy.types.Object:
    """Create the template face (UVs, smooth shading, a skin material, a Basis key) and select it."""
    from engine.face.template import load_template

    template = load_template()
    vertices = np.asarray(template.vertices, dtype=np.float32)
    faces = np.asarray(template.faces, dtype=np.int32)
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
    uv_layer.data.foreach_set("uv", np.asarray(template.uvs, dtype=np.float32)[faces.ravel()].ravel())
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    mesh.materials.append(_skin_material())
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for other in scene.objects:
        other.select_set(False)
    obj.select_set(True)
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else None
    (view_layer or scene.view_layers[0]).objects.active = obj
    return obj


def _skin_material() -> bpy.types.Material:
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None and material.library is None:
        return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    material.diffuse_color = SKIN_COLOUR  # type: ignore[assignment]  # the stubs type it as a read-only array
    if material.node_tree is None:  # Blender < 5 creates materials without nodes
        material.use_nodes = True
    tree = material.node_tree
    shader = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None) if tree else None
    if shader is not None:
        # Principled BSDF inputs are value sockets; the stubs only know the base NodeSocket.
        shader.inputs["Base Color"].default_value = SKIN_COLOUR  # type: ignore[union-attr, attr-defined]
        shader.inputs["Roughness"].default_value = 0.55  # type: ignore[union-attr, attr-defined]
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
