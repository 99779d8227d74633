"""Viewport overlay: the caption under the playhead, coloured by how well lips and audio agree.

A scripted take's line is drawn word by word, each word in its own sync colour; the layout is
worked out in core.word_captions (no GPU needed to test it). Only installed with a UI (background
mode has no viewport to draw in).
"""

from __future__ import annotations

import bpy

from . import takes
from .core.word_captions import caption_at, overlay_texts

__all__ = ["caption_at", "register", "unregister"]

_handle = None


def _draw() -> None:
    context = bpy.context
    scene = context.scene
    settings = getattr(scene, "dualface", None)
    if scene is None or settings is None or not settings.show_overlay:
        return
    obj = settings.target or context.active_object
    found = takes.active_take(obj) if obj is not None else None
    region = context.region
    if found is None or region is None:
        return
    import blf

    font = 0
    size = max(12, int(region.height * 0.035))
    blf.size(font, size)
    texts = overlay_texts(
        found[1], scene.frame_current, lambda text: blf.dimensions(font, text)[0], region.width, size
    )
    if not texts:
        return
    blf.enable(font, blf.SHADOW)
    blf.shadow(font, 3, 0.0, 0.0, 0.0, 0.8)
    for piece in texts:
        blf.position(font, piece.x, piece.y, 0)
        blf.color(font, *piece.colour)
        blf.draw(font, piece.text)
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
