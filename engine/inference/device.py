"""Where the model runs: one rule for the backend and the device, and errors that say what exists.

Backends: "torch" (CPU or CUDA) and "numpy" (engine.numpy_runtime, CPU, no torch). "auto" picks torch
only when it is installed and a CUDA GPU is present or asked for: on CPU the numpy runtime is as fast
per take and starts in a tenth of the time, since importing torch alone costs over a second. The GPU
check for "auto" looks for the NVIDIA driver instead of importing torch (which is what it avoids).
torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "numpy", "torch")


def torch_installed() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver is loaded (Linux) or its tool is on PATH (Windows): worth importing torch for."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def choose_backend(backend: str = "auto", device: str | Any = "auto", has_torch_model: bool = False) -> str:
    """ "numpy" or "torch" for an Engine; ValueError when the combination cannot run here."""
    key = str(backend).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use auto, numpy or torch")
    wants_cuda = str(device).strip().lower().startswith("cuda")
    if str(device).strip().lower() not in ("auto", "cpu") and not wants_cuda:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if key == "numpy":
        if wants_cuda or has_torch_model:
            raise ValueError(
                "the numpy backend runs on the CPU from a weights file; use backend='torch' for CUDA "
                "or an in-memory torch model"
            )
        return "numpy"
    if key == "torch" or wants_cuda or has_torch_model:
        if not torch_installed():
            raise ValueError(
                "torch is not installed in this Python: use backend='numpy' (CPU), or install torch "
                "(in Blender: Preferences > Add-ons > DualFace > Set Up Engine) for CUDA"
            )
        return "torch"
    if str(device).strip().lower() == "auto" and torch_installed() and nvidia_gpu_present():
        return "torch"
    return "numpy"


def select_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` = the first CUDA GPU when torch sees one, else CPU; also `cpu`, `cuda`, `cuda:N`."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    key = str(spec).strip().lower()
    if key == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} requested but torch sees no CUDA GPU; use --device cpu or auto"
            )
        index = 0 if key == "cuda" else key.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise ValueError(
                f"device {spec!r} does not exist; this machine has cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
        return torch.device(f"cuda:{int(index)}")
    raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def set_threads(threads: int | None) -> None:
    """Intra-op CPU threads of torch; None keeps torch's default (all cores)."""
    if threads is None:
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(int(threads))
