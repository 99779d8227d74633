"""The training loop: AdamW with warmup + cosine LR, the self-growing schedule, checkpoints, resume,
and fine-tuning from a checkpoint (`init`).

Progress is measured either in epochs (config `epochs`) or, with a budget, in the share of the
budget spent: minutes, so two runs given the same minutes follow the same LR and teacher-forcing
curves; or optimizer steps, so a run on slower hardware repeats a run's curves step for step.
Only rank 0 writes; every rank takes rank 0's decision on when to stop.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.data.record import Clip
from engine.training.batches import (
    ClipDataset,
    FpsBucketBatchSampler,
    MelCache,
    bucket_key,
    collate,
    to_device,
)
from engine.training.config import TrainConfig
from engine.training.distributed import (
    DistContext,
    barrier,
    broadcast_floats,
    init_distributed,
    mean_over_ranks,
    shutdown,
)
from engine.training.schedule import decoder_input_schedule
from engine.weights import file_sha256

if TYPE_CHECKING:
    from engine.model.dualface import DualFace

STATE_FILE = "state.pt"
LAST_WEIGHTS = "checkpoint.safetensors"
BEST_WEIGHTS = "best.safetensors"
LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "config.json"


def lr_factor(step: int, progress: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup over `warmup_steps`, then a cosine from 1 down to `min_ratio` over training."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return min_ratio + (1.0 - min_ratio) * cosine


def model_settings(config: TrainConfig, n_vertices: int) -> dict:
    """ModelConfig fields for this experiment: the config's overrides plus the ablation switches."""
    from engine.model import ModelConfig

    settings = dict(config.model)
    known = set(ModelConfig().to_dict())
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(
            f"unknown model settings {unknown}; ModelConfig fields are: {', '.join(sorted(known))}"
        )
    settings["n_vertices"] = n_vertices
    for name in ABLATION_SWITCHES:
        if name in settings and settings[name] != getattr(config, name):
            raise ValueError(
                f"set the ablation switch {name!r} at the top level of the config, not under model"
            )
        settings[name] = getattr(config, name)
    return settings


ABLATION_SWITCHES = ("dual_task", "consistency", "mesh_attention", "emotion")
# ModelConfig fields a fine-tune may change: they weigh or regularise the losses but leave every
# parameter's shape and meaning alone (plus the w_* and infonce_* families, see `_finetunable`).
FINETUNABLE_FIELDS = frozenset({"lip_weight", "dropout", "sampling_passes", "dual_task", "consistency"})


def _finetunable(name: str) -> bool:
    return name.startswith(("w_", "infonce_")) or name in FINETUNABLE_FIELDS


def finetune_settings(config: TrainConfig, checkpoint: dict, n_vertices: int, init: str | Path) -> dict:
    """ModelConfig fields for fine-tuning: the checkpoint's architecture with the config's loss settings.

    Raises ValueError naming the first field the config would change that is not a loss setting."""
    requested = model_settings(config, n_vertices)
    settings = dict(checkpoint)
    for name, value in requested.items():
        if settings.get(name) == value:
            continue
        if _finetunable(name):
            settings[name] = value
        elif name == "n_vertices":
            raise ValueError(
                f"--init {init} was trained on a {checkpoint.get(name)}-vertex mesh but the data uses "
                f"{n_vertices} vertices; fine-tune on data with the checkpoint's mesh"
            )
        else:
            where = (
                "at the top level of the config"
                if name in ABLATION_SWITCHES
                else "in the config's model section (or remove it there)"
            )
            raise ValueError(
                f"--init {init}: the config sets {name}={json.dumps(value)} but the checkpoint was built with "
                f"{name}={json.dumps(checkpoint.get(name))}; fine-tuning cannot change the architecture -- set "
                f"{name} to {json.dumps(checkpoint.get(name))} {where}, or train from scratch without --init"
            )
    return settings


def init_provenance(init: str | Path) -> dict:
    """What a model card needs to cite the starting point: path, sha256 and the source run's position."""
    from engine.weights import CheckpointError, read_checkpoint_meta

    init = Path(init)
    try:
        extra = read_checkpoint_meta(init).get("extra") or {}
    except CheckpointError as err:
        raise ValueError(f"--init: {err}") from None
    record = {"path": str(init), "sha256": file_sha256(init)}
    record.update({k: extra[k] for k in ("run", "epoch", "step", "data") if k in extra})
    return record


def build_finetune_model(config: TrainConfig, init: str | Path, n_vertices: int):
    """A DualFace with the weights of `init`, its architecture, and the config's loss settings."""
    from engine.model import DualFace, ModelConfig
    from engine.weights import PATCH_LABELS_KEY, CheckpointError, load_checkpoint

    try:
        source = load_checkpoint(init)
    except CheckpointError as err:
        raise ValueError(f"--init: {err}") from None
    settings = finetune_settings(config, source.cfg.to_dict(), n_vertices, init)
    weights = source.state_dict()
    labels = weights.get(PATCH_LABELS_KEY)
    # rebuilt rather than edited in place: dropout and friends are fixed when the modules are made
    model = DualFace(
        ModelConfig.from_dict(settings),
        patch_labels=labels.numpy().astype(np.int64) if labels is not None else None,
    )
    model.load_state_dict(weights)
    return model.train()


def build_model(config: TrainConfig, template: np.ndarray):
    """A fresh DualFace for the data's mesh; the template groups its vertices into Mesh Attention patches."""
    from engine.model import DualFace, ModelConfig

    template = np.asarray(template, dtype=np.float32)
    return DualFace(ModelConfig.from_dict(model_settings(config, len(template))), template=template)


def _has_unused_parameters(model_cfg, clips: list[Clip]) -> bool:
    """Heads without a loss (ablated terms, labels the data lacks) get no gradient; DDP must know.

    Reads the model's own config: a fine-tune inherits loss weights its training config never names."""
    settings = model_cfg.to_dict()
    ablated = not (settings["dual_task"] and settings["consistency"] and settings["emotion"])
    ablated |= any(value == 0 for name, value in settings.items() if name.startswith("w_"))
    return ablated or any(c.phones is None or c.arkit is None for c in clips)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only: decaying biases and norm gains just fights the normalisation."""
    decay: list[torch.nn.Parameter] = []
    keep: list[torch.nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else keep).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _autocast(ctx: DistContext, precision: str):
    if ctx.device.type != "cuda" or precision == "fp32":
        return nullcontext(), None
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _losses_to_floats(losses: dict) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


class _JsonlLog:
    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def _check_out_dir(out: Path, config: TrainConfig, resume: bool) -> None:
    state = out / STATE_FILE
    if resume:
        if not state.is_file():
            raise FileNotFoundError(f"--resume: {state} does not exist; start the run without --resume")
        saved = json.loads((out / CONFIG_FILE).read_text())
        saved.pop("init", None)  # provenance of a fine-tune, not a setting
        saved = TrainConfig.from_dict(saved).to_dict()  # keys added since the run started take defaults
        if saved != config.to_dict():
            changed = sorted(
                k for k in set(saved) | set(config.to_dict()) if saved.get(k) != config.to_dict().get(k)
            )
            raise ValueError(
                f"--resume with a different config than {out / CONFIG_FILE} (changed: {changed}); "
                "resume with the same config or start a new --out"
            )
    elif state.is_file():
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )


@torch.no_grad()
def validate(model, loader, config, ctx: DistContext, autocast) -> dict[str, float]:
    """Losses on the validation crops with the decoder fed its own predictions (as at inference)."""
    from engine.model import dual_losses

    model.eval()
    rows = []
    for batch in loader:
        batch = to_device(batch, ctx.device)
        with autocast:
            out = model(batch, tf_prob=0.0)
            rows.append(_losses_to_floats(dual_losses(out, batch, model.cfg)))
    model.train()
    return _mean(rows)


def load_clips(data: Path, split: str, required: bool) -> list[Clip]:
    from engine.data.readers import open_dataset

    dataset = open_dataset(data)
    try:
        clips = dataset.clips(split)
    except (KeyError, ValueError) as exc:
        if required:
            raise ValueError(f"dataset {data} has no usable split {split!r}: {exc}") from exc
        return []
    if required and not clips:
        raise ValueError(
            f"split {split!r} of {data} is empty; regenerate the corpus or pick another train_split"
        )
    return clips


@dataclass(frozen=True)
class RunOptions:
    """How this invocation runs, apart from the experiment itself (the TrainConfig)."""

    resume: bool = False
    seed: int = 0
    max_minutes: float | None = None
    progress: bool = True
    stop_after: int | None = None
    init: Path | None = None
    max_steps: int | None = None


@dataclass
class _Session:
    """Everything the epochs of one invocation share, built once by `_setup`."""

    data: Path
    config: TrainConfig
    out: Path
    ctx: DistContext
    options: RunOptions
    model: DualFace
    net: torch.nn.Module  # the model, wrapped for DistributedDataParallel when distributed
    optimizer: torch.optim.Optimizer
    autocast: Any
    scaler: Any
    provenance: dict | None
    train_set: ClipDataset
    sampler: FpsBucketBatchSampler
    loader: Any
    val_loader: Any
    schedule: Any
    log: _JsonlLog
    budget_s: float | None
    budget_steps: int | None
    steps_per_epoch: int
    total_steps: int


@dataclass
class _Counters:
    """Where the run stands: restored on resume, saved in every checkpoint."""

    start_epoch: int = 0
    epoch: int = 0
    step: int = 0
    elapsed_before: float = 0.0
    best_val: float = math.inf
    session_start: float = 0.0

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start


@dataclass
class _Epoch:
    """What one pass over the training batches reports."""

    rows: list[dict[str, float]]
    lr: float = math.nan
    tf_prob: float = math.nan
    out_of_time: bool = False


def train(
    data: str | Path,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    seed: int = 0,
    device: str = "auto",
    max_minutes: float | None = None,
    threads: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    init: str | Path | None = None,
    max_steps: int | None = None,
) -> dict:
    """Train (or continue) one run; returns the per-epoch log records of this invocation.

    `stop_after` ends this session after that many epochs (continue later with resume=True); unlike
    a smaller `epochs` it leaves the LR and teacher-forcing curves of the full run unchanged.
    `init` fine-tunes a checkpoint: its weights and architecture, a fresh optimizer and schedules.
    `max_minutes` or `max_steps` (not both) replaces the config's epochs with a budget.
    """
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data} is not a folder; build one with python -m engine.data.synth")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1, got {stop_after}")
    if max_minutes is not None and max_minutes <= 0:
        raise ValueError(f"--max-minutes must be > 0, got {max_minutes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps}")
    if max_steps is not None and max_minutes is not None:
        raise ValueError("--max-minutes and --max-steps are two budgets; give one")
    if init is not None:
        if resume:
            raise ValueError(
                "--init starts a new run from a checkpoint and --resume continues one; use only one "
                "(a resumed fine-tune needs no --init)"
            )
        if not Path(init).is_file():
            raise FileNotFoundError(f"--init {init} is not a file; pass a .safetensors checkpoint")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    _check_out_dir(out, config, resume)
    options = RunOptions(
        resume, seed, max_minutes, progress, stop_after, None if init is None else Path(init), max_steps
    )
    ctx = init_distributed(device)
    try:
        session, counters = _setup(data, config, out, ctx, options)
        return {"epochs": _run_epochs(session, counters), "out": str(out)}
    finally:
        shutdown(ctx)


# ---- setup ----------------------------------------------------------------------------------------


def _setup(
    data: Path, config: TrainConfig, out: Path, ctx: DistContext, options: RunOptions
) -> tuple[_Session, _Counters]:
    """Data, model, optimizer and loaders of this invocation; a resumed run gets its state back.

    The order of the steps is part of the contract: it fixes what the random generators produce,
    so the same seed gives the same run, and a resumed run continues exactly."""
    seed_everything(options.seed)
    train_clips = load_clips(data, config.train_split, required=True)
    val_clips = load_clips(data, config.val_split, required=False)[: config.val_max_clips]
    n_vertices = {int(np.shape(c.template)[0]) for c in train_clips}
    if len(n_vertices) != 1:
        raise ValueError(
            f"training clips use meshes of {sorted(n_vertices)} vertices; train on one mesh at a time"
        )
    cache = MelCache(data / "cache" / "log_mel")
    if ctx.is_main:
        cache.warm(train_clips + val_clips, progress=options.progress)
    barrier(ctx)
    if not ctx.is_main:
        cache.warm(train_clips + val_clips)

    model, provenance = _build_model(config, out, options, train_clips, next(iter(n_vertices)))
    model = model.to(ctx.device)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.98))
    autocast, scaler = _autocast(ctx, config.precision)
    counters = _Counters()
    if options.resume:
        _restore(out, model, optimizer, scaler, counters)
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        saved_config = config.to_dict() | ({"init": provenance} if provenance else {})
        (out / CONFIG_FILE).write_text(json.dumps(saved_config, indent=2) + "\n")
        (out / LOG_FILE).unlink(missing_ok=True)  # left by a run that died before its first checkpoint

    net: torch.nn.Module = model
    if ctx.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
            find_unused_parameters=_has_unused_parameters(model.cfg, train_clips),
        )
    train_set, sampler, loader, val_loader = _loaders(
        config, ctx, options.seed, cache, train_clips, val_clips
    )
    budget_s = options.max_minutes * 60.0 if options.max_minutes is not None else None
    steps_per_epoch = len(sampler)
    # In budget mode the schedule's unit is the whole budget (N = 1), see schedule.py.
    in_budget = budget_s is not None or options.max_steps is not None
    schedule = decoder_input_schedule(
        config.decoder_schedule, config.tf_theta_fraction, 1.0 if in_budget else float(config.epochs)
    )
    session = _Session(
        data, config, out, ctx, options, model, net, optimizer, autocast, scaler, provenance,
        train_set, sampler, loader, val_loader, schedule, _JsonlLog(out / LOG_FILE, ctx.is_main),
        budget_s, options.max_steps, steps_per_epoch, max(1, steps_per_epoch * config.epochs),
    )  # fmt: skip
    _log_session_start(session, counters, len(train_clips), len(val_clips))
    return session, counters


def _build_model(
    config: TrainConfig, out: Path, options: RunOptions, train_clips: list[Clip], n_vertices: int
) -> tuple[DualFace, dict | None]:
    """A fresh model, or the checkpoint to fine-tune; with the provenance of its starting point."""
    if options.init is not None:
        return build_finetune_model(config, options.init, n_vertices), init_provenance(options.init)
    provenance: dict | None = None
    if options.resume:  # a resumed fine-tune keeps citing its starting point
        provenance = json.loads((out / CONFIG_FILE).read_text()).get("init")
    return build_model(config, train_clips[0].template), provenance


def _restore(out: Path, model: DualFace, optimizer, scaler, counters: _Counters) -> None:
    """Model, optimizer, scaler, counters and random generators from the run's last checkpoint."""
    # on CPU: the RNG states must stay CPU tensors; load_state_dict moves the rest to the device
    state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    counters.start_epoch, counters.step = state["epoch"], state["step"]
    counters.elapsed_before, counters.best_val = state["elapsed_s"], state["best_val"]
    _set_rng_state(state["rng"])


def _loaders(
    config: TrainConfig,
    ctx: DistContext,
    seed: int,
    cache: MelCache,
    train_clips: list[Clip],
    val_clips: list[Clip],
):
    """Training crops in fps buckets, sharded over ranks; validation batches on the main rank only."""
    crop = config.crop_seconds if config.crop_seconds > 0 else None
    train_set = ClipDataset(train_clips, cache, crop, seed=seed, use_emotion=config.emotion)
    sampler = FpsBucketBatchSampler(
        [bucket_key(c) for c in train_clips], config.batch_size, seed, ctx.rank, ctx.world_size
    )
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, collate_fn=collate, num_workers=config.num_workers
    )
    val_loader = None
    if val_clips and ctx.is_main:
        val_set = ClipDataset(val_clips, cache, crop, seed=seed + 1, use_emotion=config.emotion)
        val_loader = torch.utils.data.DataLoader(
            val_set,
            batch_sampler=FpsBucketBatchSampler(
                [bucket_key(c) for c in val_clips], config.batch_size, shuffle=False
            ),
            collate_fn=collate,
        )
    return train_set, sampler, loader, val_loader


def _log_session_start(session: _Session, counters: _Counters, n_train: int, n_val: int) -> None:
    ctx, options = session.ctx, session.options
    if not ctx.is_main:
        return
    if not options.resume:
        session.log.write(
            {
                "kind": "start",
                "config": session.config.to_dict(),
                "seed": options.seed,
                "world_size": ctx.world_size,
                "device": str(ctx.device),
                "n_train": n_train,
                "n_val": n_val,
                "parameters": sum(p.numel() for p in session.model.parameters()),
                "max_minutes": options.max_minutes,
                "max_steps": options.max_steps,
                "init": session.provenance,
            }
        )
        return
    session.log.write(
        {
            "kind": "resume",
            "epoch": counters.start_epoch,
            "step": counters.step,
            "world_size": ctx.world_size,
            "device": str(ctx.device),
            "max_minutes": options.max_minutes,
            "max_steps": options.max_steps,
        }
    )


# ---- epochs ---------------------------------------------------------------------------------------


def _run_epochs(session: _Session, counters: _Counters) -> list[dict]:
    """Epochs until the run is done (epochs or budget) or this session's `stop_after` is reached."""
    config, budget_s, stop_after = session.config, session.budget_s, session.options.stop_after
    budget_steps = session.budget_steps
    by_epochs = budget_s is None and budget_steps is None
    counters.session_start = time.monotonic()
    history: list[dict] = []
    counters.epoch = counters.start_epoch
    finished = (
        (budget_s is not None and counters.elapsed_before >= budget_s)
        or (budget_steps is not None and counters.step >= budget_steps)
        or (by_epochs and counters.epoch >= config.epochs)
    )
    session.model.train()
    while not finished:
        epoch = _train_epoch(session, counters)
        finished = epoch.out_of_time
        train_losses = mean_over_ranks(_mean(epoch.rows), session.ctx)
        counters.epoch += 1
        if by_epochs and counters.epoch >= config.epochs:
            finished = True
        if stop_after is not None and counters.epoch - counters.start_epoch >= stop_after:
            finished = True
        val_losses = (
            validate(session.model, session.val_loader, config, session.ctx, session.autocast)
            if session.val_loader is not None
            else {}
        )
        elapsed = counters.elapsed()
        record = {
            "kind": "epoch",
            "epoch": counters.epoch,
            "step": counters.step,
            "elapsed_s": round(elapsed, 2),
            "lr": epoch.lr,
            "tf_prob": epoch.tf_prob,
            "train": train_losses,
            "val": val_losses,
        }
        if budget_s is not None:
            record["budget_used"] = round(min(elapsed / budget_s, 1.0), 4)
        elif budget_steps is not None:
            record["budget_used"] = round(min(counters.step / budget_steps, 1.0), 4)
        history.append(record)
        if session.ctx.is_main:
            _save_checkpoints(session, counters, elapsed, train_losses, val_losses)
            session.log.write(record)
            if session.options.progress:
                _print_epoch(counters.epoch, train_losses, val_losses, epoch, elapsed)
        barrier(session.ctx)
    return history


def _train_epoch(session: _Session, counters: _Counters) -> _Epoch:
    """One pass over the training batches: schedules, forward, backward, step, step logs."""
    from engine.model import dual_losses

    config, ctx, budget_s, budget_steps = session.config, session.ctx, session.budget_s, session.budget_steps
    session.sampler.set_epoch(counters.epoch)
    session.train_set.set_epoch(counters.epoch)
    result = _Epoch(rows=[])
    bar = None
    if session.options.progress and ctx.is_main:
        from tqdm import tqdm

        bar = tqdm(
            total=session.steps_per_epoch, desc=f"epoch {counters.epoch + 1}", unit="step", leave=False
        )
    for i, batch in enumerate(session.loader):
        elapsed = counters.elapsed()
        if budget_s is not None:
            (elapsed,) = broadcast_floats([elapsed], ctx)
            position = progress_share = elapsed / budget_s
        elif budget_steps is not None:
            position = progress_share = counters.step / budget_steps
        else:
            position = counters.epoch + i / max(session.steps_per_epoch, 1)
            progress_share = counters.step / session.total_steps
        result.tf_prob = tf_prob = session.schedule.tf_prob(position)
        result.lr = lr = config.lr * lr_factor(
            counters.step, progress_share, config.warmup_steps, config.min_lr_ratio
        )
        for group in session.optimizer.param_groups:
            group["lr"] = lr

        batch = to_device(batch, ctx.device)
        with session.autocast:
            losses = dual_losses(session.net(batch, tf_prob=tf_prob), batch, session.model.cfg)
        grad_norm = _optimizer_step(session, losses["total"], counters)
        counters.step += 1
        row = _losses_to_floats(losses)
        result.rows.append(row)
        if bar is not None:
            bar.set_postfix(loss=f"{row['total']:.4f}", lr=f"{lr:.2e}", tf=f"{tf_prob:.2f}")
            bar.update(1)
        if config.log_every and counters.step % config.log_every == 0:
            session.log.write(
                {"kind": "step", "epoch": counters.epoch + 1, "step": counters.step, "lr": lr,
                 "tf_prob": tf_prob, "grad_norm": grad_norm, **row}
            )  # fmt: skip
        if budget_s is not None:
            (stop,) = broadcast_floats([float(counters.elapsed() >= budget_s)], ctx)
            if stop:
                result.out_of_time = True
                break
        if budget_steps is not None and counters.step >= budget_steps:
            result.out_of_time = True  # every rank counts the same steps
            break
    if bar is not None:
        bar.close()
    return result


def _optimizer_step(session: _Session, loss: torch.Tensor, counters: _Counters) -> float:
    """Backward and one optimizer step (with the fp16 scaler when there is one); the gradient norm."""
    config, optimizer, scaler = session.config, session.optimizer, session.scaler
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"loss became {float(loss)} at epoch {counters.epoch + 1} step {counters.step}; "
            "lower lr or use precision fp32"
        )
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grad_norm = (
        float(torch.nn.utils.clip_grad_norm_(session.model.parameters(), config.grad_clip))
        if config.grad_clip
        else 0.0
    )
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


def _print_epoch(epoch: int, train_losses: dict, val_losses: dict, result: _Epoch, elapsed: float) -> None:
    val_text = f" val {val_losses['total']:.4f}" if "total" in val_losses else ""
    print(
        f"epoch {epoch}: train {train_losses.get('total', math.nan):.4f}{val_text} "
        f"tf {result.tf_prob:.2f} lr {result.lr:.2e} {elapsed:.0f}s",
        flush=True,
    )


# ---- checkpoints ----------------------------------------------------------------------------------


def _save_checkpoints(
    session: _Session, counters: _Counters, elapsed: float, train_losses: dict, val_losses: dict
) -> None:
    """The last weights, the best weights (by validation loss) and the full state for resuming."""
    from engine.weights import save_checkpoint

    options, model, out = session.options, session.model, session.out
    val_total = val_losses.get("total", train_losses.get("total", math.inf))
    about = {
        "run": session.config.name,
        "epoch": counters.epoch,
        "step": counters.step,
        "seed": options.seed,
        "data": str(session.data),
        "train_total": train_losses.get("total"),
        "val_total": val_losses.get("total"),
    }
    if session.provenance:
        about["init"] = session.provenance
    save_checkpoint(model, out / LAST_WEIGHTS, extra_meta=about)
    if val_total < counters.best_val:
        counters.best_val = val_total
        save_checkpoint(model, out / BEST_WEIGHTS, extra_meta=about)
    state = {
        "model": model.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scaler": session.scaler.state_dict() if session.scaler is not None else None,
        "epoch": counters.epoch,
        "step": counters.step,
        "elapsed_s": elapsed,
        "best_val": counters.best_val,
        "rng": _rng_state(),
        "seed": options.seed,
    }
    tmp = out / (STATE_FILE + ".partial")
    torch.save(state, tmp)
    tmp.replace(out / STATE_FILE)
