"""DualFace for Blender: a voice recording becomes facial animation, as a take on the timeline.

Layout: `core/` holds the logic that needs no Blender (naming, ARKit matching, timing, the vertex
basis, requests); the other modules are the Blender glue (keyframes, takes, sequencer, review
scene, operators, panel, preferences, headless command). Nothing imports torch at module level,
so the add-on loads in any Blender; the engine runs in-process once torch is set up, or in an
external Python through the engine worker.
"""

from __future__ import annotations

from . import headless, operators, overlay, panel, preferences, properties, retarget_hooks

_modules = (properties, preferences, operators, panel, overlay)
_cli_handle = None


def register() -> None:
    global _cli_handle
    for module in _modules:
        module.register()
    retarget_hooks.register()
    _cli_handle = headless.register()


def unregister() -> None:
    global _cli_handle
    from . import engine_bridge

    headless.unregister(_cli_handle)
    _cli_handle = None
    retarget_hooks.unregister()
    for module in reversed(_modules):
        module.unregister()
    engine_bridge.shutdown()
