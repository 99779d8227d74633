"""'Set Up Engine': install torch and the engine's dependencies into the extension's user folder.

Blender ships numpy but not torch. pip runs in a background thread (Blender stays responsive)
with `--target` into the extension's own user folder, so nothing outside the extension changes
and removing the extension's user data removes the engine. Every package comes from a lock file
(`locks/*.txt`, written by scripts/lock_engine.py): exact versions, wheels only, each file checked
against its sha256 (`--require-hashes`), no dependency resolution at the user's end (`--no-deps`).
The locks never contain numpy: Blender's own numpy is passed as a constraint, so pip can neither
replace it nor install a second copy. Downloads only happen with the user's consent, and never
when Blender is in offline mode (bpy.app.online_access).
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
PYPI_INDEX = "https://pypi.org/simple"  # the engine's dependencies, and torch's own (sympy, filelock, ...)
TORCH_INDEX = {
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": PYPI_INDEX,  # PyPI's Linux torch is the CUDA build (CUDA 13 runtime wheels from NVIDIA)
}
# What the engine needs besides torch; scripts/lock_engine.py turns these into locks/engine.txt.
ENGINE_PACKAGES = ("librosa==0.11.0", "soundfile>=0.12", "scipy>=1.11", "safetensors>=0.4", "tqdm>=4.66")
# numpy that Blender ships, by its Python: the locks are resolved against it (numpy 1.x has no 3.13 wheels).
NUMPY_RANGES = {"3.11": ">=1.24,<2", "3.12": ">=1.26,<2", "3.13": ">=2.1,<3"}
LOCK_DIR = Path(__file__).resolve().parent / "locks"
SITE_DIR_NAME = "site-packages"
CONSTRAINTS_NAME = "blender-numpy-constraint.txt"


def torch_version(variant: str) -> str:
    """The exact torch build of a variant, as the PyTorch index names it (``2.13.0+cpu``)."""
    return f"{TORCH_VERSION}+cpu" if variant == "CPU" else TORCH_VERSION


def lock_path(variant: str | None) -> Path:
    """locks/torch-cpu.txt, locks/torch-cuda.txt, or locks/engine.txt for ``variant=None``."""
    return LOCK_DIR / (f"torch-{variant.lower()}.txt" if variant else "engine.txt")


def lock_header(path: Path, key: str) -> str:
    """A ``# key: value`` header line of a lock file (``python``, ``platform``), or ''."""
    for line in path.read_text().splitlines():
        if line.startswith(f"# {key}:"):
            return line.split(":", 1)[1].strip()
    return ""


def lock_pythons(path: Path) -> list[str]:
    """The Python versions a lock file was resolved for."""
    return lock_header(path, "python").split()


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
    """The pip invocations, in order: torch from PyTorch's index, then the engine's dependencies.

    Both install exactly what the lock files list, checked against their hashes; the constraint file
    (written by :func:`write_constraints`) holds Blender's numpy.
    """
    if variant not in TORCH_INDEX:
        raise ValueError(f"torch variant must be one of {', '.join(TORCH_INDEX)}, got {variant!r}")
    python = python or sys.executable
    target = str(site_dir(user_folder))
    locked = [
        "--no-deps",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "-c",
        str(Path(user_folder) / CONSTRAINTS_NAME),
    ]
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
    torch_sources = ["--index-url", TORCH_INDEX[variant]]
    if TORCH_INDEX[variant] != PYPI_INDEX:
        torch_sources += ["--extra-index-url", PYPI_INDEX]
    return [
        common + locked + torch_sources + ["-r", str(lock_path(variant))],
        common + locked + ["--index-url", PYPI_INDEX, "-r", str(lock_path(None))],
    ]


def write_constraints(user_folder: str | Path) -> Path:
    """Pin the numpy this Blender runs (if any) so no locked package can pull in another one."""
    try:
        import numpy

        pin = f"numpy=={numpy.__version__}\n"
    except ImportError:
        pin = ""
    path = Path(user_folder) / CONSTRAINTS_NAME
    path.write_text(pin)
    return path


def check_locks(variant: str) -> None:
    """Refuse before downloading when no lock covers this Python: pip would fail half-way otherwise."""
    import platform

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    linux_x86 = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")
    for path, option in ((lock_path(variant), f" --variant {variant}"), (lock_path(None), "")):
        if not path.is_file():
            raise RuntimeError(
                f"this build of the add-on has no lock file {path.name}: pick the other torch build, or "
                f"generate it with `python scripts/lock_engine.py{option}` and rebuild the add-on"
            )
        if running not in lock_pythons(path):
            raise RuntimeError(
                f"{path.name} has no packages for Python {running} (it covers {', '.join(lock_pythons(path))}); "
                "regenerate it with scripts/lock_engine.py or point 'External Python' at a Python with torch"
            )
        if lock_header(path, "platform") == "manylinux x86_64" and not linux_x86:
            raise RuntimeError(
                f"{path.name} lists Linux x86-64 wheels only: regenerate it for this system with "
                "scripts/lock_engine.py --platform TAG, or point 'External Python' at a Python with torch"
            )


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
    check_locks(variant)
    site_dir(user_folder).mkdir(parents=True, exist_ok=True)
    write_constraints(user_folder)
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
