"""'Set Up Engine': install torch and the engine's dependencies into the extension's user folder.

Blender ships numpy but not torch. pip runs in a background thread (Blender stays responsive)
with `--target` into the extension's own user folder, so nothing outside the extension changes
and removing the extension's user data removes the engine. Blender's numpy is pinned so pip
never replaces the numpy Blender itself was built against. Downloads only happen with the user's
consent, and never when Blender is in offline mode (bpy.app.online_access).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

TORCH_VERSION = "2.13.0"
TORCH_INDEX = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu128",
}
ENGINE_PACKAGES = ("librosa==0.11.0", "soundfile>=0.12", "scipy>=1.11", "safetensors>=0.4", "tqdm>=4.66")
SITE_DIR_NAME = "site-packages"


def site_dir(user_folder: str | Path) -> Path:
    return Path(user_folder) / SITE_DIR_NAME


def activate(user_folder: str | Path) -> bool:
    """Make an installed engine importable (appended last, so Blender's own modules win)."""
    site = str(site_dir(user_folder))
    if not os.path.isdir(site):
        return False
    if site not in sys.path:
        sys.path.append(site)
        importlib.invalidate_caches()
    return True


def pip_commands(user_folder: str | Path, variant: str, python: str | None = None) -> list[list[str]]:
    """The pip invocations, in order: torch from PyTorch's index, then the engine's dependencies."""
    if variant not in TORCH_INDEX:
        raise ValueError(f"torch variant must be one of {', '.join(TORCH_INDEX)}, got {variant!r}")
    python = python or sys.executable
    target = str(site_dir(user_folder))
    common = [
        python,
        "-m",
        "pip",
        "install",
        "--target",
        target,
        "--upgrade",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
    ]
    constraints = _numpy_pin()
    return [
        common + ["--index-url", TORCH_INDEX[variant], f"torch=={TORCH_VERSION}"],
        common + [*constraints, *ENGINE_PACKAGES],
    ]


def _numpy_pin() -> list[str]:
    try:
        import numpy

        return [f"numpy=={numpy.__version__}"]
    except ImportError:
        return []


@dataclass
class SetupState:
    running: bool = False
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    log: list[str] = field(default_factory=list)


state = SetupState()
_process: subprocess.Popen | None = None
_cancelled = threading.Event()


def start(user_folder: str | Path, variant: str, online_access: bool) -> None:
    """Begin the installation in a background thread; raises if it must not run."""
    global state
    if not online_access:
        raise PermissionError(
            "Blender is in offline mode: allow online access in Preferences > System > Network "
            "to download the engine, or point 'External Python' at a Python that has torch"
        )
    if state.running:
        raise RuntimeError("the engine set-up is already running")
    commands = pip_commands(user_folder, variant)
    site_dir(user_folder).mkdir(parents=True, exist_ok=True)
    state = SetupState(running=True, message="starting pip")
    _cancelled.clear()
    threading.Thread(target=_install, args=(commands, user_folder), daemon=True).start()


def cancel() -> None:
    _cancelled.set()
    if _process is not None and _process.poll() is None:
        _process.terminate()


def _install(commands: list[list[str]], user_folder) -> None:
    global _process
    steps = len(commands) + 1
    try:
        for step, command in enumerate(commands):
            label = "torch" if step == 0 else "engine dependencies"
            state.message = f"installing {label} ({step + 1}/{steps})"
            _process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert _process.stdout is not None  # stdout=PIPE
            for line in _process.stdout:
                line = line.strip()
                if line:
                    state.log = (state.log + [line])[-30:]
                    if line.startswith(("Collecting", "Downloading", "Installing")):
                        state.message = f"{label}: {line[:90]}"
            code = _process.wait()
            if _cancelled.is_set():
                state.error = "cancelled"
                return
            if code != 0:
                state.error = (
                    f"pip failed installing {label} (exit {code}): {state.log[-1] if state.log else ''}"
                )
                return
            state.fraction = (step + 1) / steps
        state.message = "checking the installation"
        check = subprocess.run(
            [sys.executable, "-c", "import torch, librosa, safetensors; print(torch.__version__)"],
            env={**os.environ, "PYTHONPATH": str(site_dir(user_folder))},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check.returncode != 0:
            state.error = f"installed, but torch does not import: {check.stderr.strip().splitlines()[-1:]}"
            return
        activate(user_folder)
        state.fraction = 1.0
        state.message = f"engine ready (torch {check.stdout.strip()})"
    except Exception as error:  # noqa: BLE001 - the thread must always report back
        state.error = f"set-up failed: {error}"
    finally:
        state.running = False
        _process = None
