"""Registration and UI hooks of the retargeting modules (blender_addon/retarget_*.py).

Each such module may define `register()`, `unregister()`, `can_retarget(obj) -> bool` (the mesh
has a fit) and `mapping_overrides(obj) -> dict[ARKit name, key name]` (the user's ARKit table);
they are found in name order. A take's fit, its carried-over offsets and the head's separate parts
come from blender_addon.retarget_ops directly (see pipeline.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def modules() -> list:
    found = []
    for info in sorted(pkgutil.iter_modules([str(_PACKAGE_DIR)]), key=lambda i: i.name):
        if info.name.startswith("retarget_"):
            found.append(importlib.import_module(f"{__package__}.{info.name}"))
    return found


def register() -> None:
    for module in modules():
        if hasattr(module, "register"):
            module.register()


def unregister() -> None:
    for module in reversed(modules()):
        if hasattr(module, "unregister"):
            module.unregister()


def can_retarget(obj) -> bool:
    return any(getattr(m, "can_retarget", None) and m.can_retarget(obj) for m in modules())


def arkit_overrides(obj) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for module in modules():
        function = getattr(module, "mapping_overrides", None)
        if function is not None and obj is not None and obj.type == "MESH":
            overrides.update(function(obj))
    return overrides
