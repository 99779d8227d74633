"""Fixtures for tests that run inside real Blender through the bpy module.

BLENDER_USER_RESOURCES points at a temporary folder BEFORE bpy is imported, so installing and
enabling the extension, preferences and the undo stack never touch the developer's own Blender
configuration. Nothing is skipped silently: without bpy every Blender test is reported as skipped
with the reason and the fix.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

if "bpy" in sys.modules:
    # Inside a Blender executable (pytest-blender) bpy is loaded before any conftest: the folder
    # must have been chosen when Blender started.
    if not os.environ.get("BLENDER_USER_RESOURCES"):
        raise pytest.UsageError(
            "bpy was imported before tests/blender/conftest.py could isolate Blender's user folder: "
            "start with BLENDER_USER_RESOURCES=$(mktemp -d), or run `pytest tests/blender` on its own"
        )
    _USER_RESOURCES, _OWNED = os.environ["BLENDER_USER_RESOURCES"], False
else:
    _USER_RESOURCES, _OWNED = tempfile.mkdtemp(prefix="dualface_blender_user_"), True
    os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _bpy_or_reason():
    try:
        import bpy

        return bpy, None
    except ImportError as error:
        return None, f"bpy (Blender as a Python module) is not importable ({error}): pip install bpy==5.0.1"


BPY, BPY_MISSING = _bpy_or_reason()


def pytest_collection_modifyitems(config, items):
    if BPY_MISSING is None:
        return
    for item in items:
        if "blender" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=BPY_MISSING))


def pytest_sessionfinish(session, exitstatus):
    if _OWNED:
        shutil.rmtree(_USER_RESOURCES, ignore_errors=True)


@pytest.fixture(scope="session")
def user_resources() -> Path:
    return Path(_USER_RESOURCES)


@pytest.fixture(scope="session")
def addon():
    """The add-on registered once for the session (the lifecycle test checks register twice)."""
    import blender_addon

    blender_addon.register()
    yield blender_addon
    blender_addon.unregister()


@pytest.fixture
def scene(addon):
    """A fresh empty file at 30 fps, frames 1-250."""
    BPY.ops.wm.read_homefile(use_empty=True)
    current = BPY.context.scene
    current.render.fps, current.render.fps_base = 30, 1.0
    current.frame_start, current.frame_end = 1, 250
    return current


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small random-initialised DualFace checkpoint, saved like real weights."""
    from blender_helpers import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture
def engine_weights(tiny_weights, monkeypatch) -> Path:
    """The tiny checkpoint as the engine's default weights (what a bundled file would be)."""
    monkeypatch.setenv("DUALFACE_WEIGHTS", str(tiny_weights))
    return tiny_weights
