"""The seam to the retargeting modules (blender_addon/retarget_*.py, owned separately).

Each such module may define `register()`, `unregister()`, `can_retarget(obj) -> bool`,
`vertex_offsets_for(obj, animation) -> ndarray [T, V_obj, 3] | None` and `mapping_overrides(obj)
-> dict[ARKit name, key name]` (the user's ARKit table). The add-on imports whatever is present,
in name order, so it works with or without them.
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


def vertex_offsets_for(obj, animation):
    for module in modules():
        function = getattr(module, "vertex_offsets_for", None)
        if function is not None:
            offsets = function(obj, animation)
            if offsets is not None:
                return offsets
    return None


def arkit_overrides(obj) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for module in modules():
        function = getattr(module, "mapping_overrides", None)
        if function is not None and obj is not None and obj.type == "MESH":
            overrides.update(function(obj))
    return overrides
