"""Where the model runs: one rule for "auto", and errors that say which device exists instead."""

from __future__ import annotations

import torch


def select_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` = the first CUDA GPU when torch sees one, else CPU; also `cpu`, `cuda`, `cuda:N`."""
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
    """Intra-op CPU threads; None keeps torch's default (all cores)."""
    if threads is None:
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))
