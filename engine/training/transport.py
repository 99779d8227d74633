"""Checkpoints in half precision for the trip back from a borrowed GPU machine.

Such a machine returns at most 64 MB of files, and eight fp32 checkpoints of 12.9 MB do not fit.
`shrink` writes the weights as float16 (relative error below 5e-4, far inside the run-to-run spread
of training) with the checkpoint's own metadata; `restore` casts them back to float32 and saves an
ordinary verified checkpoint whose extra metadata says it travelled in half precision.

    python -m engine.training.transport shrink runs/x/best.safetensors x.half.safetensors
    python -m engine.training.transport restore x.half.safetensors runs/x/best.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from engine.weights import (
    CheckpointError,
    load_checkpoint,
    model_from_tensors,
    save_checkpoint,
    stored_model_config,
)

HALF_FORMAT = "dualface-half-copy-1"


def shrink(checkpoint: str | Path, out: str | Path) -> Path:
    """Half-precision copy of a verified checkpoint (its config and extra metadata kept)."""
    from safetensors.torch import save_file

    from engine.weights import read_checkpoint_meta

    model = load_checkpoint(checkpoint)  # verifies the file before it travels
    meta = read_checkpoint_meta(checkpoint)
    tensors = {
        name: (t.detach().to(torch.float16) if t.is_floating_point() else t.detach()).contiguous()
        for name, t in model.state_dict().items()
    }
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    metadata = {
        "format": HALF_FORMAT,
        "config": json.dumps(meta["config"]),
        "extra": json.dumps(meta["extra"]),
    }
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(out)
    return out


def restore(half: str | Path, out: str | Path) -> Path:
    """An ordinary float32 checkpoint (with its side-car) from a half-precision copy."""
    from safetensors import safe_open

    half = Path(half)
    try:
        with safe_open(str(half), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(f"cannot read {half}: {err}") from None
    if metadata.get("format") != HALF_FORMAT:
        raise CheckpointError(f"{half} is not a half-precision copy (format {metadata.get('format')!r})")
    cfg = stored_model_config(json.loads(metadata["config"]), half)
    model = model_from_tensors(
        cfg, {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, half
    )
    extra = json.loads(metadata.get("extra", "{}"))
    extra["transport"] = "float16 copy restored to float32 (engine.training.transport)"
    return save_checkpoint(model, out, extra_meta=extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.training.transport", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("verb", choices=("shrink", "restore"))
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        path = (shrink if args.verb == "shrink" else restore)(args.source, args.out)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
