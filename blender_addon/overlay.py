"""Viewport overlay: the caption under the playhead, coloured by how well lips and audio agree.

Only installed with a UI (background mode has no viewport to draw in).
"""

from __future__ import annotations

import bpy

from . import takes
from .core.captions_style import caption_label, sync_colour

_handle = None


def caption_at(meta: dict, frame: float) -> dict | None:
    seconds = (frame - meta["start_frame"]) / float(meta["fps"])
    for caption in meta.get("captions", []):
        if caption["start"] <= seconds < caption["end"] and caption["text"].strip():
            return caption
    return None


def _draw() -> None:
    context = bpy.context
    scene = context.scene
    settings = getattr(scene, "dualface", None)
    if scene is None or settings is None or not settings.show_overlay:
        return
    obj = settings.target or context.active_object
    found = takes.active_take(obj) if obj is not None else None
    if found is None:
        return
    caption = caption_at(found[1], scene.frame_current)
    if caption is None:
        return
    import blf

    region = context.region
    if region is None:
        return
    font = 0
    size = max(12, int(region.height * 0.035))
    blf.size(font, size)
    text = caption_label(caption["text"], caption["sync"])
    width, _ = blf.dimensions(font, text)
    blf.position(font, (region.width - width) / 2, size * 1.5, 0)
    blf.color(font, *sync_colour(caption["sync"]))
    blf.enable(font, blf.SHADOW)
    blf.shadow(font, 3, 0.0, 0.0, 0.0, 0.8)
    blf.draw(font, text)
    blf.disable(font, blf.SHADOW)


def register() -> None:
    global _handle
    if bpy.app.background or _handle is not None:
        return
    _handle = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_handle, "WINDOW")
        _handle = None
