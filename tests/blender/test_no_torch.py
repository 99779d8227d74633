"""The add-on in a Blender whose Python has no torch: it loads, registers and generates a take.

Most users install the extension into a stock Blender, where torch is absent (Set Up Engine adds it
for CUDA only): takes run on the engine's numpy runtime. A fresh interpreter hides torch with an
import hook that fails exactly like a missing package and records every attempt, so an
`import torch` swallowed by a try/except still counts as one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from blender_helpers import python_command, write_speechlike_wav

pytestmark = pytest.mark.blender
REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib, json, pkgutil, sys
sys.path.insert(0, {repo!r})
attempts = []

# A stock Blender ships numpy, not these. (scipy stays visible: engine.retarget still needs it to fit
# the head's teeth and eyes.)
ABSENT_IN_STOCK_BLENDER = ("soundfile", "soxr", "librosa", "safetensors", "tqdm")

class HideTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        if name.split(".")[0] in ABSENT_IN_STOCK_BLENDER:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, HideTorch())
import blender_addon
for info in pkgutil.walk_packages(blender_addon.__path__, "blender_addon."):
    importlib.import_module(info.name)
after_import = list(attempts)

import bpy
blender_addon.register()
after_register = list(attempts)
registered = {{
    "generate": hasattr(bpy.ops.dualface, "generate") and bpy.ops.dualface.generate.poll() in (True, False),
    "panel": "DUALFACE_PT_main" in dir(bpy.types),
    "scene_props": hasattr(bpy.types.Scene, "dualface"),
}}
from blender_addon import engine_bridge
bpy.ops.dualface.add_head()
scene = bpy.context.scene
head = bpy.context.active_object
scene.dualface.target = head
scene.dualface.audio_path = {audio!r}
try:
    bpy.ops.dualface.generate()
    error = ""
except RuntimeError as failure:
    error = str(failure)
facts = {{
    "after_import": after_import, "after_register": after_register, "registered": registered,
    "torch_available": engine_bridge.torch_available(),
    "describe": engine_bridge.describe(engine_bridge.EngineSettings()),
    "head_vertices": len(head.data.vertices),
    "error": error, "actions": [a.name for a in bpy.data.actions],
}}
blender_addon.unregister()
facts["unregistered"] = not hasattr(bpy.types.Scene, "dualface")
facts["torch_loaded"] = "torch" in sys.modules
print(json.dumps(facts))
"""


def test_addon_imports_registers_and_generates_without_torch(tmp_path):
    audio = write_speechlike_wav(tmp_path / "line.wav", seconds=1.0)
    weights = REPO / "weights" / "dualface.safetensors"
    if not weights.is_file():
        pytest.skip("shipped weights absent")
    script = SCRIPT.format(repo=str(REPO), audio=str(audio))
    env = {
        "PATH": "/usr/bin:/bin",
        "BLENDER_USER_RESOURCES": str(tmp_path / "user"),
        "DUALFACE_WEIGHTS": str(weights),
    }
    result = subprocess.run(
        python_command(script), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    # no module of the add-on reaches for torch on import or in register(), not even inside a try
    assert facts["after_import"] == [] and facts["after_register"] == []
    assert facts["registered"] == {"generate": True, "panel": True, "scene_props": True}
    assert not facts["torch_available"] and "numpy" in facts["describe"]
    assert facts["head_vertices"] == 468  # adding the template head needs no torch either
    # generating runs in Blender on the numpy runtime
    assert facts["error"] == "" and len(facts["actions"]) >= 1
    assert facts["unregistered"] and not facts["torch_loaded"]
