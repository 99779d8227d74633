"""Saving and loading DualFace checkpoints: one safetensors file plus a small JSON side-car.

The safetensors metadata carries the model config (so the file rebuilds its own network) and a
sha256 of the tensor payload; the side-car `<name>.json` next to it records the sha256 and size of
the whole file. Loading checks, in order: the file exists, it is not truncated, the hashes match,
the config parses, and every tensor has the shape that config implies -- each failure is a
`CheckpointError` that says what to do, and nothing is half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import __version__
from engine.request import CHECKPOINT_FORMAT, default_weights_path

PATCH_LABELS_KEY = "motion_encoder.patch_labels"
LOW_RANK_KEY = "vertex_layer_budget"  # configs older than this key had only dense vertex layers
DENSE_ONLY_BUDGET = 2**62

_HOW_TO_GET = (
    "train one with `python -m engine.train --data DIR --config FILE` (see README, Training), or copy a "
    "released dualface.safetensors together with its .json side-car to {path}"
)


class CheckpointError(RuntimeError):
    """A weights file that cannot be used; the message names the fix."""


def sidecar_path(path: str | Path) -> Path:
    """`weights/dualface.safetensors` -> `weights/dualface.json`."""
    return Path(path).with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces (checkpoints, provenance records)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _payload_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Hash of names, dtypes, shapes and bytes of all tensors, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(
    model: torch.nn.Module, path: str | Path, extra_meta: dict[str, Any] | None = None
) -> Path:
    """Write `model` (a DualFace) to `path` atomically and its side-car `<stem>.json`; returns path."""
    from safetensors.torch import save_file

    path = Path(path)
    if not hasattr(model, "cfg") or not hasattr(model.cfg, "to_dict"):
        raise CheckpointError(
            f"save_checkpoint needs a DualFace, got {type(model).__name__}; unwrap DDP/compiled models first "
            "(model.module)"
        )
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint path must end in .safetensors, got {path}")
    extra = dict(extra_meta or {})
    try:
        extra_json = json.dumps(extra)
    except TypeError as err:
        raise CheckpointError(f"extra_meta must be JSON-serialisable: {err}") from None
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = _payload_sha256(tensors)
    config = model.cfg.to_dict()  # type: ignore[operator]  # checked above: a DualFace
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "dualface_version": __version__,
        "config": json.dumps(config),
        "payload_sha256": payload,
        "extra": extra_json,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=metadata)
    sidecar = {
        "file": path.name,
        "sha256": file_sha256(tmp),
        "bytes": tmp.stat().st_size,
        "payload_sha256": payload,
        "format": CHECKPOINT_FORMAT,
        "dualface_version": __version__,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "config": config,
        "extra": extra,
    }
    side_tmp = sidecar_path(path).with_name(sidecar_path(path).name + ".partial")
    side_tmp.write_text(json.dumps(sidecar, indent=2) + "\n")
    tmp.replace(path)
    side_tmp.replace(sidecar_path(path))
    return path


def read_checkpoint_meta(path: str | Path | None = None) -> dict[str, Any]:
    """The config and extra metadata of a checkpoint (no hashing, no model built)."""
    path = _existing(path)
    metadata = _read_metadata(path)
    return {
        "config": _parse_json(metadata, "config", path),
        "extra": _parse_json(metadata, "extra", path) if "extra" in metadata else {},
        "dualface_version": metadata.get("dualface_version"),
    }


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu"):
    """Verify and load a checkpoint into a DualFace in eval mode (default: weights/dualface.safetensors,
    or $DUALFACE_WEIGHTS)."""
    from safetensors import safe_open

    path = _existing(path)
    sidecar = _read_sidecar(path)
    size = path.stat().st_size
    if sidecar is not None and size != sidecar.get("bytes"):
        raise CheckpointError(
            f"{path} is {size} bytes but {sidecar_path(path).name} records {sidecar.get('bytes')}: the file is "
            f"truncated or was replaced; download or copy it again"
        )
    if sidecar is not None and file_sha256(path) != sidecar.get("sha256"):
        raise CheckpointError(
            f"sha256 of {path} does not match {sidecar_path(path).name}: the file is corrupt or was changed; "
            "download or copy it again (or re-save it with engine.weights.save_checkpoint)"
        )
    metadata = _read_metadata(path)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a DualFace checkpoint (format {metadata.get('format')!r})")
    cfg = stored_model_config(_parse_json(metadata, "config", path), path)
    stored_shapes = _header_shapes(path)
    _check_shapes(path, _expected_shapes(path, cfg), stored_shapes)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(
            f"cannot read the tensors of {path} ({err}); download or copy it again"
        ) from None
    if _payload_sha256(tensors) != metadata.get("payload_sha256"):
        raise CheckpointError(
            f"tensor data of {path} does not match its recorded sha256: the file is corrupt; download or "
            "copy it again"
        )
    return model_from_tensors(cfg, tensors, path).to(device).eval()


def stored_model_config(config: Any, path: str | Path):
    """The ModelConfig a checkpoint's stored config describes (older files: dense vertex layers)."""
    from engine.model.config import ModelConfig

    if isinstance(config, dict) and LOW_RANK_KEY not in config:
        config[LOW_RANK_KEY] = DENSE_ONLY_BUDGET  # written before factorised layers: all dense
    try:
        return ModelConfig.from_dict(config)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path} holds a config this version cannot build: {err}") from None


def model_from_tensors(cfg, tensors: dict[str, torch.Tensor], path: str | Path):
    """A DualFace of `cfg` holding `tensors` (its Mesh Attention patches come from the tensors too)."""
    from engine.model.dualface import DualFace

    labels = tensors.get(PATCH_LABELS_KEY)
    try:
        model = DualFace(cfg, patch_labels=labels.numpy().astype(np.int64) if labels is not None else None)
    except ValueError as err:
        raise CheckpointError(f"{path}: the stored config and tensors disagree: {err}") from None
    model.load_state_dict(tensors)
    return model


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor, from the safetensors header alone (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged headers
        raise CheckpointError(
            f"cannot read the tensor list of {path} ({err}); download or copy it again"
        ) from None


def _expected_shapes(path: Path, cfg) -> dict[str, tuple[int, ...]]:
    """The shapes the stored config implies, from a model built on the meta device: a config that asks
    for gigabytes costs nothing here, and is refused by :func:`_check_shapes` before any allocation."""
    from safetensors import safe_open

    from engine.model.dualface import DualFace

    labels = None
    try:
        with safe_open(str(path), framework="pt") as f:
            if PATCH_LABELS_KEY in f.keys():
                labels = f.get_tensor(PATCH_LABELS_KEY).numpy().astype(np.int64)
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(
            f"cannot read the tensors of {path} ({err}); download or copy it again"
        ) from None
    try:
        with torch.device("meta"):
            skeleton = DualFace(cfg, patch_labels=labels)
    except ValueError as err:
        raise CheckpointError(f"{path}: the stored config and tensors disagree: {err}") from None
    return {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}


def _check_shapes(
    path: Path, expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]
) -> None:
    """Refuse a file whose tensors differ from its config (missing, extra or differently shaped)."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = [
        f"{k}: file {stored[k]} vs config {expected[k]}"
        for k in sorted(set(expected) & set(stored))
        if stored[k] != expected[k]
    ]
    if not (missing or unexpected or wrong):
        return
    details = []
    if missing:
        details.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        details.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        details.append("shape mismatch " + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""))
    raise CheckpointError(
        f"{path} does not match the config stored in it ({', '.join(details)}); the file was written by "
        "different code or edited -- re-export it with engine.weights.save_checkpoint"
    )


def _existing(path: str | Path | None) -> Path:
    path = Path(path).expanduser() if path is not None else default_weights_path()
    if not path.is_file():
        raise CheckpointError(f"no DualFace weights at {path}: " + _HOW_TO_GET.format(path=path))
    return path


def _read_sidecar(path: Path) -> dict | None:
    side = sidecar_path(path)
    if not side.is_file():
        return None  # the payload hash inside the file still guards the tensors
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"cannot read {side} ({err}); delete it or copy it again with the weights"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{side} is not a JSON object; delete it or copy it again with the weights")
    return data


def _read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # truncated header, not a safetensors file, ...
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); it may be truncated -- download or copy it again"
        ) from None
    return metadata


def _parse_json(metadata: dict[str, str], key: str, path: Path) -> Any:
    if key not in metadata:
        raise CheckpointError(
            f"{path} has no '{key}' metadata; it was not written by engine.weights.save_checkpoint"
        )
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path} has unreadable '{key}' metadata ({err}); re-export the checkpoint"
        ) from None
