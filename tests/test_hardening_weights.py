"""A weights file whose config asks for huge layers is refused from its header, before any allocation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)

_TINY = dict(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
             d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip


@pytest.fixture(scope="module")
def inflated(tmp_path_factory) -> Path:
    """The tiny model's tensors under a config whose decoder alone would need about 4 GB."""
    from safetensors.torch import load_file, save_file

    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint, sidecar_path

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("w")
    path = save_checkpoint(DualFace(ModelConfig(**_TINY)), folder / "tiny.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    config.update(d_model=16384, ff_mult=4, consistency_dim=16384, vertex_layer_rank=64)
    ModelConfig.from_dict(config)  # a valid config, just enormous
    metadata["config"] = json.dumps(config)
    inflated = folder / "inflated.safetensors"
    save_file(load_file(str(path)), str(inflated), metadata=metadata)
    sidecar_path(inflated).unlink(missing_ok=True)
    return inflated


_LOAD = """
import resource, sys, torch
torch.set_num_threads(1)
from engine.weights import CheckpointError, load_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_checkpoint(sys.argv[1])
except CheckpointError as error:
    print("refused:", error)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print("grown_mb", grown // 1024)
"""


def test_huge_config_is_refused_without_allocating(inflated):
    result = subprocess.run(
        [sys.executable, "-c", _LOAD, str(inflated)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and "shape mismatch" in result.stdout and "re-export" in result.stdout
    grown_mb = int(result.stdout.split("grown_mb")[1])
    assert grown_mb < 400, f"peak memory grew by {grown_mb} MB while refusing the file"
