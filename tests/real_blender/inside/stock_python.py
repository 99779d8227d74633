"""What a stock Blender's Python can do with the add-on: import every module of it, read audio
headers without Blender's `aud` module, and load the retarget package lazily.

    blender -b --python stock_python.py -- FOLDER     (FOLDER holds the audio files the test made)

Writes {python, numpy, has_aud, imported, import_errors, audio, retarget (the engine.retarget
modules loaded once every add-on module is imported)} to $DUALFACE_REPORT.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import traceback
from pathlib import Path

import bpy
import numpy as np

ADDON = "bl_ext.user_default.dualface"
FOLDER = Path(sys.argv[sys.argv.index("--") + 1])
report: dict = {
    "python": list(sys.version_info[:3]),
    "numpy": np.__version__,
    "blender": bpy.app.version_string,
    "has_aud": importlib.util.find_spec("aud") is not None,
}

package = importlib.import_module(ADDON)
imported, errors = [], {}
for module in pkgutil.walk_packages(package.__path__, prefix=f"{ADDON}."):
    if module.name.endswith(".__main__"):
        continue  # `python -m blender_addon`, a developer's entry point outside Blender
    try:
        importlib.import_module(module.name)
        imported.append(module.name)
    except Exception:  # noqa: BLE001 - every failure is a finding
        errors[module.name] = traceback.format_exc(limit=3)
report["imported"], report["import_errors"] = imported, errors

validation = importlib.import_module(f"{ADDON}.validation")
audio = {}
for path in sorted(FOLDER.iterdir()):
    try:
        info = validation.check_audio(str(path))
        audio[path.name] = {"rate": info.sample_rate, "channels": info.channels, "seconds": info.duration}
    except validation.InputError as error:
        audio[path.name] = {"error": str(error)}
report["audio"] = audio

from engine.retarget import RetargetError  # noqa: E402 - after the add-on: what is loaded by now

report["retarget"] = {
    "error_class": RetargetError.__name__,
    "loaded": sorted(m for m in sys.modules if m.startswith("engine.retarget")),
}
Path(os.environ["DUALFACE_REPORT"]).write_text(json.dumps(report, indent=1))
