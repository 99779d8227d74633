"""DualFace for Blender: a voice recording becomes facial animation, as a take on the timeline.

Layout: `core/` holds the logic that needs no Blender (naming, ARKit matching, timing, the vertex
basis, requests); the other modules are the Blender glue (keyframes, takes, sequencer, review
scene, operators, panel, preferences, headless command). Nothing imports torch at module level,
so the add-on loads in any Blender; the engine runs in-process once torch is set up, or in an
external Python through the engine worker. Submodules are imported in register() so that
`blender_addon.core` stays importable without bpy.
"""

from __future__ import annotations

import importlib
import importlib.util

_cli_handle = None


class EnginePackageError(RuntimeError):
    """The `engine` package Python finds is not DualFace's (or is missing); the message says why."""


def check_engine_package() -> None:
    """Fail clearly when another add-on put a different `engine` package on Blender's path.

    The extension installs DualFace's engine as a top-level `engine` package (its wheel); a second
    package of that name, first on the path, would otherwise break the add-on with obscure errors."""
    try:
        engine = importlib.import_module("engine")
    except ImportError as error:
        raise EnginePackageError(
            f"DualFace cannot import its engine package ({error}); reinstall the DualFace extension"
        ) from None
    where = getattr(engine, "__file__", None) or ", ".join(getattr(engine, "__path__", [])) or "unknown"
    ours = (engine.__doc__ or "").startswith("DualFace engine")
    if ours:
        try:
            ours = importlib.util.find_spec("engine.request") is not None
        except (ImportError, ValueError):
            ours = False
    if not ours:
        raise EnginePackageError(
            f"another add-on put a different Python package named 'engine' on Blender's path ({where}); "
            "DualFace needs its own package of that name. Disable the other add-on (or remove that folder "
            "from the path), restart Blender and enable DualFace again"
        )


def _modules():
    from . import operators, overlay, panel, preferences, properties

    return (properties, preferences, operators, panel, overlay)


def register() -> None:
    global _cli_handle
    check_engine_package()
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
