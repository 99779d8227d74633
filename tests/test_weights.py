"""Checkpoints: exact round trip, and a clear refusal for every kind of broken file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.model import DualFace, ModelConfig
from engine.weights import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    sidecar_path,
)

torch.set_num_threads(1)


def small_model(seed: int = 0, **overrides) -> DualFace:
    values = dict(
        n_vertices=40,
        audio_dim=32,
        audio_layers=1,
        audio_heads=2,
        mesh_patches=5,
        patch_dim=16,
        vertex_embed_dim=4,
        mesh_heads=2,
        d_model=32,
        decoder_layers=1,
        decoder_heads=2,
        ff_mult=2,
        dropout=0.0,
        consistency_dim=8,
    )
    values.update(overrides)
    torch.manual_seed(seed)
    template = np.random.default_rng(seed).normal(size=(values["n_vertices"], 3))
    model = DualFace(ModelConfig(**values), template=template)
    with torch.no_grad():  # non-trivial outputs, so the round trip is tested on real numbers
        model.decoder.offset_head.weight.normal_(0.0, 0.1)
    return model.eval()


def decode(model: DualFace) -> torch.Tensor:
    torch.manual_seed(1)
    mel = torch.rand(1, 41, 80)
    return model.generate(mel, 30.0, torch.rand(1, 12, 8), torch.rand(1, 5))[0]


@pytest.fixture
def saved(tmp_path):
    model = small_model()
    path = save_checkpoint(model, tmp_path / "dualface.safetensors", extra_meta={"steps": 12})
    return model, path


def test_round_trip_restores_the_exact_model(saved):
    model, path = saved
    loaded = load_checkpoint(path)
    assert loaded.cfg == model.cfg and not loaded.training
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(decode(model), decode(loaded))
    side = json.loads(sidecar_path(path).read_text())
    assert side["bytes"] == path.stat().st_size and len(side["sha256"]) == 64
    assert side["extra"] == {"steps": 12} and read_checkpoint_meta(path)["extra"] == {"steps": 12}


def test_patch_grouping_travels_with_the_checkpoint(saved):
    model, path = saved
    loaded = load_checkpoint(path)
    assert torch.equal(loaded.motion_encoder.patch_labels, model.motion_encoder.patch_labels)
    # the grouping came from a template the loader never saw; index order would differ
    assert not torch.equal(loaded.motion_encoder.patch_labels, torch.arange(40) * 5 // 40)


@pytest.mark.parametrize("switch", ["mesh_attention", "emotion", "dual_task"])
def test_ablated_models_round_trip(tmp_path, switch):
    model = small_model(**{switch: False})
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "a.safetensors"))
    assert getattr(loaded.cfg, switch) is False
    assert torch.equal(decode(model), decode(loaded))


def test_factorised_vertex_layers_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**small_model().cfg.to_dict(), "vertex_layer_budget": 1000, "mesh_attention": False})
    model = DualFace(cfg).eval()
    with torch.no_grad():
        model.decoder.offset_head.up.weight.normal_(0.0, 0.1)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "low_rank.safetensors"))
    assert "decoder.offset_head.up.weight" in loaded.state_dict()
    assert torch.equal(decode(model), decode(loaded))


def test_checkpoint_from_before_factorised_layers_loads_dense(tmp_path):
    """A config written without `vertex_layer_budget` came from code whose vertex layers were all
    dense; loading it must rebuild dense layers even where today's default budget would factorise."""
    model = small_model()
    path = tmp_path / "old.safetensors"
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = model.cfg.to_dict()
    del config["vertex_layer_budget"], config["vertex_layer_rank"]
    save_checkpoint(model, path)
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    metadata["config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)
    sidecar_path(path).unlink()
    loaded = load_checkpoint(path)
    assert isinstance(loaded.decoder.offset_head, torch.nn.Linear)
    assert loaded.cfg.vertex_layer_budget > 10**12
    assert torch.equal(decode(model), decode(loaded))


def test_saving_something_else_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="needs a DualFace"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "a.safetensors")
    assert not list(tmp_path.iterdir())


def test_missing_file_says_how_to_get_weights(tmp_path):
    with pytest.raises(CheckpointError, match="engine.train"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)
    sidecar_path(path).unlink()  # without the side-car the safetensors header still catches it
    with pytest.raises(CheckpointError, match="truncated|cannot read"):
        load_checkpoint(path)


def test_changed_bytes_fail_the_hash_check(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's data; the size is unchanged
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    sidecar_path(path).unlink()  # the payload hash stored inside the file catches it too
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def _rewrite_config(path, change: dict) -> None:
    """Write the same tensors with an edited config (and no side-car), as a hand-edited file would be."""
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    metadata["config"] = json.dumps({**json.loads(metadata["config"]), **change})
    save_file(tensors, str(path), metadata=metadata)
    sidecar_path(path).unlink()


def test_config_that_does_not_match_the_tensors_is_refused(saved):
    _, path = saved
    _rewrite_config(path, {"d_model": 64})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(path)


def test_unknown_config_key_is_refused(saved):
    _, path = saved
    _rewrite_config(path, {"not_a_field": 1})
    with pytest.raises(CheckpointError, match="unknown model config key"):
        load_checkpoint(path)


def test_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"this is not a tensor file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(path)


def test_default_model_weights_fit_the_size_limit(tmp_path):
    path = save_checkpoint(DualFace(ModelConfig()), tmp_path / "dualface.safetensors")
    assert path.stat().st_size <= 25 * 1024 * 1024
