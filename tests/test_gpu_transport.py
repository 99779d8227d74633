"""Moving training to a borrowed GPU machine and back: the corpus pack, config overrides, half copies."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.pack import PackError, pack_corpus, unpack_corpus
from engine.data.readers import open_dataset
from engine.train import main as train_main
from engine.train import with_overrides
from engine.training.batches import MelCache
from engine.training.config import TrainConfig
from engine.training.transport import restore, shrink
from engine.weights import CheckpointError, load_checkpoint, read_checkpoint_meta
from tests.test_api import make_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from engine.training.tiny_corpus import write_tiny_corpus

    return write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny", n_clips=6, seed=3)


@pytest.fixture(scope="module")
def unpacked(corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pack")
    pack = folder / "tiny.tar.xz"
    info = pack_corpus(corpus, pack)
    assert info["clips"] == 6 and info["clips_with_mels"] == 4  # train (3) and val (1)
    unpack_corpus(pack, folder / "unpacked", workers=2)
    return folder / "unpacked"


def test_unpacked_corpus_has_the_same_motion_and_the_mels_within_half_a_step(corpus, unpacked):
    original, copy = open_dataset(corpus), open_dataset(unpacked)
    assert copy.splits == original.splits
    assert not (unpacked / "wav").exists()  # no audio travelled
    for clip_id in original.ids("train") + original.ids("val"):
        a, b = original.clip(clip_id), copy.clip(clip_id)
        assert np.array_equal(np.asarray(a.vertices), np.asarray(b.vertices))  # rendered again, bit for bit
        assert np.array_equal(np.asarray(a.arkit), np.asarray(b.arkit))
        mel_a, mel_b = MelCache(None).mel(a), MelCache(None).mel(b)
        assert b.mel_path is not None and mel_a.shape == mel_b.shape
        assert np.abs(mel_a - mel_b).max() <= 0.005 + 1e-6
        assert np.abs(mel_a - mel_b).max() > 0  # quantised, so the check above is not vacuous
    test_clip = copy.clip(original.ids("test_voices")[0])
    assert test_clip.mel_path is None
    with pytest.raises(FileNotFoundError, match="missing"):
        MelCache(None).mel(test_clip)


def test_training_runs_on_an_unpacked_corpus(unpacked, tmp_path):
    from engine.training.loop import train

    result = train(unpacked, TrainConfig.load(ROOT / "configs" / "tiny.json"), tmp_path / "run", device="cpu",
                   progress=False, stop_after=1)  # fmt: skip
    assert np.isfinite(result["epochs"][0]["train"]["total"])


def test_unpack_refuses_bad_inputs_and_leaves_nothing_behind(corpus, unpacked, tmp_path):
    with pytest.raises(PackError, match="already exists"):
        unpack_corpus(tmp_path / "none.tar.xz", unpacked)
    garbage = tmp_path / "garbage.tar.xz"
    garbage.write_bytes(b"not a pack")
    with pytest.raises(PackError, match="not a whole corpus pack"):
        unpack_corpus(garbage, tmp_path / "out")
    damaged = tmp_path / "damaged.tar.xz"  # a whole archive whose mels do not add up
    with tarfile.open(damaged, "w:xz") as tar:
        for name, data in {"pack.json": json.dumps({"format": "dualface-corpus-pack-1", "step": 0.01,
                                                    "mel_frames": {"x": 3}}).encode(),
                           "meta.json": b"{}", "log_mel.u16": b"\0\0"}.items():  # fmt: skip
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(PackError, match="damaged"):
        unpack_corpus(damaged, tmp_path / "out")
    assert not list(tmp_path.glob("out*"))
    with pytest.raises(PackError, match="step"):
        pack_corpus(corpus, tmp_path / "p.tar.xz", step=0.5)
    with pytest.raises(PackError, match="unknown split"):
        pack_corpus(corpus, tmp_path / "p.tar.xz", splits=["nope"])
    old_corpus = tmp_path / "old"  # a corpus written before clips recorded their motion seed
    shutil.copytree(corpus, old_corpus)
    meta_file = next((old_corpus / "meta").glob("*.json"))
    meta = json.loads(meta_file.read_text())
    del meta["motion_seed"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(PackError, match="motion_seed"):
        pack_corpus(old_corpus, tmp_path / "p.tar.xz")
    assert not list(tmp_path.glob("p.tar.xz*"))


def test_config_overrides_change_one_field_each_and_refuse_unknown_keys(tmp_path, corpus):
    base = TrainConfig.load(ROOT / "configs" / "voices_fold_flite.json")
    changed = with_overrides(base, ["dual_task=false", "train_split=train-without-espeak", "lr=0.001"])
    assert (changed.dual_task, changed.train_split, changed.lr) == (False, "train-without-espeak", 0.001)
    assert (changed.consistency, changed.val_split) == (base.consistency, base.val_split)
    with pytest.raises(ValueError, match="no such config field"):
        with_overrides(base, ["dual_tsak=false"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        with_overrides(base, ["dual_task"])
    out = tmp_path / "run"
    code = train_main(["--data", str(corpus), "--config", str(ROOT / "configs" / "tiny.json"), "--out", str(out),
                       "--set", "precision=fp64", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 2 and not out.exists()  # the config's own validation still applies


def test_half_copies_restore_to_a_verified_checkpoint_within_float16_rounding(tmp_path):
    original = make_checkpoint(tmp_path / "tiny.safetensors")
    half = shrink(original, tmp_path / "tiny.half.safetensors")
    assert half.stat().st_size < 0.6 * original.stat().st_size
    restored = restore(half, tmp_path / "back" / "best.safetensors")
    a, b = load_checkpoint(original).state_dict(), load_checkpoint(restored).state_dict()
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert b[name].dtype == tensor.dtype
        if tensor.is_floating_point():
            assert torch.allclose(b[name], tensor, rtol=1e-3, atol=1e-4), name
        else:
            assert torch.equal(b[name], tensor), name
    assert "float16" in read_checkpoint_meta(restored)["extra"]["transport"]
    with pytest.raises(CheckpointError, match="half-precision copy"):
        restore(original, tmp_path / "again.safetensors")
