"""Any head in Blender: fit DualFace to a mesh, give it ARKit shape keys, export ARKit weights.

A thin layer over ``engine.retarget`` / ``engine.arkit_*`` (bpy + numpy only, no torch). The fit
runs in world space, so a head rotated by its object transform (an FBX import's 90 degrees) is
still seen upright; results are converted back to the mesh's local space before they are written.
Landmarks can be marked by hand with vertex groups named ``DF_<landmark>`` (e.g. ``DF_nose_tip``),
and separate parts (teeth, tongue, eyes) are recognised by name and position or set by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

LANDMARK_GROUP_PREFIX = "DF_"
FIT_PROPERTY = "dualface_fit"  # object custom property: the correspondence cache key of the fit
PART_ITEMS = (
    ("AUTO", "Auto", "Decide from the name and where the mesh sits"),
    ("SKIN", "Skin", "Follows the face surface (brows, lashes, beard)"),
    ("TEETH", "Teeth (both rows)", "Pieces below the mouth line follow the jaw"),
    ("UPPER_TEETH", "Upper Teeth", "Stay with the skull"),
    ("LOWER_TEETH", "Lower Teeth", "Follow the jaw rigidly"),
    ("TONGUE", "Tongue", "Follows the jaw rigidly"),
    ("EYE", "Eye", "Stays rigid"),
    ("IGNORE", "Ignore", "Not animated"),
)

_fits: dict[str, object] = {}  # cache key -> Correspondence, for this Blender session


# ---------------------------------------------------------------------------------------------
# Mesh access


def _world_geometry(obj) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(world vertices [V,3], triangles [F,3], 4x4 world matrix) of a mesh object's base shape."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    local = co.reshape(-1, 3)
    mesh.calc_loop_triangles()
    tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("vertices", tris)
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    world = local @ matrix[:3, :3].T + matrix[:3, 3]
    return world, tris.reshape(-1, 3), matrix


def _to_local_vectors(offsets_world: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """World-space offsets -> the object's local space (inverse of the linear part)."""
    inverse = np.linalg.inv(matrix[:3, :3])
    return (offsets_world @ inverse.T).astype(np.float32)


def _picked_landmarks(obj) -> dict[str, np.ndarray]:
    """Centroids of ``DF_<landmark>`` vertex groups, in world space."""
    from engine.retarget import FIT_LANDMARKS

    wanted = {LANDMARK_GROUP_PREFIX + name: name for name in FIT_LANDMARKS}
    groups = {g.index: wanted[g.name] for g in obj.vertex_groups if g.name in wanted}
    if not groups:
        return {}
    sums: dict[str, list] = {}
    matrix = obj.matrix_world
    for vertex in obj.data.vertices:
        for element in vertex.groups:
            name = groups.get(element.group)
            if name is not None and element.weight > 0:
                sums.setdefault(name, []).append(np.array(matrix @ vertex.co))
    return {name: np.mean(points, axis=0) for name, points in sums.items()}


def _cache_dir() -> Path:
    from engine.retarget import default_cache_dir

    return default_cache_dir()


@dataclass(frozen=True)
class FitInputs:
    """What a fit needs from Blender, copied on the main thread so the fit itself may run on any."""

    name: str
    world: np.ndarray  # [V, 3] world-space vertices
    triangles: np.ndarray  # [F, 3]
    landmarks: dict[str, np.ndarray]  # hand-marked DF_<landmark> groups (world space)


def fit_inputs(obj) -> FitInputs:
    world, tris, _ = _world_geometry(obj)
    return FitInputs(obj.name, world, tris, _picked_landmarks(obj))


def fit_correspondence(inputs: FitInputs, use_cache: bool = True):
    """The fit itself: no bpy, safe on a worker thread. Raises engine.retarget.RetargetError."""
    from engine.retarget import fit_head

    return fit_head(
        inputs.world, inputs.triangles, inputs.landmarks, cache_dir=_cache_dir(), use_cache=use_cache
    )


def remember_fit(obj, corr) -> None:
    """Tie a fit to its mesh (main thread) so later takes and the ARKit tools find it."""
    _fits[corr.mesh_key] = corr
    obj[FIT_PROPERTY] = corr.mesh_key


def fit_object(obj, use_cache: bool = True):
    """Fit DualFace's template to ``obj`` (raises engine.retarget.RetargetError with the fix)."""
    corr = fit_correspondence(fit_inputs(obj), use_cache=use_cache)
    remember_fit(obj, corr)
    return corr


def correspondence_for(obj):
    """The object's fit if it has one and its mesh has not changed since, else None."""
    key = obj.get(FIT_PROPERTY) if obj is not None else None
    if not key:
        return None  # before the imports: a take on the DualFace head never loads the fitting code
    from engine.retarget.correspondence import Correspondence
    from engine.retarget.errors import RetargetError

    corr = _fits.get(key)
    if corr is None:
        path = _cache_dir() / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            corr = Correspondence.load(path)
        except RetargetError:
            return None
        _fits[key] = corr
    if corr.n_vertices != len(obj.data.vertices):
        return None  # the mesh was edited: fit again
    return corr


# ---------------------------------------------------------------------------------------------
# Hooks for the add-on's pipeline (see blender_addon/retargeting.py)


def can_retarget(obj) -> bool:
    """A mesh can take DualFace's vertex motion once it has been fitted."""
    return obj is not None and obj.type == "MESH" and correspondence_for(obj) is not None


def vertex_offsets_for(obj, animation, corr=None):
    """Template offsets of a take carried onto ``obj`` ([T, V_obj, 3] local space), or None.

    ``corr`` is a fit made for this take and not yet remembered on the object."""
    if corr is None:
        corr = correspondence_for(obj)
    if corr is None:
        return None
    _, _, matrix = _world_geometry(obj)
    world = corr.transfer(np.asarray(animation.offsets, dtype=np.float32))
    return np.ascontiguousarray(_to_local_vectors(world, matrix))


def part_of(obj, head, corr=None) -> str:
    """The part (engine.retarget.Part value, or 'ignore') a separate mesh plays on a fitted head."""
    from engine.retarget import classify_part

    chosen = getattr(obj, "dualface_part", "AUTO")
    if chosen == "IGNORE":
        return "ignore"
    if chosen != "AUTO":
        return chosen.lower()
    if corr is None:
        corr = correspondence_for(head)
    if corr is None:
        return "ignore"
    world, _, _ = _world_geometry(obj)
    return classify_part(obj.name, world, corr).value


def part_offsets_for(obj, head, animation, corr=None, part: str | None = None):
    """Offsets [T, V_obj, 3] (local space) of a separate part (teeth, tongue, eye, skin) of ``head``."""
    from engine.retarget import Part, attach_mesh, part_offsets

    if corr is None:
        corr = correspondence_for(head)
    part = part or part_of(obj, head, corr)
    if corr is None or part == "ignore":
        return None
    world, tris, matrix = _world_geometry(obj)
    offsets = np.asarray(animation.offsets, dtype=np.float32)
    if part == Part.SKIN.value:
        moved = attach_mesh(corr, world, tris).transfer(offsets)
    else:
        moved = part_offsets(Part(part), world, tris, corr, offsets)
    return np.ascontiguousarray(_to_local_vectors(moved, matrix))


# Parts found without the user pointing them at the head: only what the name or the position says
# is a mouth or eye part. A mesh merely near the face (a hat, a second character) is left alone.
_POSITION_PARTS = ("teeth", "upper_teeth", "lower_teeth", "tongue", "eye")


def _world_box(obj) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    corners = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
    world = corners @ matrix[:3, :3].T + matrix[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def part_candidates(head, objects) -> list[bpy.types.Object]:
    """Meshes that may move with ``head``: those whose DualFace Head points at it, and those that
    point at no head and sit inside the head's bounding box. Cheap (bounding boxes only)."""
    low, high = _world_box(head)
    margin = 0.1 * (high - low)
    found = []
    for obj in objects:
        if obj == head or obj.type != "MESH" or len(obj.data.vertices) == 0:
            continue
        if getattr(obj, "dualface_part", "AUTO") == "IGNORE":
            continue
        owner = getattr(obj, "dualface_head", None)
        if owner is not None and owner != head:
            continue
        if owner is None:
            box_low, box_high = _world_box(obj)
            centre = 0.5 * (box_low + box_high)
            if np.any(centre < low - margin) or np.any(centre > high + margin):
                continue
        found.append(obj)
    return found


def find_parts(head, objects, corr) -> list[tuple[bpy.types.Object, str]]:
    """(mesh, part) for the separate meshes that move with ``head`` in a take.

    A candidate (see part_candidates) that points at the head always belongs to it; one found by
    position only when its name, its DualFace Part or its position says it is teeth, a tongue or
    an eye (engine.retarget.classify_part). Ignored meshes are left out.
    """
    from engine.retarget import part_from_name

    found = []
    for obj in part_candidates(head, objects):
        part = part_of(obj, head, corr)
        if part == "ignore":
            continue
        pointed = getattr(obj, "dualface_head", None) is not None
        told = getattr(obj, "dualface_part", "AUTO") != "AUTO" or part_from_name(obj.name) is not None
        if not pointed and not told and part not in _POSITION_PARTS:
            continue
        found.append((obj, part))
    return found


# ---------------------------------------------------------------------------------------------
# ARKit mapping table


class DUALFACE_PG_arkit_map_item(bpy.types.PropertyGroup):
    arkit_name: StringProperty(name="ARKit", description="ARKit blendshape name")  # type: ignore[valid-type]  # Blender property annotation
    key_name: StringProperty(name="Shape Key", description="The mesh's shape key for it (empty: none)")  # type: ignore[valid-type]  # Blender property annotation


def mapping_overrides(obj) -> dict[str, str]:
    """The editable table as ``engine.arkit.matching.map_shape_keys`` overrides."""
    return {row.arkit_name: row.key_name for row in obj.dualface_arkit_map if row.key_name}


def shape_key_names(obj) -> list[str]:
    keys = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if keys is None:
        return []
    return [block.name for block in keys.key_blocks if block != keys.reference_key]


def current_mapping(obj):
    from engine.arkit.matching import map_shape_keys

    return map_shape_keys(shape_key_names(obj), mapping_overrides(obj))


def refresh_table(obj, reset: bool = False) -> None:
    """Fill the table from the automatic match; rows the user set stay unless ``reset``."""
    from engine.arkit import ARKIT_NAMES
    from engine.arkit.matching import map_shape_keys

    names = shape_key_names(obj)
    existing = {row.arkit_name: row.key_name for row in obj.dualface_arkit_map}
    keep = {} if reset else {k: v for k, v in existing.items() if v in names}
    mapping = map_shape_keys(names, keep)
    obj.dualface_arkit_map.clear()
    for arkit in ARKIT_NAMES:
        row = obj.dualface_arkit_map.add()
        row.arkit_name = arkit
        row.key_name = mapping.matched.get(arkit, "")


# ---------------------------------------------------------------------------------------------
# Operators


def _active_mesh(context, operator) -> bpy.types.Object | None:
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        operator.report({"ERROR"}, "select the head mesh (a mesh object) first")
        return None
    if context.mode != "OBJECT":
        operator.report({"ERROR"}, "switch to Object Mode first")
        return None
    return obj


class DUALFACE_OT_fit_mesh(bpy.types.Operator):
    """Fit DualFace's face to the active mesh so takes and ARKit shapes can be carried onto it"""

    bl_idname = "dualface.fit_mesh"
    bl_label = "Fit DualFace to Mesh"
    bl_options = {"REGISTER"}

    refit: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Ignore Cache", default=False, description="Fit again even if a cached fit exists"
    )

    def execute(self, context):
        from engine.retarget import RetargetError

        obj = _active_mesh(context, self)
        if obj is None:
            return {"CANCELLED"}
        clock = time.perf_counter()
        try:
            corr = fit_object(obj, use_cache=not self.refit)
        except RetargetError as error:
            self.report({"ERROR"}, f"DualFace: {error}")
            return {"CANCELLED"}
        moving = int(np.count_nonzero(np.diff(corr.matrix.indptr)))
        parts = []
        for other in context.selected_objects:
            if other is not obj and other.type == "MESH":
                other.dualface_head = obj
                parts.append(f"{other.name}: {part_of(other, obj)}")
        self.report(
            {"INFO"},
            f"DualFace: fitted '{obj.name}' in {time.perf_counter() - clock:.1f} s; "
            f"{moving} of {corr.n_vertices} vertices follow the face"
            + (f"; parts: {', '.join(parts)}" if parts else ""),
        )
        return {"FINISHED"}


class DUALFACE_OT_make_arkit_keys(bpy.types.Operator):
    """Add the 52 ARKit shape keys to the active mesh, carried over from DualFace's face"""

    bl_idname = "dualface.make_arkit_keys"
    bl_label = "Make ARKit Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from engine.arkit import ARKIT_NAMES
        from engine.retarget import RetargetError

        obj = _active_mesh(context, self)
        if obj is None:
            return {"CANCELLED"}
        try:
            corr = correspondence_for(obj) or fit_object(obj)
        except RetargetError as error:
            self.report({"ERROR"}, f"DualFace: {error}")
            return {"CANCELLED"}
        _, _, matrix = _world_geometry(obj)
        shapes = _to_local_vectors(corr.arkit_shapes(), matrix)  # [52, V, 3] local deltas
        existing = set(shape_key_names(obj))
        mapped = current_mapping(obj).matched
        skipped = [n for n in ARKIT_NAMES if n in existing or n in mapped]
        if len(skipped) == len(ARKIT_NAMES):
            self.report({"WARNING"}, "DualFace: the mesh already has all 52 ARKit shape keys; nothing added")
            return {"CANCELLED"}
        mesh = obj.data
        if mesh.shape_keys is None:
            obj.shape_key_add(name="Basis", from_mix=False)
        reference = mesh.shape_keys.reference_key
        rest = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        reference.data.foreach_get("co", rest)
        added = 0
        for index, name in enumerate(ARKIT_NAMES):
            if name in skipped:
                continue
            block = obj.shape_key_add(name=name, from_mix=False)
            block.relative_key = reference
            block.value = 0.0
            block.data.foreach_set("co", rest + shapes[index].ravel())
            added += 1
        refresh_table(obj)
        message = f"DualFace: added {added} ARKit shape keys"
        if skipped:
            shown = ", ".join(mapped.get(n, n) for n in skipped[:6])
            message += f"; kept {len(skipped)} existing ({shown}{', ...' if len(skipped) > 6 else ''})"
        self.report({"INFO"}, message)
        return {"FINISHED"}


class DUALFACE_OT_refresh_arkit_map(bpy.types.Operator):
    """Match the mesh's shape keys to ARKit names (keeps the rows you set by hand)"""

    bl_idname = "dualface.refresh_arkit_map"
    bl_label = "Match ARKit Keys"
    bl_options = {"REGISTER", "UNDO"}

    reset: BoolProperty(name="Reset", default=False, description="Forget hand-set rows and match again")  # type: ignore[valid-type]  # Blender property annotation

    def execute(self, context):
        obj = _active_mesh(context, self)
        if obj is None:
            return {"CANCELLED"}
        refresh_table(obj, reset=self.reset)
        mapping = current_mapping(obj)
        self.report({"INFO"}, f"DualFace: {len(mapping.matched)} of 52 ARKit shapes matched")
        return {"FINISHED"}


def sample_arkit_weights(obj, frame_start: int, frame_end: int) -> np.ndarray:
    """[T, 52] ARKit weights read from the mesh's mapped shape keys (F-curves, else the slider)."""
    from engine.arkit import ARKIT_NAMES

    from .keyframes import find_fcurve

    mapping = current_mapping(obj)
    keys = obj.data.shape_keys
    frames = np.arange(frame_start, frame_end + 1)
    out = np.zeros((len(frames), len(ARKIT_NAMES)), dtype=np.float32)
    for index, arkit in enumerate(ARKIT_NAMES):
        key_name = mapping.matched.get(arkit)
        if key_name is None:
            continue
        path = f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'
        curve = find_fcurve(keys, path)
        if curve is None:
            out[:, index] = keys.key_blocks[key_name].value
        else:
            out[:, index] = [curve.evaluate(float(f)) for f in frames]
    return out


class DUALFACE_OT_export_arkit(bpy.types.Operator):
    """Write the active mesh's ARKit animation as a Live Link Face CSV or a JSON file"""

    bl_idname = "dualface.export_arkit"
    bl_label = "Export ARKit Weights"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="")  # type: ignore[valid-type]  # Blender property annotation
    file_format: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Format",
        items=(
            ("CSV", "CSV (Live Link Face)", "Timecode, BlendShapeCount and the 52 shapes, as the app writes"),
            ("JSON", "JSON", "{fps, names, frames}"),
        ),
        default="CSV",
    )
    head_eye_columns: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Head and Eye Columns", default=False, description="Add the app's 9 rotation columns (zeros)"
    )

    def invoke(self, context, event):
        if not self.filepath:
            obj = context.active_object
            stem = bpy.path.clean_name(obj.name) if obj else "arkit"
            self.filepath = str(Path(bpy.path.abspath("//")) / f"{stem}_arkit.csv")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from engine.arkit.export import ExportError, write_arkit_csv, write_arkit_json

        from .takes import active_take

        obj = _active_mesh(context, self)
        if obj is None:
            return {"CANCELLED"}
        if not self.filepath:
            self.report({"ERROR"}, "choose a file to export to")
            return {"CANCELLED"}
        mapping = current_mapping(obj)
        if not mapping.matched:
            self.report(
                {"ERROR"},
                f"'{obj.name}' has no shape keys matched to ARKit names: use Make ARKit Shape Keys or "
                "fill in the mapping table",
            )
            return {"CANCELLED"}
        scene = context.scene
        found = active_take(obj)
        if found is not None:
            start, end = int(found[1]["start_frame"]), int(found[1]["frame_end"])
        else:
            start, end = scene.frame_start, scene.frame_end
        weights = sample_arkit_weights(obj, start, end)
        fps = scene.render.fps / scene.render.fps_base
        path = Path(bpy.path.abspath(self.filepath))
        suffix = ".csv" if self.file_format == "CSV" else ".json"
        if path.suffix.lower() != suffix:
            path = path.with_suffix(suffix)
        if not path.parent.is_dir():
            self.report({"ERROR"}, f"folder {path.parent} does not exist; choose another location")
            return {"CANCELLED"}
        try:
            if self.file_format == "CSV":
                write_arkit_csv(path, weights, fps, include_head_eye=self.head_eye_columns)
            else:
                write_arkit_json(path, weights, fps)
        except (ExportError, OSError) as error:
            self.report({"ERROR"}, f"DualFace: {error}")
            return {"CANCELLED"}
        missing = len(mapping.missing) + len(mapping.ambiguous)
        self.report(
            {"INFO"},
            f"DualFace: wrote {len(weights)} frames to {path.name}"
            + (f" ({missing} ARKit shapes without a key are 0)" if missing else ""),
        )
        return {"FINISHED"}


CLASSES = (
    DUALFACE_PG_arkit_map_item,
    DUALFACE_OT_fit_mesh,
    DUALFACE_OT_make_arkit_keys,
    DUALFACE_OT_refresh_arkit_map,
    DUALFACE_OT_export_arkit,
)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    # Properties registered at run time: no stub can know them.
    bpy.types.Object.dualface_arkit_map = CollectionProperty(type=DUALFACE_PG_arkit_map_item)  # type: ignore[attr-defined]
    bpy.types.Object.dualface_arkit_map_index = IntProperty(default=0)  # type: ignore[attr-defined]
    bpy.types.Object.dualface_part = EnumProperty(  # type: ignore[attr-defined]
        name="DualFace Part",
        items=PART_ITEMS,
        default="AUTO",
        description="How this mesh moves with the face",
    )
    bpy.types.Object.dualface_head = PointerProperty(  # type: ignore[attr-defined]
        name="DualFace Head", type=bpy.types.Object, description="The fitted head this part belongs to"
    )


def unregister() -> None:
    for name in ("dualface_head", "dualface_part", "dualface_arkit_map_index", "dualface_arkit_map"):
        if hasattr(bpy.types.Object, name):
            delattr(bpy.types.Object, name)
    _unregister_classes()
    _fits.clear()
