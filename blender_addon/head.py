"""'Add DualFace Head': the engine's own template face as a ready-to-animate mesh.

Vertex mode reproduces the engine's output exactly on this mesh, so it is the quickest way to
hear-and-see a take, and the reference an artist retargets from.
"""

from __future__ import annotations

import bpy
import numpy as np

HEAD_NAME = "DualFace Head"
MATERIAL_NAME = "DualFace Skin"
SKIN_COLOUR = (0.8, 0.58, 0.48, 1.0)


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
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    view_layer.objects.active = obj
    return obj


def _skin_material() -> bpy.types.Material:
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None and material.library is None:
        return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    material.diffuse_color = SKIN_COLOUR  # what Workbench and the solid viewport show
    if material.node_tree is None:  # Blender < 5 creates materials without nodes
        material.use_nodes = True
    shader = next((n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if shader is not None:
        shader.inputs["Base Color"].default_value = SKIN_COLOUR
        shader.inputs["Roughness"].default_value = 0.55
    return material
