"""Sequencer helpers: the strip collection across versions, free channels, and strips DualFace owns.

Newer Blenders renamed `sequences` to `strips`; both are supported. DualFace tags every strip it
creates with a custom property so later takes can mute their predecessors without ever touching
an artist's strip.
"""

from __future__ import annotations

import bpy

OWNER_KEY = "dualface_take"  # custom property on strips DualFace created: the take's action name
OBJECT_KEY = "dualface_object"  # ... and the object that take animates
MAX_CHANNEL = 128


def strips_of(scene: bpy.types.Scene):
    """The top-level strip collection (created on demand)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    # Blender 4.2-4.3 name it 'sequences'; the stubs describe 5.0 only.
    return editor.strips if hasattr(editor, "strips") else editor.sequences  # type: ignore[attr-defined]


def all_strips(scene: bpy.types.Scene) -> list:
    editor = scene.sequence_editor
    if editor is None:
        return []
    # Blender 4.2-4.3 name it 'sequences_all'; the stubs describe 5.0 only.
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)  # type: ignore[attr-defined]


def free_channel(scene: bpy.types.Scene, frame_start: int, frame_end: int, above: int = 0) -> int:
    """The lowest channel above `above` with nothing in [frame_start, frame_end)."""
    busy = {
        strip.channel
        for strip in all_strips(scene)
        if strip.frame_final_start < frame_end and strip.frame_final_end > frame_start
    }
    for channel in range(above + 1, MAX_CHANNEL + 1):
        if channel not in busy:
            return channel
    raise RuntimeError(
        f"every sequencer channel is busy between frames {frame_start} and {frame_end}; free one channel"
    )


def is_ours(strip) -> bool:
    return OWNER_KEY in strip.keys()


def tag(strip, take: str, object_name: str):
    strip[OWNER_KEY] = take
    strip[OBJECT_KEY] = object_name
    return strip


def add_sound(scene, name: str, filepath: str, channel: int, frame_start: int):
    return strips_of(scene).new_sound(name, filepath, channel, frame_start)


def add_text(scene, name: str, text: str, channel: int, frame_start: int, length: int):
    strips = strips_of(scene)
    try:
        strip = strips.new_effect(name, "TEXT", channel, frame_start, length=length)
    except TypeError:  # 4.2/4.3 take frame_end instead of length
        strip = strips.new_effect(name, "TEXT", channel, frame_start, frame_end=frame_start + length)
    strip.text = text
    return strip


def mute_earlier_takes(scene: bpy.types.Scene, take: str, object_name: str) -> int:
    """Mute the strips of this object's earlier takes so only the new take's audio plays.

    Other objects' takes (a dialogue between two heads) keep playing."""
    muted = 0
    for strip in all_strips(scene):
        if (
            is_ours(strip)
            and strip[OWNER_KEY] != take
            and strip.get(OBJECT_KEY) == object_name
            and not strip.mute
        ):
            strip.mute = True
            muted += 1
    return muted
