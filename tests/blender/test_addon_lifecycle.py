"""Registering, packaging, validating and installing the extension the way users get it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from blender_helpers import python_command, write_speechlike_wav

pytestmark = pytest.mark.blender
REPO = Path(__file__).resolve().parents[2]


def test_register_and_unregister_twice_leave_nothing_behind():
    import bpy

    import blender_addon

    was_registered = hasattr(bpy.types.Scene, "dualface")
    if was_registered:
        blender_addon.unregister()
    try:
        for _ in range(2):
            blender_addon.register()
            assert hasattr(bpy.types.Scene, "dualface") and hasattr(bpy.types.WindowManager, "dualface_job")
            assert bpy.ops.dualface.generate.poll() in (True, False)  # the operator exists
            assert "DUALFACE_PT_main" in dir(bpy.types)
            blender_addon.unregister()
            assert not hasattr(bpy.types.Scene, "dualface")
            assert "DUALFACE_PT_main" not in dir(bpy.types)
    finally:
        if was_registered:
            blender_addon.register()


def test_the_addon_package_never_imports_torch_at_module_level():
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "import importlib, pkgutil, blender_addon, blender_addon.core\n"
        "for m in pkgutil.walk_packages(blender_addon.__path__, 'blender_addon.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(python_command(code), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_enabling_says_so_when_another_engine_package_shadows_ours(tmp_path):
    other = tmp_path / "other_addon" / "engine"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text('"""Another add-on game engine."""\n')
    code = (
        f"import sys; sys.path[:0] = [{str(other.parent)!r}, {str(REPO)!r}]\n"
        "import blender_addon\n"
        "try:\n"
        "    blender_addon.check_engine_package()\n"
        "except blender_addon.EnginePackageError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "different Python package named 'engine'" in result.stdout, result.stderr
    assert str(other) in result.stdout
    import blender_addon

    blender_addon.check_engine_package()  # ours: no complaint


def test_build_fails_clearly_without_weights_or_with_a_bad_manifest(tmp_path):
    import build_addon

    code = build_addon.main(["--weights", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)])
    assert code == 1
    bad = tmp_path / "blender_manifest.toml"
    text = (REPO / "blender_manifest.toml").read_text()
    bad.write_text(text.replace('blender_version_min = "4.2.0"', 'blender_version_min = "four"'))
    archive = build_addon.build(tmp_path / "dist", None, manifest_path=bad)
    with pytest.raises(build_addon.BuildError, match="blender_version_min"):
        build_addon.validate(archive)


@pytest.mark.slow
def test_built_zip_validates_installs_enables_and_animates_with_bundled_weights(tmp_path, tiny_weights):
    import build_addon

    archive = build_addon.build(tmp_path / "dist", tiny_weights)
    build_addon.validate(archive)
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
    assert {"blender_manifest.toml", "__init__.py", "core/vertex_basis.py", "weights/dualface.safetensors",
            "weights/dualface.json", "wheels/dualface_engine-0.1.0-py3-none-any.whl"} <= names  # fmt: skip
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)

    audio = tmp_path / "clip.wav"
    write_speechlike_wav(audio, seconds=1.0)
    user = tmp_path / "user"
    script = f"""
import json, sys, bpy, addon_utils
result = bpy.ops.extensions.package_install_files(
    filepath={str(archive)!r}, repo="user_default", enable_on_install=True
)
name = "bl_ext.user_default.dualface"
module = sys.modules[name]
from pathlib import Path
local = Path(bpy.utils.user_resource("EXTENSIONS", path=".local"))
site = local.glob("lib/python*/site-packages/engine/arkit/names.py")
code = sys.modules[name + ".headless"].main(["animate", "--add-head", "--audio", {str(audio)!r}])
print(json.dumps({{
    "result": sorted(result), "enabled": name in bpy.context.preferences.addons,
    "panel": "DUALFACE_PT_main" in dir(bpy.types), "wheel_installed": any(True for _ in site),
    "weights": str(Path(module.__file__).parent / "weights" / "dualface.safetensors"),
    "code": code, "actions": [a.name for a in bpy.data.actions],
}}))
"""
    result = subprocess.run(
        python_command(script), capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"BLENDER_USER_RESOURCES": str(user), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["result"] == ["FINISHED"] and facts["enabled"] and facts["panel"]
    assert facts["wheel_installed"], "Blender did not install the engine wheel"
    assert Path(facts["weights"]).is_file() and str(user) in facts["weights"]
    assert facts["code"] == 0 and "DF_clip_001" in facts["actions"]  # the take, its parts and layers
    assert all(name.startswith("DF_clip_001") for name in facts["actions"])
