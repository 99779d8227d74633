"""Write one engine Animation into the scene as a take the artist can keep, compare or undo.

A take is a NEW action named 'DF_<clip>_NNN' on the mesh's shape-key datablock. The artist's
previous action is never modified: it is stashed, exactly like Blender's own Action Editor
'Stash' does, in a muted NLA track named '[DF stash] <action>' (which also keeps it from being
purged on save), and 'Restore Previous Action' puts it back. Artist shape keys are never
overwritten: ARKit mode only keyframes existing keys inside the new action; vertex mode adds
'DF_'-prefixed keys of its own. Artist strips are never touched: the take's sound strip goes on a
free channel, and only this object's earlier DualFace strips are muted.

Separate meshes of the head (teeth, tongue) move in the same take: each gets its own new action,
'<take>_<mesh>', with 'DF_' keys of its own, under the same rules (stash, never overwrite). So do
the other meshes of an ARKit character that carry ARKit keys of their own (teeth, tongue, eyes of a
Ready Player Me avatar): same armature or parent, or inside the head's bounds.

Blinks, gaze and head motion are optional layers on top of the lips (take_layers.py): each on its
own NLA track, and the lips action leaves out the channels a layer owns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import bpy
import numpy as np

from engine.arkit import matching

from . import keyframes, sequencer, take_layers
from .core import naming
from .core.vertex_basis import compact_basis
from .validation import AudioInfo, InputError, Target, mesh_of, shape_keys_of

META_KEY = "dualface"  # JSON custom property on the take action
STASH_PREFIX = "[DF stash] "


@dataclass
class PartMotion:
    """A separate mesh of the head (teeth, tongue, eye, ...) and its motion in a take."""

    obj: bpy.types.Object
    part: str  # engine.retarget.Part value
    offsets: np.ndarray  # [T, V_obj, 3] local space
    tongue_tip: np.ndarray | None = None  # [T] the DualFace tongue's tip-raise key (t, d, n, l, th)


TONGUE_TIP_KEY = "DF Tongue Tip"  # the DualFace head's tongue key that lifts the tip to the ridge
# A part whose largest offset stays under this (metres in the mesh's space) is rigid: no keys.
STILL_PART = 1e-7


@dataclass
class TakeResult:
    action: str
    mode: str
    frame_start: int
    frame_end: int  # inclusive
    channels: int
    keys_written: int
    shape_keys_created: list[str] = field(default_factory=list)
    sound_strip: str = ""
    previous_action: str | None = None
    markers: int = 0
    explained: float = 1.0  # vertex mode: share of the motion the basis reproduces
    seconds: dict[str, float] = field(default_factory=dict)
    # mesh name -> {"part", "action" (None for a rigid part), "previous_action", "keys"}
    parts: dict[str, dict] = field(default_factory=dict)
    layers: dict[str, list[str]] = field(default_factory=dict)  # layer -> 'owner/track' it created
    notes: list[str] = field(default_factory=list)  # what the user should know (nothing failed)


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


def write_take(
    scene: bpy.types.Scene,
    target: Target,
    animation,
    audio: AudioInfo,
    start_frame: int,
    captions: bool = False,
    vertex_offsets: np.ndarray | None = None,
    parts: Sequence[PartMotion] = (),
    layers=None,
    gaze_target: bpy.types.Object | None = None,
) -> TakeResult:
    """Create the take. `animation` must already be at the scene's frame rate.

    `vertex_offsets [T, V, 3]` replaces `animation.offsets` in vertex mode when the mesh is not
    the template (a retargeting module computed them); `parts` are the head's separate meshes;
    `layers` (engine.layers.Layers at the scene's rate) adds blinks, gaze and head motion, the
    eyes looking at `gaze_target` when given. Everything is checked and computed before the first
    write, so a failure leaves the file untouched.
    """
    clock = time.perf_counter()
    fps = scene_fps(scene)
    n_frames = animation.n_frames
    if abs(float(animation.fps) - fps) > 1e-3:
        raise InputError(
            f"the animation runs at {animation.fps} fps but the scene at {fps:g}; resample it first"
        )
    if n_frames < 1:
        raise InputError("the engine returned an empty animation; check that the audio contains sound")
    frame_end = start_frame + n_frames - 1
    channel = sequencer.free_channel(scene, start_frame, frame_end + 1)
    take = naming.take_name(naming.clip_label(audio.path), (a.name for a in bpy.data.actions))
    result = TakeResult(take, target.mode, start_frame, frame_end, 0, 0)
    layer_targets = _layer_targets(scene, target, vertex_offsets, gaze_target, layers, n_frames)
    owned = layers.owned_channels() if layers is not None else set()
    if target.mode == matching.VERTEX:
        offsets = _checked_offsets(target.obj, animation, vertex_offsets)
        if layer_targets is not None and layer_targets.template and owned:
            offsets = offsets - take_layers.layer_offsets(layers, np.asarray(animation.arkit, np.float32))
        result.seconds["checks"] = time.perf_counter() - clock
        clock = time.perf_counter()
        factorised = compact_basis(offsets)
        result.explained = factorised.explained
        result.seconds["basis"] = time.perf_counter() - clock
    else:
        arkit_channels = _arkit_channels(target, animation, owned)
        result.seconds["checks"] = time.perf_counter() - clock
    companions = _arkit_companions(scene, target, animation, owned) if target.mode == matching.ARKIT else []
    clock = time.perf_counter()
    part_bases = _part_bases(parts, companions, animation)
    result.seconds["parts_basis"] = time.perf_counter() - clock

    # ---- writes start here ----
    clock = time.perf_counter()
    obj = target.obj
    if mesh_of(obj).shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
        result.shape_keys_created.append("Basis")
    if target.mode == matching.VERTEX:
        channels = _add_basis_keys(obj, take, factorised, result)
    else:
        channels = arkit_channels
    result.seconds["shape_keys"] = time.perf_counter() - clock

    clock = time.perf_counter()
    key = shape_keys_of(obj)
    action = _start_new_action(key, take, result)
    frames = np.arange(start_frame, start_frame + n_frames, dtype=np.float32)
    result.keys_written = keyframes.write_curves(key, action, frames, channels)
    result.channels = len(channels)
    result.seconds["keyframes"] = time.perf_counter() - clock

    clock = time.perf_counter()
    for motion, factorised in part_bases:
        result.parts[motion.obj.name] = _write_part(motion, factorised, take, frames)
    for companion, channels, _ in companions:
        result.parts[companion.name] = _write_companion(companion, channels, take, frames)
    result.seconds["parts"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if layers is not None and layer_targets is not None:
        result.layers = _write_layers(scene, take, start_frame, layers, layer_targets, companions)
    result.seconds["layers"] = time.perf_counter() - clock

    clock = time.perf_counter()
    sound = sequencer.add_sound(scene, take, str(audio.path), channel, start_frame)
    sequencer.tag(sound, take, obj.name)
    sequencer.mute_earlier_takes(scene, take, obj.name)
    result.sound_strip = sound.name
    scene.frame_start = min(scene.frame_start, start_frame)
    scene.frame_end = max(scene.frame_end, frame_end)
    if captions:
        result.markers = _add_markers(scene, animation.captions, start_frame, fps)
    action[META_KEY] = json.dumps(_metadata(obj, animation, audio, result, fps))
    result.seconds["sequencer"] = time.perf_counter() - clock
    return result


def _part_bases(parts: Sequence[PartMotion], companions, animation) -> list:
    """(part, its 'DF_' key basis) for the separate parts; meshes with ARKit keys of their own
    (companions) are driven by those keys instead."""
    driven = {c for c, _, _ in companions}
    bases = []
    for motion in parts:
        if motion.obj in driven:
            continue
        if motion.tongue_tip is None:
            motion.tongue_tip = take_layers.tongue_tip_weights(animation, motion.obj)
        bases.append((motion, _part_basis(motion, animation.n_frames)))
    return bases


def _write_layers(scene, take: str, start_frame: int, layers, targets, companions) -> dict[str, list[str]]:
    """The layers on the take's mesh, then their shape-key channels on the character's other meshes."""
    written = take_layers.write_layers(scene, take, start_frame, layers, targets)
    for companion, _, paths in companions:
        companion_targets = take_layers.LayerTargets(companion, arkit_paths=paths)
        more = take_layers.write_layers(
            scene, take, start_frame, layers, companion_targets, move_objects=False
        )
        for layer, made in more.items():
            written.setdefault(layer, []).extend(made)
    return written


def _part_basis(motion: PartMotion, n_frames: int):
    """The part's 'DF_' key basis, or None when it does not move (eyes, upper teeth)."""
    offsets = np.asarray(motion.offsets, dtype=np.float32)
    expected = (n_frames, len(mesh_of(motion.obj).vertices), 3)
    if offsets.shape != expected:
        raise InputError(
            f"part offsets {tuple(offsets.shape)} do not fit '{motion.obj.name}' "
            f"({expected[0]} frames x {expected[1]} vertices x 3)"
        )
    if not np.isfinite(offsets).all():
        raise InputError(f"the motion computed for '{motion.obj.name}' is not finite; fit the head again")
    if float(np.abs(offsets).max(initial=0.0)) < STILL_PART:
        return None
    return compact_basis(offsets)


def _write_part(motion: PartMotion, factorised, take: str, frames: np.ndarray) -> dict:
    """The part's own 'DF_' keys and new action '<take>_<mesh>' (its previous action is stashed)."""
    info: dict = {"part": motion.part, "action": None, "previous_action": None, "keys": 0}
    if factorised is None:
        return info
    obj = motion.obj
    if mesh_of(obj).shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    part_result = TakeResult(take, matching.VERTEX, int(frames[0]), int(frames[-1]), 0, 0)
    channels = _add_basis_keys(obj, take, factorised, part_result)
    key = shape_keys_of(obj)
    action = _start_new_action(key, naming.part_action_name(take, obj.name), part_result)
    info["action"] = action.name
    info["previous_action"] = part_result.previous_action
    tip = motion.tongue_tip
    if tip is not None and key.key_blocks.get(TONGUE_TIP_KEY) is not None:
        channels[_value_path(TONGUE_TIP_KEY)] = tip
    info["keys"] = keyframes.write_curves(key, action, frames, channels)
    return info


def _checked_offsets(obj, animation, vertex_offsets) -> np.ndarray:
    offsets = np.asarray(animation.offsets if vertex_offsets is None else vertex_offsets, dtype=np.float32)
    expected = (animation.n_frames, len(obj.data.vertices), 3)
    if offsets.shape != expected:
        raise InputError(
            f"vertex offsets {tuple(offsets.shape)} do not fit '{obj.name}' "
            f"({expected[0]} frames x {expected[1]} vertices x 3)"
        )
    return offsets


def _arkit_channels(target: Target, animation, skip=frozenset()) -> dict[str, np.ndarray]:
    """F-curve data path -> weights, for every ARKit key the mesh has (but those in `skip`)."""
    from engine.arkit import ARKIT_NAMES

    arkit = np.asarray(animation.arkit, dtype=np.float32)
    if arkit.shape != (animation.n_frames, len(animation.arkit_names)):
        raise InputError(f"ARKit weights {arkit.shape} do not match {len(animation.arkit_names)} names")
    column = {name: i for i, name in enumerate(animation.arkit_names)}
    return {
        _value_path(key_name): arkit[:, column[ARKIT_NAMES[index]]]
        for index, key_name in sorted(target.arkit_keys.items())
        if ARKIT_NAMES[index] in column and ARKIT_NAMES[index] not in skip
    }


def _layer_targets(scene, target: Target, vertex_offsets, gaze_target, layers, n_frames: int):
    """What the layers animate (None without layers); the layers must cover the take's frames."""
    from engine.arkit import ARKIT_NAMES

    if layers is None:
        return None
    length = len(layers.blink) if layers.blink is not None else n_frames
    if length != n_frames:
        raise InputError(
            f"the take's layers do not cover its {n_frames} frames; compute them at the scene's rate"
        )
    obj = target.obj
    arkit = target.mode == matching.ARKIT
    paths = {ARKIT_NAMES[i]: _value_path(k) for i, k in target.arkit_keys.items()} if arkit else {}
    template = target.mode == matching.VERTEX and vertex_offsets is None
    eyes = take_layers.find_eyes(obj, scene.objects)
    return take_layers.LayerTargets(
        obj, arkit_paths=paths, template=template, eyes=eyes, gaze_target=gaze_target
    )


def _character_of(obj) -> set:
    """What ties the meshes of one character together: its armature(s) and its parent."""
    ties = {m.object for m in obj.modifiers if m.type == "ARMATURE" and m.object is not None}
    if obj.parent is not None:
        ties.add(obj.parent)
    return ties


def _arkit_companions(scene, target: Target, animation, skip) -> list[tuple[bpy.types.Object, dict, dict]]:
    """Other meshes of an ARKit character with ARKit keys of their own (Ready Player Me's teeth,
    tongue, eyes): (mesh, data path -> weights, ARKit name -> data path) for each."""
    from engine.arkit import ARKIT_NAMES

    from .validation import check_editable_mesh

    head = target.obj
    ties = _character_of(head)
    low, high = _world_box(head)
    found = []
    for obj in scene.objects:
        if obj == head or obj.type != "MESH" or mesh_of(obj).shape_keys is None:
            continue
        box_low, box_high = _world_box(obj)
        centre = 0.5 * (box_low + box_high)
        inside = bool(np.all(centre >= low) and np.all(centre <= high))
        if not (ties & _character_of(obj)) and not inside:
            continue
        names = [block.name for block in shape_keys_of(obj).key_blocks]
        matched = matching.match_arkit_keys(names)
        if not matched:
            continue
        check_editable_mesh(obj)
        companion = Target(obj, matching.ARKIT, matched)
        paths = {ARKIT_NAMES[i]: _value_path(k) for i, k in matched.items()}
        found.append((obj, _arkit_channels(companion, animation, skip), paths))
    return found


def _world_box(obj) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    corners = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
    world = corners @ matrix[:3, :3].T + matrix[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def _write_companion(obj, channels: dict[str, np.ndarray], take: str, frames: np.ndarray) -> dict:
    """Another mesh of the ARKit character: its own new action with its ARKit keys."""
    info: dict = {"part": "arkit", "action": None, "previous_action": None, "keys": 0}
    if not channels:
        return info
    key = shape_keys_of(obj)
    part_result = TakeResult(take, matching.ARKIT, int(frames[0]), int(frames[-1]), 0, 0)
    action = _start_new_action(key, naming.part_action_name(take, obj.name), part_result)
    info["action"] = action.name
    info["previous_action"] = part_result.previous_action
    info["keys"] = keyframes.write_curves(key, action, frames, channels)
    return info


def _add_basis_keys(obj, take: str, factorised, result: TakeResult) -> dict[str, np.ndarray]:
    """Vertex mode's 'DF_' keys (relative to the reference key); returns their weight channels."""
    key = obj.data.shape_keys
    reference = key.reference_key
    rest = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    reference.data.foreach_get("co", rest)
    for block in key.key_blocks:  # earlier takes' components must not linger at their last value
        if naming.is_basis_key_name(block.name):
            block.value = 0.0
    channels = {}
    for k in range(factorised.n_keys):
        block = obj.shape_key_add(name=naming.basis_key_name(take, k), from_mix=False)
        block.relative_key = reference
        block.slider_min, block.slider_max = -1.0, 1.0
        block.data.foreach_set("co", rest + factorised.basis[k].ravel())
        result.shape_keys_created.append(block.name)
        channels[_value_path(block.name)] = factorised.weights[:, k]
    return channels


def _start_new_action(key, take: str, result: TakeResult):
    """Assign a fresh action to the shape keys, stashing whatever was there."""
    anim = key.animation_data
    previous = anim.action if anim is not None else None
    previous_slot = getattr(anim, "action_slot", None) if anim is not None else None
    action = keyframes.new_action_for(key, take)
    if previous is not None:
        anim.action = None  # the new action gets a slot of its own, not the old one's
    keyframes.assign_action(key, action)
    if previous is not None:
        _stash(key, previous, previous_slot)
        result.previous_action = previous.name
    return action


def _add_markers(scene, captions, start_frame: int, fps: float) -> int:
    """One marker per caption line, named with its text (a scripted line: its words). Not one per
    word: words come 5-10 frames apart, Blender clips a marker's name at the next marker and gives
    markers no colour, so word markers would be unreadable slivers; the overlay and the review
    show each word in its sync colour instead."""
    count = 0
    for caption in captions:
        if caption.text.strip():
            scene.timeline_markers.new(
                caption.text[: naming.MAX_ID_NAME], frame=_frame(caption.start, start_frame, fps)
            )
            count += 1
    return count


def _metadata(obj, animation, audio: AudioInfo, result: TakeResult, fps: float) -> dict:
    """What the overlay, the review scene and Restore need later; survives saving the file."""
    return {
        "object": obj.name,
        "clip": naming.clip_label(audio.path),
        "audio": str(audio.path),
        "start_frame": result.frame_start,
        "frame_end": result.frame_end,
        "fps": fps,
        "mode": result.mode,
        "previous_action": result.previous_action,
        "sound_strip": result.sound_strip,
        "parts": result.parts,
        "layers": result.layers,
        "captions": [_caption_record(c) for c in animation.captions],
        "engine": {k: v for k, v in animation.meta.items() if isinstance(v, (str, int, float, bool))},
    }


def _caption_record(caption) -> dict:
    """A caption as the take stores it; a scripted line keeps its words, so the overlay and the
    review scene can colour each word after the file is saved and opened again."""
    record = {
        "start": caption.start,
        "end": caption.end,
        "text": caption.text,
        "confidence": caption.confidence,
        "sync": caption.sync,
    }
    if caption.words:
        record["words"] = [
            {"text": w.text, "start": w.start, "end": w.end, "confidence": w.confidence, "sync": w.sync}
            for w in caption.words
        ]
    return record


def take_metadata(action) -> dict | None:
    """The JSON a take stores on its action, or None for an artist's action."""
    if action is None or META_KEY not in action.keys():
        return None
    try:
        return json.loads(action[META_KEY])
    except (TypeError, ValueError):
        return None


def active_take(obj) -> tuple[bpy.types.Action, dict] | None:
    key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    action = key.animation_data.action if key is not None and key.animation_data else None
    meta = take_metadata(action)
    return (action, meta) if action is not None and meta is not None else None


def restore_previous_action(obj) -> str:
    """Re-assign the action that was active before the current take; returns its name."""
    found = active_take(obj)
    if found is None:
        raise InputError(f"'{obj.name if obj else '(none)'}' has no DualFace take active")
    _, meta = found
    name = meta.get("previous_action")
    previous = bpy.data.actions.get(name) if name else None
    if previous is None:
        raise InputError("this take had no previous action to restore (the shape keys were not animated)")
    _reassign(obj.data.shape_keys, previous)
    take_layers.mute_take_layers(found[0].name, bpy.data.objects)
    for part_name, info in (meta.get("parts") or {}).items():
        part = bpy.data.objects.get(part_name)
        part_previous = bpy.data.actions.get(info.get("previous_action") or "")
        if part is not None and part.type == "MESH" and part.data.shape_keys and part_previous:
            _reassign(part.data.shape_keys, part_previous)
    return previous.name


def _reassign(key, previous) -> None:
    """Make a stashed action active again, in the slot it was stashed with."""
    anim = key.animation_data
    slot = None
    for track in anim.nla_tracks:
        for strip in track.strips:
            if strip.action == previous and hasattr(strip, "action_slot"):
                slot = strip.action_slot
    anim.action = previous
    if slot is not None and hasattr(anim, "action_slot"):
        anim.action_slot = slot


def _stash(owner, action, slot) -> None:
    """Keep `action` safe in a muted NLA track, as Blender's Stash does; never twice."""
    anim = owner.animation_data
    for track in anim.nla_tracks:
        if any(strip.action == action for strip in track.strips):
            return
    track = anim.nla_tracks.new()
    track.name = (STASH_PREFIX + action.name)[: naming.MAX_ID_NAME]
    start = int(action.frame_range[0])
    strip = track.strips.new(action.name, start, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    track.mute = True


def _value_path(key_name: str) -> str:
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def _frame(seconds: float, start_frame: int, fps: float) -> int:
    return start_frame + int(round(seconds * fps))
