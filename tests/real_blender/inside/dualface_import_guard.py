"""Startup script for the real-Blender lane: make torch, scipy, librosa and soundfile unimportable.

Copied into BLENDER_USER_RESOURCES/scripts/startup/, so Blender runs it before it enables any
add-on. Every attempt is appended (one JSON line, with the importing frames) to the file named by
DUALFACE_IMPORT_LOG, and answered with ModuleNotFoundError exactly as a stock Blender answers it,
even in a Blender whose Python happens to have the package.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

BLOCKED = ("torch", "scipy", "librosa", "soundfile")


class _Guard:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in BLOCKED:
            return None
        frames = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_stack()[:-1]]
        log = os.environ.get("DUALFACE_IMPORT_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"module": name, "stack": frames[-12:]}) + "\n")
        raise ModuleNotFoundError(f"No module named '{name}' (blocked by the real-Blender lane)", name=name)


def register() -> None:
    if not any(isinstance(finder, _Guard) for finder in sys.meta_path):
        for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
            del sys.modules[name]
        sys.meta_path.insert(0, _Guard())


def unregister() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _Guard)]


register()  # at import: before any add-on, not only when Blender calls register()
