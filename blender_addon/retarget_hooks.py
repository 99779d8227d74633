"""The seam to the retargeting modules (blender_addon/retarget_*.py, owned separately).

Each such module may define `register()`, `unregister()`, `can_retarget(obj) -> bool` and
`vertex_offsets_for(obj, animation) -> ndarray [T, V_obj, 3] | None`. The add-on imports whatever
is present, so it works with or without them.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def modules() -> list:
    found = []
    for info in pkgutil.iter_modules([str(_PACKAGE_DIR)]):
        if info.name.startswith("retarget_") and info.name != "retarget_hooks":
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
