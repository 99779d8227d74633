"""Bulk keyframe writing that works on every supported Blender.

Blender 4.4 introduced layered actions (channels live in a channelbag per slot) and 5.0 removed
`Action.fcurves`; 4.2/4.3 only have `Action.fcurves`. The API is chosen by feature detection, never
by version number. Keys are written with `keyframe_points.add` + `foreach_set`, which is about a
thousand times faster than `keyframe_insert` per key.
"""

from __future__ import annotations

from typing import cast

import bpy
import numpy as np

GROUP_NAME = "DualFace"

# The datablocks DualFace animates: shape keys (takes) and scenes (the keyframed emotion).
Animated = bpy.types.Key | bpy.types.Scene


def uses_layered_actions(action: bpy.types.Action) -> bool:
    """True on 4.4+, where channels live in per-slot channelbags (4.4 still has a legacy proxy)."""
    return hasattr(action, "slots")


def new_action_for(owner: Animated, name: str) -> bpy.types.Action:
    """A fresh action that `owner` (a shape-key datablock) can be assigned; nothing is assigned yet."""
    action = bpy.data.actions.new(name)
    if not uses_layered_actions(action):
        action.id_root = owner.id_type  # type: ignore[attr-defined]  # 4.2/4.3 only; the stubs are 5.0
    return action


def assign_action(owner: Animated, action: bpy.types.Action) -> None:
    """Make `action` the active action of `owner`, with its own slot on layered-action Blenders."""
    anim = owner.animation_data or owner.animation_data_create()
    if anim is None:
        raise ValueError(f"'{owner.name}' cannot hold animation")
    anim.action = action
    if hasattr(action, "slots") and hasattr(anim, "action_slot"):
        slot = anim.action_slot
        if slot is None:
            slot = action.slots.new(id_type=owner.id_type, name=owner.name)
            anim.action_slot = slot


def fcurve_collection(owner: Animated, action: bpy.types.Action):
    """(the F-curve collection that animates `owner` inside `action`, a group factory)."""
    anim = owner.animation_data
    if anim is None or anim.action != action:
        raise ValueError(f"assign the action '{action.name}' to '{owner.name}' before writing keys")
    if uses_layered_actions(action):
        from bpy_extras import anim_utils

        slot = anim.action_slot
        if slot is None:
            raise ValueError(f"the action '{action.name}' has no slot for '{owner.name}'")
        channelbag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        group = channelbag.groups.get(GROUP_NAME) if hasattr(channelbag.groups, "get") else None
        group = group or channelbag.groups.new(GROUP_NAME)
        return channelbag.fcurves, group
    # Blender 4.2/4.3 (legacy actions); the stubs describe 5.0, where these attributes are gone.
    groups = action.groups  # type: ignore[attr-defined]
    return action.fcurves, groups.get(GROUP_NAME) or groups.new(GROUP_NAME)  # type: ignore[attr-defined]


def find_fcurve(owner: Animated, data_path: str, index: int = 0):
    """The F-curve animating `owner.<data_path>[index]` in its active action, or None."""
    anim = owner.animation_data
    action = anim.action if anim else None
    if action is None:
        return None
    if not uses_layered_actions(action):
        return action.fcurves.find(data_path, index=index)  # type: ignore[attr-defined]  # 4.2/4.3
    slot = getattr(anim, "action_slot", None)
    if slot is None:
        return None
    from bpy_extras import anim_utils

    channelbag = anim_utils.action_get_channelbag_for_slot(action, slot)
    return channelbag.fcurves.find(data_path, index=index) if channelbag else None


def write_curves(
    owner: Animated,
    action: bpy.types.Action,
    frames: np.ndarray,
    channels: dict[str, np.ndarray],
) -> int:
    """Key `owner.<data_path> = values[t]` at `frames[t]` for every data path; returns the key count.

    `owner` must already have `action` assigned. Keys are linear: the samples are dense, so
    Bezier handles would only add overshoot.
    """
    fcurves, group = fcurve_collection(owner, action)
    return _write_points(fcurves, group, frames, {(path, 0): values for path, values in channels.items()})


def layer_action(owner: bpy.types.ID, name: str) -> tuple[bpy.types.Action, object]:
    """A fresh action with a slot for `owner`, for an NLA strip; nothing is assigned to `owner`."""
    action = bpy.data.actions.new(name)
    if not uses_layered_actions(action):
        action.id_root = owner.id_type  # type: ignore[attr-defined]  # 4.2/4.3 only
        return action, None
    return action, action.slots.new(id_type=owner.id_type, name=owner.name)


def write_layer_curves(
    action: bpy.types.Action, slot, frames: np.ndarray, channels: dict[tuple[str, int], np.ndarray]
) -> int:
    """Key `(data_path, index) -> values[t]` at `frames[t]` into `action` (its `slot` on 4.4+)."""
    if uses_layered_actions(action):
        from bpy_extras import anim_utils

        channelbag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        group = channelbag.groups.new(GROUP_NAME)
        return _write_points(channelbag.fcurves, group, frames, channels)
    groups = action.groups  # type: ignore[attr-defined]  # 4.2/4.3
    return _write_points(action.fcurves, groups.new(GROUP_NAME), frames, channels)  # type: ignore[attr-defined]


def _write_points(fcurves, group, frames: np.ndarray, channels: dict[tuple[str, int], np.ndarray]) -> int:
    frames = np.asarray(frames, dtype=np.float32)
    n = int(frames.shape[0])
    coordinates = np.empty((n, 2), dtype=np.float32)
    coordinates[:, 0] = frames
    interpolation_rna = cast(bpy.types.EnumProperty, bpy.types.Keyframe.bl_rna.properties["interpolation"])
    linear = interpolation_rna.enum_items["LINEAR"].value
    interpolation = np.full(n, linear, dtype=np.int32)
    written = 0
    for (data_path, index), values in channels.items():
        fcurve = fcurves.new(data_path, index=index)
        fcurve.group = group
        points = fcurve.keyframe_points
        points.add(n)
        coordinates[:, 1] = values
        points.foreach_set("co", coordinates.ravel())
        points.foreach_set("interpolation", interpolation)
        fcurve.update()
        written += n
    return written
