"""Batches, the training loop, resume, determinism and data-parallel runs on a tiny synthetic set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.record import Phone
from engine.phonemes import phone_id
from engine.training.batches import (
    MEL_FPS,
    FpsBucketBatchSampler,
    choose_crop,
    collate,
    phone_labels,
)
from engine.training.config import TrainConfig

torch.set_num_threads(1)


def _item(n_frames, n_mels, n_phones, fps=30.0, v=6, arkit=True):
    rng = np.random.default_rng(n_frames)
    return {
        "clip_id": f"c{n_frames}",
        "fps": fps,
        "mel": rng.normal(size=(n_mels, 80)).astype(np.float32),
        "offsets": rng.normal(size=(n_frames, v, 3)).astype(np.float32),
        "arkit": rng.uniform(size=(n_frames, 52)).astype(np.float32) if arkit else None,
        "cond": np.tile(np.eye(8, dtype=np.float32)[2] * 0.5, (n_frames, 1)),
        "style": np.arange(5, dtype=np.float32),
        "phones": list(range(1, n_phones + 1)),
        "template": np.zeros((v, 3), np.float32),
    }


def test_collate_pads_and_reports_lengths():
    items = [_item(5, 17, 3), _item(8, 27, 1)]
    batch = collate(items)
    assert batch["mel"].shape == (2, 27, 80)
    assert batch["offsets"].shape == (2, 8, 6, 3)
    assert batch["arkit"].shape == (2, 8, 52)
    assert batch["cond"].shape == (2, 8, 8)
    assert batch["style"].shape == (2, 5)
    assert batch["phones"].shape == (2, 3)
    assert batch["template"].shape == (2, 6, 3)
    assert batch["mel_len"].tolist() == [17, 27]
    assert batch["frame_len"].tolist() == [5, 8]
    assert batch["phone_len"].tolist() == [3, 1]
    assert batch["clip_ids"] == ["c5", "c8"]
    assert batch["fps"] == 30.0
    # padding is zero (blank for phones), the valid part is the item itself
    assert torch.equal(batch["offsets"][0, :5], torch.from_numpy(items[0]["offsets"]))
    assert batch["offsets"][0, 5:].abs().sum() == 0
    assert batch["mel"][0, 17:].abs().sum() == 0
    assert batch["phones"][1].tolist() == [1, 0, 0]
    assert batch["arkit"][0, 5:].abs().sum() == 0


def test_collate_refuses_mixed_frame_rates_meshes_and_labels():
    with pytest.raises(ValueError, match="frame rate"):
        collate([_item(5, 17, 1, fps=30.0), _item(5, 17, 1, fps=25.0)])
    with pytest.raises(ValueError, match="topology"):
        collate([_item(5, 17, 1, v=6), _item(5, 17, 1, v=7)])
    with pytest.raises(ValueError, match="arkit"):
        collate([_item(5, 17, 1), _item(5, 17, 1, arkit=False)])


def test_phone_labels_drop_silence_merge_direct_repeats_and_crop():
    phones = [
        Phone("sil", 0.0, 0.1),
        Phone("AE", 0.1, 0.2),
        Phone("T", 0.2, 0.25),
        Phone("T", 0.25, 0.3),  # "at ten": one closure on the lips
        Phone("sil", 0.3, 0.5),
        Phone("T", 0.5, 0.6),  # after a pause it is a new gesture
        Phone("EH", 0.6, 0.7),
    ]
    ids = [phone_id(p) for p in ("AE", "T", "T", "EH")]
    assert phone_labels(phones) == ids
    assert phone_labels(phones, 0.22, 0.62) == [phone_id("T"), phone_id("T")]  # centres 0.225 .. 0.55
    assert phone_labels(None) == []


def test_crop_is_aligned_between_audio_and_motion():
    rng = np.random.default_rng(0)
    fps, n_frames = 30.0, 300  # 10 s
    n_mels = int(n_frames / fps * MEL_FPS) + 1
    for _ in range(20):
        f0, nf, m0, nm = choose_crop(n_frames, n_mels, fps, 2.0, rng)
        assert nf == 60 and nm == 200
        assert 0 <= f0 <= n_frames - nf and m0 + nm <= n_mels
        assert abs(m0 / MEL_FPS - f0 / fps) < 0.5 / MEL_FPS + 1e-9
    assert choose_crop(30, 101, fps, 4.0, rng) == (0, 30, 0, 101)  # shorter than the crop: whole clip
    assert choose_crop(300, 1001, fps, None, None) == (0, 300, 0, 1001)


def test_bucket_sampler_never_mixes_keys_and_shards_evenly():
    keys = [30.0] * 7 + [25.0] * 4
    single = FpsBucketBatchSampler(keys, batch_size=3, seed=1)
    batches = list(single)
    assert sorted(i for b in batches for i in b) == list(range(11))
    assert all(len({keys[i] for i in b}) == 1 for b in batches)
    shards = [list(FpsBucketBatchSampler(keys, 3, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1])  # equal step counts, or DDP would hang
    assert {i for s in shards for b in s for i in b} == set(range(11))
    again = FpsBucketBatchSampler(keys, 3, seed=1)
    again.set_epoch(0)
    assert list(again) == batches  # same seed and epoch, same order
    again.set_epoch(1)
    assert list(again) != batches


# ---------------------------------------------------------------------------------------------
# The loop on a tiny synthetic corpus

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.json"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from engine.training.tiny_corpus import write_tiny_corpus

    return write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny", n_clips=6, seed=0)


def _run(data, out, seed=0, **kwargs):
    from engine.training.loop import train

    return train(data, TrainConfig.load(TINY_CONFIG), out, seed=seed, device="cpu", progress=False, **kwargs)


def _train_losses(result):
    return [e["train"]["total"] for e in result["epochs"]]


@pytest.fixture(scope="module")
def straight_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "straight"
    return out, _run(tiny_data, out)


def test_tiny_training_writes_checkpoints_and_log(straight_run):
    from engine.weights import load_checkpoint

    out, result = straight_run
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    for name in ("checkpoint.safetensors", "best.safetensors", "state.pt", "config.json", "train_log.jsonl"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and "step" in kinds
    epoch_records = [r for r in records if r["kind"] == "epoch"]
    for record in epoch_records:
        for key in ("total", "vertex", "lip_ctc", "consistency"):
            assert np.isfinite(record["train"][key]) and np.isfinite(record["val"][key])
    # the schedule ran: teacher forcing in epoch 1 (theta = 1 of 2 epochs), free-running at the end
    steps = [r for r in records if r["kind"] == "step"]
    assert steps[0]["tf_prob"] == 1.0 and steps[-1]["tf_prob"] == 0.0
    model = load_checkpoint(out / "checkpoint.safetensors")
    state = torch.load(out / "state.pt", weights_only=False)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name


def test_resume_continues_exactly_and_seed_is_deterministic(tiny_data, straight_run, tmp_path):
    _, straight = straight_run
    first = _run(tiny_data, tmp_path / "split", stop_after=1)
    assert len(first["epochs"]) == 1
    assert _train_losses(first) == _train_losses(straight)[:1]  # same seed, same first epoch
    second = _run(tiny_data, tmp_path / "split", resume=True)
    assert [e["epoch"] for e in second["epochs"]] == [2]
    assert _train_losses(second) == _train_losses(straight)[1:]
    assert second["epochs"][0]["val"] == straight["epochs"][1]["val"]
    log = [json.loads(line) for line in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in log if r["kind"] != "step"] == ["start", "epoch", "resume", "epoch"]
    # a finished run resumes to nothing
    assert _run(tiny_data, tmp_path / "split", resume=True)["epochs"] == []
    other_seed = _run(tiny_data, tmp_path / "seed1", seed=1, stop_after=1)
    assert _train_losses(other_seed) != _train_losses(first)


def test_bad_invocations_write_nothing(tiny_data, straight_run, tmp_path):
    out, _ = straight_run
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(FileExistsError, match="--resume"):
        _run(tiny_data, out)
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(FileNotFoundError, match="without --resume"):
        _run(tiny_data, tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()
    with pytest.raises(FileNotFoundError, match="synth"):
        _run(tmp_path / "missing", tmp_path / "x")
    with pytest.raises(ValueError, match="max-minutes"):
        _run(tiny_data, tmp_path / "y", max_minutes=0)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="tf_theta_fraction"):
        TrainConfig(tf_theta_fraction=1.5)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.load(bad)
    configs = sorted((TINY_CONFIG.parent).glob("*.json"))
    assert len(configs) >= 6
    for path in configs:  # every shipped config loads and maps onto ModelConfig
        from engine.model import ModelConfig
        from engine.training.loop import model_settings

        config = TrainConfig.load(path)
        ModelConfig.from_dict(model_settings(config, 468))
    baseline = TrainConfig.load(TINY_CONFIG.parent / "baseline.json")
    assert baseline.teacher_forcing_only and not (
        baseline.dual_task or baseline.consistency or baseline.emotion or baseline.mesh_attention
    )


def test_budget_mode_stops_on_time(tiny_data, tmp_path):
    result = _run(tiny_data, tmp_path / "budget", max_minutes=0.002)  # 0.12 s
    records = [
        json.loads(line) for line in (tmp_path / "budget" / "train_log.jsonl").read_text().splitlines()
    ]
    assert result["epochs"] and result["epochs"][-1]["elapsed_s"] < 30
    assert records[0]["max_minutes"] == 0.002


def test_step_budget_repeats_the_curves_step_for_step(tiny_data, tmp_path):
    """--max-steps: the run stops at exactly that step, its schedules span those steps (the decoder
    ends free-running), a resumed run with nothing left does nothing, and two budgets are refused."""
    out = tmp_path / "steps"
    result = _run(tiny_data, out, max_steps=5)
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records[0]["max_steps"] == 5
    assert result["epochs"][-1]["step"] == 5 and result["epochs"][-1]["budget_used"] == 1.0
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]
    assert steps[0]["tf_prob"] == 1.0 and steps[-1]["tf_prob"] < 0.5  # the curve spans 5 steps
    assert _run(tiny_data, out, resume=True, max_steps=5)["epochs"] == []
    with pytest.raises(ValueError, match="max-steps"):
        _run(tiny_data, tmp_path / "zero", max_steps=0)
    with pytest.raises(ValueError, match="two budgets"):
        _run(tiny_data, tmp_path / "both", max_steps=5, max_minutes=1.0)
    assert not (tmp_path / "zero").exists() and not (tmp_path / "both").exists()


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "engine.train", "--data", str(tiny_data), "--config", str(TINY_CONFIG), "--out", str(out),
        "--device", "cpu", "--threads", "1", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records[0]["world_size"] == 2
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]  # rank 0 alone writes
    # 3 training clips in batches of 2 make 2 batches an epoch: one per rank, so one step each
    assert [r["step"] for r in epochs] == [1, 2]
    assert (out / "checkpoint.safetensors").is_file()


def test_clip_dataset_crops_and_caches_features(tiny_data, monkeypatch):
    from engine.data.readers import open_dataset
    from engine.data.style import SpeakerStyle
    from engine.training import batches
    from engine.training.batches import ClipDataset, MelCache, style_vector

    clips = open_dataset(tiny_data).clips("train")
    cache_dir = tiny_data / "cache" / "log_mel"
    dataset = ClipDataset(clips, MelCache(cache_dir), crop_seconds=1.0, seed=4)
    item = dataset[0]
    assert item["offsets"].shape == (30, 468, 3) and item["mel"].shape == (100, 80)
    assert item["cond"].shape == (30, 8) and item["arkit"].shape == (30, 52)
    full_labels = phone_labels(clips[0].phones)
    assert 0 < len(item["phones"]) < len(full_labels)
    assert np.allclose(item["style"], SpeakerStyle(**clips[0].meta["style"]).as_vector())
    dataset.set_epoch(1)
    assert not np.array_equal(dataset[0]["offsets"], item["offsets"])  # a new crop each epoch
    dataset.set_epoch(0)
    assert np.array_equal(dataset[0]["offsets"], item["offsets"])  # reproducible from the seed
    whole = ClipDataset(clips, MelCache(cache_dir), crop_seconds=None)[0]
    assert len(whole["offsets"]) == len(clips[0].vertices) and whole["phones"] == full_labels

    # a fresh cache reads the stored features instead of recomputing them ...
    assert len(list(cache_dir.glob(f"{clips[0].clip_id}-*.npy"))) == 1

    def no_compute(path):
        raise AssertionError("recomputed a cached mel")

    monkeypatch.setattr(batches, "compute_mel", no_compute)
    assert np.array_equal(MelCache(cache_dir).mel(clips[0]), dataset.mel_cache.mel(clips[0]))
    # ... until the audio file changes
    os.utime(clips[0].audio_path, ns=(1, 1))
    with pytest.raises(AssertionError, match="recomputed"):
        MelCache(cache_dir).mel(clips[0])
    # real captures have no style: the neutral speaker
    clips[0].meta = {}
    assert np.array_equal(style_vector(clips[0]), SpeakerStyle().as_vector())


# ---------------------------------------------------------------------------------------------
# Fine-tuning from a checkpoint (--init) and the decoder input schedule


def _tiny_config(**changes) -> TrainConfig:
    data = json.loads(TINY_CONFIG.read_text())
    model = {**data.pop("model"), **changes.pop("model", {})}
    return TrainConfig.from_dict({**data, "name": "tiny_finetune", "model": model, **changes})


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_starts_from_the_checkpoint_and_records_provenance(tiny_data, straight_run, tmp_path):
    from engine.training.loop import build_model, train
    from engine.weights import load_checkpoint, read_checkpoint_meta

    source_path = straight_run[0] / "checkpoint.safetensors"
    source = load_checkpoint(source_path).state_dict()
    # an lr far below float32 resolution: whatever the run ends with is what it started from
    config = _tiny_config(lr=1e-30, model={"w_audio_ctc": 1.0, "dropout": 0.2}, tf_schedule="autoregressive")
    out = tmp_path / "finetune"
    kwargs = dict(seed=3, device="cpu", progress=False)
    train(tiny_data, config, out, init=source_path, stop_after=1, **kwargs)
    train(tiny_data, config, out, resume=True, **kwargs)  # a resumed fine-tune needs no --init

    tuned = load_checkpoint(out / "checkpoint.safetensors")
    for name, tensor in tuned.state_dict().items():
        assert torch.allclose(tensor, source[name], rtol=0, atol=1e-20), name
    scratch = build_model(config, np.zeros((468, 3), np.float32)).state_dict()
    assert any(not torch.allclose(scratch[k], source[k]) for k in source if source[k].is_floating_point())
    assert tuned.cfg.w_audio_ctc == 1.0 and tuned.cfg.dropout == 0.2  # loss settings from the config
    assert tuned.cfg.d_model == 32  # architecture from the checkpoint

    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert steps[0]["step"] == 1  # a fresh schedule, not the source run's step count
    assert steps[0]["lr"] == pytest.approx(1e-30 / config.warmup_steps)  # warmup starts again
    assert {r["tf_prob"] for r in steps} == {0.0}  # autoregressive from the first step

    expected = {"path": str(source_path), "sha256": _sha256(source_path), "run": "tiny", "epoch": 2}
    saved_config = json.loads((out / "config.json").read_text())
    for where in (
        saved_config["init"],
        records[0]["init"],
        read_checkpoint_meta(out / "checkpoint.safetensors")["extra"]["init"],  # written after --resume
        read_checkpoint_meta(out / "best.safetensors")["extra"]["init"],
    ):
        assert {k: where[k] for k in expected} == expected


def test_init_refuses_architecture_changes_and_resume(tiny_data, straight_run, tmp_path):
    from engine.train import main
    from engine.training.loop import train

    source_path = straight_run[0] / "checkpoint.safetensors"
    kwargs = dict(device="cpu", progress=False, init=source_path)
    with pytest.raises(
        ValueError, match=r"d_model=64 .* d_model=32; fine-tuning cannot change the architecture"
    ):
        train(tiny_data, _tiny_config(model={"d_model": 64}), tmp_path / "a", **kwargs)
    with pytest.raises(ValueError, match="set mesh_attention to true at the top level"):
        train(tiny_data, _tiny_config(mesh_attention=False), tmp_path / "b", **kwargs)
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_data, _tiny_config(), straight_run[0], resume=True, **kwargs)
    with pytest.raises(FileNotFoundError, match="--init"):
        train(tiny_data, _tiny_config(), tmp_path / "c", device="cpu", init=tmp_path / "none.safetensors")
    with pytest.raises(SystemExit):
        main(["--data", str(tiny_data), "--config", str(TINY_CONFIG), "--out", str(straight_run[0])]
             + ["--init", str(source_path), "--resume"])  # fmt: skip
    assert not any((tmp_path / name).exists() for name in "abc")


def test_decoder_input_schedules():
    from engine.training.schedule import SelfGrowingSchedule, decoder_input_schedule

    autoregressive = decoder_input_schedule("autoregressive", 0.25, 1.0)
    assert [autoregressive.tf_prob(n) for n in (0.0, 0.5, 1.0)] == [0.0, 0.0, 0.0]
    forced = decoder_input_schedule("teacher_forcing", 0.25, 1.0)
    assert [forced.tf_prob(n) for n in (0.0, 0.5, 1.0)] == [1.0, 1.0, 1.0]
    growing = decoder_input_schedule("self_growing", 0.25, 4.0)
    assert growing == SelfGrowingSchedule.from_fraction(0.25, 4.0)
    # the older switch keeps its meaning; the new key defaults to today's behaviour
    assert TrainConfig().decoder_schedule == "self_growing"
    assert TrainConfig(teacher_forcing_only=True).decoder_schedule == "teacher_forcing"
    assert TrainConfig(tf_schedule="autoregressive").decoder_schedule == "autoregressive"
    with pytest.raises(ValueError, match="contradicts tf_schedule 'autoregressive'"):
        TrainConfig(teacher_forcing_only=True, tf_schedule="autoregressive")
    with pytest.raises(ValueError, match="tf_schedule must be one of"):
        TrainConfig(tf_schedule="scheduled")
    for name, schedule in (("finetune_captions", "autoregressive"), ("finetune_baseline", "teacher_forcing")):
        config = TrainConfig.load(TINY_CONFIG.parent / f"{name}.json")
        assert config.decoder_schedule == schedule and config.lr == 3e-4 and config.warmup_steps == 50


def test_resume_accepts_a_run_saved_before_a_config_key_existed(tmp_path):
    from engine.training.loop import _check_out_dir

    saved = TrainConfig().to_dict()
    del saved["tf_schedule"]
    (tmp_path / "config.json").write_text(json.dumps({**saved, "init": {"path": "x", "sha256": "y"}}))
    (tmp_path / "state.pt").write_bytes(b"")
    _check_out_dir(tmp_path, TrainConfig(), resume=True)
    with pytest.raises(ValueError, match="tf_schedule"):
        _check_out_dir(tmp_path, TrainConfig(tf_schedule="autoregressive"), resume=True)
