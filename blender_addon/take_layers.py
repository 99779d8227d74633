"""A take's blinks, gaze and head motion as NLA layers an animator can mute, key by hand or delete.

The lips are the take's action (see takes.py). Every other layer gets its own new action, placed as
a strip on its own NLA track named '[DF <layer>] <take>' on the datablock it animates:

- blinks, gaze (eyeLook*) and the head layer's brow raises: the mesh's shape keys. ARKit rigs use
  their own keys; the DualFace head (vertex mode) gets 'DF_<take>_<ARKit name>' keys of its own,
  made from the template rig, and the lips layer leaves that motion out of its own keys. A fitted
  head (vertex mode through a correspondence) gets the same keys, the template rig's shapes carried
  through the fit that carries the lips;
- gaze: the rotation of eye objects about their centre (the DualFace head's eyeballs, a fitted
  head's eye meshes), toward a target object when one is given;
- head: rotation (and the location that keeps the pivot in the neck) of the head object, or of the
  head bone when the mesh is deformed by an armature.

Turns are made in the face's own axes (the template's: x to the face's left, -y forward, z up),
which on a fitted head are the fit's, whatever the object's local axes.

Strips replace only the channels their layer owns, so muting a track leaves the rest of the take.
Earlier DualFace layer tracks of the same owners are muted; artist tracks are never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np

from . import keyframes
from .core import naming

TRACK_PREFIX = "[DF "
_LAYER_KEY = re.compile(rf"^{re.escape(naming.TAKE_PREFIX)}.+_\d{{3}}_(eye|brow)[A-Za-z]+$")
_HEAD_BONE = re.compile(r"(^|[^a-z])head$", re.I)
EYE_PARTS = ("eye_left", "eye_right")
# A carried layer shape smaller than this share of the template's own does not reach the mesh.
CARRIED_SHARE = 0.05
Job = tuple[Any, str, dict[tuple[str, int], np.ndarray]]  # (datablock, layer, (path, index) -> values)


@dataclass
class LayerTargets:
    """What the layers of one take animate."""

    face: Any  # bpy.types.Object (Any: the stubs type its data as a union of every kind)
    arkit_paths: dict[str, str] = field(default_factory=dict)  # ARKit name -> F-curve path (ARKit rigs)
    template: bool = False  # vertex mode on the DualFace head: layer keys come from the template rig
    eyes: list[Any] = field(default_factory=list)
    gaze_target: Any = None
    # A fitted head in vertex mode (no ARKit paths, not the template): engine.retarget.Correspondence
    # through which the template rig's layer shapes are carried; found on the mesh when not given.
    fit: Any = None

    @property
    def carried(self) -> bool:
        return self.fit is not None and not self.template and not self.arkit_paths


def track_name(layer: str, take: str) -> str:
    return f"{TRACK_PREFIX}{layer}] {take}"[: naming.MAX_ID_NAME]


def layer_key_name(take: str, arkit_name: str) -> str:
    return f"{take}_{arkit_name}"[: naming.MAX_ID_NAME]


def compute_layers_for(request, animation):
    """The request's layers (engine.layers.Layers) for ``animation``, at its (the scene's) rate."""
    from engine.audio.io import MODEL_SAMPLE_RATE, load_audio
    from engine.layers import compute_layers, dominant_emotion

    emotion, intensity = dominant_emotion(request.schedule())
    audio = load_audio(request.audio, request.sample_rate)
    arkit = np.asarray(animation.arkit, dtype=np.float32)
    return compute_layers(
        audio, MODEL_SAMPLE_RATE, arkit, animation.fps, emotion, min(intensity, 1.0), request.layers
    )


def tongue_tip_weights(animation, tongue: Any) -> np.ndarray | None:
    """[T] weights of the DualFace tongue's tip-raise key for the take (None: not that tongue)."""
    from engine.face.head import alveolar_ridge, default_head, tongue_tip_index
    from engine.layers.tongue import coronal_curve, tip_weights
    from engine.retarget.attachments import jaw_motion

    offsets = np.asarray(animation.offsets)
    if tongue.get("dualface_head_part") != "tongue" or offsets.ndim != 3 or offsets.shape[1] != 468:
        return None
    parts = default_head()
    rotations, translations = jaw_motion(offsets)
    coronal = coronal_curve(animation.audio_phonemes, animation.fps, animation.n_frames)
    tip = parts["tongue"].vertices[tongue_tip_index(parts["tongue"])]
    return tip_weights(coronal, rotations, translations, tip, alveolar_ridge(parts["upper_teeth"]))


def fitted_correspondence(face: Any):
    """The fit a vertex-mode take on ``face`` goes through (None: the template, or not fitted)."""
    from . import retarget_ops

    return retarget_ops.correspondence_for(face)


def find_eyes(face: bpy.types.Object, objects) -> list[bpy.types.Object]:
    """Eye meshes of ``face`` that turn about their own centre: the DualFace head's eyeballs, or
    meshes named as eyes parented to the face whose origin sits in the middle of their bounds; on a
    fitted head, the separate meshes its fit calls eyes (each holding one eyeball)."""
    from engine.retarget import Part, part_from_name

    found = []
    for obj in objects:
        if obj.type != "MESH" or obj.parent != face:
            continue
        if obj.get("dualface_head_part") in EYE_PARTS:
            found.append(obj)
        elif part_from_name(obj.name) is Part.EYE:
            corners = np.array([tuple(c) for c in obj.bound_box])
            centre, size = corners.mean(axis=0), np.ptp(corners, axis=0).max()
            if np.linalg.norm(centre) < 0.1 * size:
                found.append(obj)
    if found:
        return found
    corr = fitted_correspondence(face)
    return fitted_eyes(face, objects, corr) if corr is not None else []


def fitted_eyes(face: Any, objects, corr) -> list[Any]:
    """The eye meshes of a fitted head that hold one eyeball each (a mesh with both cannot turn)."""
    from . import retarget_ops

    eye_width = np.linalg.norm(np.subtract(*_eye_corners(corr, "left")))
    found = []
    for obj, part in retarget_ops.find_parts(face, objects, corr):
        if part != "eye":
            continue
        low, high = _world_bounds(obj)
        if np.max(high - low) < 1.5 * eye_width:
            found.append(obj)
    return found


def _eye_corners(corr, side: str) -> tuple[np.ndarray, np.ndarray]:
    """World positions of one eye's outer and inner corners on a fitted head."""
    from engine.face.template import load_template

    marks = load_template().landmarks
    points = corr.fitted_template[[marks[f"eye_outer_{side}"], marks[f"eye_inner_{side}"]]]
    world = corr.similarity.apply(points.astype(np.float64))
    return world[0], world[1]


def _world_bounds(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    corners = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return corners.min(axis=0), corners.max(axis=0)


def layer_offsets(layers, arkit: np.ndarray) -> np.ndarray:
    """[T, 468, 3] template motion of the channels the layers own: taken out of the lips layer."""
    from engine.arkit import ARKIT_INDEX
    from engine.arkit.basis import apply_arkit

    owned = np.zeros(arkit.shape, np.float32)
    for name in layers.owned_channels():
        owned[:, ARKIT_INDEX[name]] = arkit[:, ARKIT_INDEX[name]]
    return apply_arkit(owned)


def write_layers(
    scene, take: str, start_frame: int, layers, targets: LayerTargets, move_objects: bool = True
) -> dict[str, list[str]]:
    """Write every enabled layer; returns layer -> the 'owner/track' names it created.

    ``move_objects=False`` writes only shape keys (another mesh of the same character)."""
    if targets.fit is None and not targets.template and not targets.arkit_paths:
        targets.fit = fitted_correspondence(targets.face)
    frames = np.arange(start_frame, start_frame + _n_frames(layers), dtype=np.float32)
    if move_objects:
        scene.view_layers[0].update()  # world matrices of the eyes and the face, as they now stand
    eyes = _eye_angles(scene, layers, targets, frames) if move_objects else {}
    jobs: list[Job] = []
    for layer in sorted(layers.enabled):
        channels = dict(layers.channels.get(layer, {}))
        if layer == "gaze" and eyes:
            channels = layers.look_channels(np.mean(list(eyes.values()), axis=0))
        if channels:
            jobs += _shape_key_layer(targets, take, layer, channels, frames)
        if layer == "gaze":
            axes = face_axes(targets)
            jobs += [_eye_layer(eye, angles, axes) for eye, angles in eyes.items() if eye is not None]
        if layer == "head" and layers.head is not None and move_objects:
            jobs.append(_head_layer(targets, take, layers.head, frames))
    written: dict[str, list[str]] = {layer: [] for layer in sorted(layers.enabled)}
    owners = list(dict.fromkeys(owner for owner, _, _ in jobs))
    for owner in owners:
        mine = [(layer, channels) for o, layer, channels in jobs if o == owner]
        rest = {k: np.full(len(frames), _rest_value(owner, k), np.float32) for _, ch in mine for k in ch}
        main = owner == targets.face.data.shape_keys
        _strip(owner, take, "base", frames, rest, main)  # under the layers: where a muted layer leaves them
        for layer, channels in mine:
            written[layer].append(_strip(owner, take, layer, frames, channels, main))
    return written


def _rest_value(owner: Any, channel: tuple[str, int]) -> float:
    """What a channel shows without its layer: 0 for shape keys, the current value for transforms."""
    path, index = channel
    if path.startswith("key_blocks["):
        return 0.0
    return float(owner.path_resolve(path)[index])


def _n_frames(layers) -> int:
    for value in (layers.blink, layers.eyes, layers.head):
        if value is not None:
            return len(value)
    return len(next(iter(next(iter(layers.channels.values())).values()))) if layers.channels else 0


# ---- strips ------------------------------------------------------------------------------------


def _strip(
    owner: Any, take: str, layer: str, frames, channels: dict[tuple[str, int], np.ndarray], main: bool = False
) -> str:
    """New action '<take>_<layer>[_<object>]' with ``channels``, as a strip on a new track of ``owner``
    (``main``: the take's own mesh's shape keys, whose layers need no object in their name)."""
    user = getattr(owner, "user", None)  # a shape-key datablock is named after the mesh that uses it
    label = (user or owner).name
    name = f"{take}_{layer}" if main else naming.part_action_name(f"{take}_{layer}", label)
    name = name[: naming.MAX_ID_NAME]
    action, slot = keyframes.layer_action(owner, name)
    keyframes.write_layer_curves(action, slot, frames, channels)
    anim = owner.animation_data or owner.animation_data_create()
    for track in anim.nla_tracks:  # earlier takes' layers of this kind go quiet
        if track.name.startswith(f"{TRACK_PREFIX}{layer}] "):
            track.mute = True
    track = anim.nla_tracks.new()
    track.name = track_name(layer, take)
    strip = track.strips.new(name, int(frames[0]), action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    strip.blend_type = "REPLACE"
    strip.extrapolation = "NOTHING"
    return f"{label}/{track.name}"


def _shape_key_layer(targets: LayerTargets, take: str, layer: str, channels, frames) -> list[Job]:
    key = targets.face.data.shape_keys
    if key is None:
        return []
    if targets.template or targets.carried:
        shapes = _layer_shapes(targets, list(channels))
        paths = _template_layer_keys(targets.face, take, shapes)
    else:
        paths = {name: path for name, path in targets.arkit_paths.items() if name in channels}
    if not paths:
        return []
    return [(key, layer, {(paths[c], 0): channels[c] for c in paths})]


def _layer_shapes(targets: LayerTargets, names: list[str]) -> dict[str, np.ndarray]:
    """ARKit name -> [V, 3] local deltas of the layer's keys: the template rig's shapes, or on a fitted
    head those shapes carried through its fit (left out where the fit carries almost nothing: a
    head whose lids or brows do not follow the template's)."""
    from engine.arkit import ARKIT_INDEX
    from engine.arkit.basis import arkit_basis

    basis = arkit_basis()
    if not targets.carried:
        return {name: basis[ARKIT_INDEX[name]] for name in names}
    corr = targets.fit
    to_local = np.linalg.inv(np.array(targets.face.matrix_world, dtype=np.float64)[:3, :3])
    shapes = {}
    for name in names:
        template = basis[ARKIT_INDEX[name]]
        carried = np.asarray(corr.transfer(template), dtype=np.float64)
        reach = np.linalg.norm(carried, axis=1).max(initial=0.0)
        if reach >= CARRIED_SHARE * corr.similarity.scale * np.linalg.norm(template, axis=1).max():
            shapes[name] = (carried @ to_local.T).astype(np.float32)
    return shapes


def _template_layer_keys(face: Any, take: str, shapes: dict[str, np.ndarray]) -> dict[str, str]:
    """'DF_<take>_<ARKit name>' keys with the given deltas; earlier takes' ones rest at 0."""
    key = face.data.shape_keys
    for block in key.key_blocks:
        if _LAYER_KEY.match(block.name):
            block.value = 0.0
    rest = np.empty(len(face.data.vertices) * 3, dtype=np.float32)
    key.reference_key.data.foreach_get("co", rest)
    paths = {}
    for name, delta in shapes.items():
        block = face.shape_key_add(name=layer_key_name(take, name), from_mix=False)
        block.relative_key = key.reference_key
        block.data.foreach_set("co", rest + delta.ravel())
        paths[name] = f'key_blocks["{bpy.utils.escape_identifier(block.name)}"].value'
    return paths


# ---- eyes --------------------------------------------------------------------------------------


def face_axes(targets: LayerTargets) -> np.ndarray:
    """[3, 3] world directions (columns) of the face's own x, y, z axes: the fit's on a fitted
    head, else the face object's."""
    if targets.carried:
        return np.asarray(targets.fit.similarity.rotation, dtype=np.float64)
    matrix = np.array(targets.face.matrix_world, dtype=np.float64)[:3, :3]
    return matrix / np.linalg.norm(matrix, axis=0)


def _eye_angles(scene, layers, targets: LayerTargets, frames) -> dict:
    """Per eye [T, 2] yaw/pitch degrees in the face's frame, toward the target when there is one.

    Keyed by eye object; an ARKit rig without eye objects gets one entry under None (its eyeLook*)."""
    if layers.eyes is None:
        return {}
    if targets.gaze_target is None:
        return {eye: layers.eyes for eye in targets.eyes}
    positions = _target_positions(scene, targets.gaze_target, frames)
    axes = face_axes(targets)
    out: dict = {}
    eyes: list[Any] = targets.eyes or [None]
    for eye in eyes:
        centre = eye_pivot(eye) if eye is not None else np.array(targets.face.matrix_world.translation)
        d = (positions - centre) @ axes  # the way to the target in the face's frame
        yaw = np.degrees(np.arctan2(d[:, 0], -d[:, 1]))
        pitch = np.degrees(np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])))
        out[eye] = layers.eyes + np.stack([yaw, pitch], axis=1).astype(np.float32)
    return out


def eye_pivot(eye: Any) -> np.ndarray:
    """World point an eye turns about: its origin when that sits in the middle of the mesh, else
    the middle of its bounds (an imported eye whose origin is the character's)."""
    corners = np.array([tuple(c) for c in eye.bound_box], dtype=np.float64)
    centre, size = corners.mean(axis=0), np.ptp(corners, axis=0).max()
    local = np.zeros(3) if np.linalg.norm(centre) < 0.1 * size else centre
    matrix = np.array(eye.matrix_world, dtype=np.float64)
    return matrix[:3, :3] @ local + matrix[:3, 3]


def _target_positions(scene, target: Any, frames) -> np.ndarray:
    """World position of ``target`` at every frame (sampled frame by frame only when it moves)."""
    chain: list[Any] = []
    obj = target
    while obj is not None:
        chain.append(obj)
        obj = obj.parent
    if not any(o.animation_data for o in chain):
        scene.view_layers[0].update()  # world matrices of objects moved since the last evaluation
        return np.tile(np.array(target.matrix_world.translation), (len(frames), 1))
    current = scene.frame_current
    positions = []
    try:
        for f in frames:
            scene.frame_set(int(f))
            positions.append(tuple(target.matrix_world.translation))
    finally:
        scene.frame_set(current)
    return np.asarray(positions)


def _eye_layer(eye, angles: np.ndarray, axes: np.ndarray) -> Job:
    """Eye rotation keys: pitch about the face's x axis, yaw about its z axis, about the eye's pivot,
    on its rest pose (plus location keys when the eye's origin is not its pivot)."""
    from mathutils import Euler, Matrix

    world = eye.matrix_world.copy()
    basis = eye.matrix_basis.copy()
    above = world @ basis.inverted()  # parent (and parent inverse): world = above @ basis
    face = Matrix(axes.tolist())
    pivot = Matrix.Translation(tuple(eye_pivot(eye)))
    rotations, locations = [], []
    for yaw, pitch in np.radians(angles):
        turn = (face @ Euler((-pitch, 0.0, yaw), "XYZ").to_matrix() @ face.transposed()).to_4x4()
        location, rotation, _ = (above.inverted() @ pivot @ turn @ pivot.inverted() @ world).decompose()
        locations.append(tuple(location))
        rotations.append(
            rotation if eye.rotation_mode == "QUATERNION" else rotation.to_euler(eye.rotation_mode)
        )
    channels = _rotation_channels(eye.rotation_mode, rotations)
    where = np.array(locations, dtype=np.float32)
    if np.abs(where - np.array(eye.location, dtype=np.float32)).max(initial=0.0) > 1e-6:
        channels.update({("location", i): where[:, i] for i in range(3)})
    return (eye, "gaze", channels)


def _rotation_channels(mode: str, values) -> dict[tuple[str, int], np.ndarray]:
    data = np.array([tuple(v) for v in values], dtype=np.float32)
    path = "rotation_quaternion" if mode == "QUATERNION" else "rotation_euler"
    return {(path, i): data[:, i] for i in range(data.shape[1])}


# ---- head --------------------------------------------------------------------------------------


def head_pivot(face: bpy.types.Object) -> np.ndarray:
    """The nodding pivot in the face's own frame: the middle of the neck, behind the jaw."""
    corners = np.array([tuple(c) for c in face.bound_box])
    low, high = corners.min(axis=0), corners.max(axis=0)
    return np.array([0.5 * (low[0] + high[0]), high[1], low[2] + 0.2 * (high[2] - low[2])])


def _head_bone(face: Any):
    """(armature, pose bone) of the head when an armature deforms the face, else None."""
    arm = face.parent if face.parent is not None and face.parent.type == "ARMATURE" else None
    if arm is None:
        arm = next((m.object for m in face.modifiers if m.type == "ARMATURE" and m.object), None)
    if arm is None:
        return None
    bone = next((b for b in arm.pose.bones if _HEAD_BONE.search(b.name)), None)
    return (arm, bone) if bone is not None else None


def _head_layer(targets: LayerTargets, take: str, angles: np.ndarray, frames) -> Job:
    """Head rotation keys on the head bone (armature) or on the face object about the neck pivot."""
    from mathutils import Euler

    face = targets.face
    turns = [Euler(tuple(a), "XYZ").to_matrix() for a in np.radians(angles)]
    rigged = _head_bone(face)
    if rigged is not None:
        arm, bone = rigged
        return _bone_head_layer(face, arm, bone, take, turns, frames)
    return _object_head_layer(targets, take, turns, frames)


def _neck(targets: LayerTargets) -> tuple[np.ndarray, np.ndarray]:
    """(pivot, [3, 3] face axes as columns) in the face object's local frame: on a fitted head from
    the fitted template (the same neck point as the DualFace head's), else from the mesh itself."""
    if not targets.carried:
        return head_pivot(targets.face), np.eye(3)
    corr = targets.fit
    fitted = np.asarray(corr.fitted_template, dtype=np.float64)
    low, high = fitted.min(axis=0), fitted.max(axis=0)
    pivot = np.array([0.5 * (low[0] + high[0]), high[1], low[2] + 0.2 * (high[2] - low[2])])
    matrix = np.linalg.inv(np.array(targets.face.matrix_world, dtype=np.float64))
    local = matrix[:3, :3] @ corr.similarity.apply(pivot[None])[0] + matrix[:3, 3]
    axes = matrix[:3, :3] @ face_axes(targets)
    return local, axes / np.linalg.norm(axes, axis=0)


def _bone_head_layer(face: Any, arm: Any, bone: Any, take: str, turns: list, frames) -> Job:
    """The turns (in the face's frame) carried into the head bone's own frame, on its rest pose."""
    frame = (face.matrix_world.inverted() @ arm.matrix_world @ bone.bone.matrix_local).to_3x3().normalized()
    base = bone.matrix_basis.to_3x3()
    values = [(frame.transposed() @ turn @ frame) @ base for turn in turns]
    mode = bone.rotation_mode
    rotations = [v.to_quaternion() if mode == "QUATERNION" else v.to_euler(mode) for v in values]
    prefix = f'pose.bones["{bpy.utils.escape_identifier(bone.name)}"].'
    channels = {(prefix + path, i): v for (path, i), v in _rotation_channels(mode, rotations).items()}
    return (arm, "head", channels)


def _object_head_layer(targets: LayerTargets, take: str, turns: list, frames) -> Job:
    """The face object turned about the neck pivot: rotation plus the location that keeps the pivot."""
    from mathutils import Matrix

    face = targets.face
    neck, axes = _neck(targets)
    pivot = Matrix.Translation(tuple(neck))
    frame = Matrix(axes.tolist())
    basis = face.matrix_basis.copy()
    locations: list[tuple[float, ...]] = []
    rotations: list[Any] = []
    for turn in turns:
        moved = basis @ pivot @ (frame @ turn @ frame.transposed()).to_4x4() @ pivot.inverted()
        location, rotation, _ = moved.decompose()
        locations.append(tuple(location))
        rotations.append(
            rotation if face.rotation_mode == "QUATERNION" else rotation.to_euler(face.rotation_mode)
        )
    channels = _rotation_channels(face.rotation_mode, rotations)
    where = np.array(locations, dtype=np.float32)
    channels.update({("location", i): where[:, i] for i in range(3)})
    return (face, "head", channels)


def mute_take_layers(take: str, objects) -> None:
    """Silence a take's layer tracks (Restore Previous Action puts the artist's animation back)."""
    owners = [o for o in objects] + [
        o.data.shape_keys for o in objects if o.type == "MESH" and o.data.shape_keys
    ]
    for owner in owners:
        anim = owner.animation_data
        if anim is None:
            continue
        for track in anim.nla_tracks:
            if track.name.startswith(TRACK_PREFIX) and track.name.endswith(f"] {take}"):
                track.mute = True


_NOT_APPLIED = {
    "blinks": "it has no eyeBlink keys and none of its vertices follow DualFace's eyelids",
    "gaze": "it has no eye meshes, no eyeLook keys and no vertices that follow DualFace's eyelids",
    "head": "it has no head to turn",
}


def layer_notes(
    face: Any, take: str, layers, written: dict[str, list[str]], fitted: bool, parts=()
) -> list[str]:
    """What the take's report says about layers that could not reach ``face`` or its separate
    ``parts`` (objects), in whole or in part."""
    notes = [
        f"{layer} layer not applied to '{face.name}': {_NOT_APPLIED[layer]}"
        for layer in sorted(layers.enabled)
        if not written.get(layer)
    ]
    loose = [part.name for part in parts if not _rides_on(part, face)]
    if written.get("head") and loose and _head_bone(face) is None:
        notes.append(
            f"head motion: {', '.join(loose)} not parented to '{face.name}', so not turning with it "
            "(parent them to it)"
        )
    if not fitted:
        return notes
    key = face.data.shape_keys
    tracks = {t.name for t in key.animation_data.nla_tracks} if key and key.animation_data else set()
    if written.get("head") and layers.channels.get("head") and track_name("head", take) not in tracks:
        notes.append(
            f"brow raises not applied to '{face.name}': none of its vertices follow DualFace's brows"
        )
    if (
        written.get("gaze")
        and layers.eyes is not None
        and not any(
            track_name("gaze", take) in {t.name for t in eye.animation_data.nla_tracks}
            for eye in bpy.data.objects
            if eye != face and eye.animation_data
        )
    ):
        notes.append(
            f"gaze: no eye mesh of '{face.name}' turns (none found, or one mesh holds both eyes); "
            "only its eyelids follow the gaze"
        )
    return notes


def _rides_on(obj: Any, face: Any) -> bool:
    """``obj`` is a child (or grandchild) of ``face``, so the face's object transform moves it."""
    parent = obj.parent
    while parent is not None:
        if parent == face:
            return True
        parent = parent.parent
    return False
