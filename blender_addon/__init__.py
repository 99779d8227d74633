"""DualFace for Blender: a voice recording becomes facial animation, as a take on the timeline.

Layout: `core/` holds the logic that needs no Blender (naming, ARKit matching, timing, the vertex
basis, requests); the other modules are the Blender glue (keyframes, takes, sequencer, review
scene, operators, panel, preferences, headless command). Nothing imports torch at module level,
so the add-on loads in any Blender; the engine runs in-process once torch is set up, or in an
external Python through the engine worker. Submodules are imported in register() so that
`blender_addon.core` stays importable without bpy.
"""

from __future__ import annotations

_cli_handle = None


def _modules():
    from . import operators, overlay, panel, preferences, properties

    return (properties, preferences, operators, panel, overlay)


def register() -> None:
    global _cli_handle
    from . import headless, retargeting

    for module in _modules():
        module.register()
    retargeting.register()
    _cli_handle = headless.register()


def unregister() -> None:
    global _cli_handle
    from . import engine_bridge, headless, retargeting

    headless.unregister(_cli_handle)
    _cli_handle = None
    retargeting.unregister()
    for module in reversed(_modules()):
        module.unregister()
    engine_bridge.shutdown()
