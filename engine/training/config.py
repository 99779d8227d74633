"""Training configuration: one JSON file per experiment, validated before anything runs.

Ablation switches live here rather than in ModelConfig because they describe the experiment; they
are turned into model settings by `model_settings()` so the saved model records what it was trained as.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.training.schedule import TF_SCHEDULES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    name: str = "default"
    model: dict = field(default_factory=dict)  # ModelConfig overrides
    # data
    train_split: str = "train"
    val_split: str = "val"
    crop_seconds: float = 4.0  # random aligned audio/motion windows; <= 0 trains on whole clips
    batch_size: int = 8
    num_workers: int = 0
    val_max_clips: int = 64
    # optimisation
    epochs: int = 40
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05  # the cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0
    precision: str = "auto"  # CUDA only; CPU always trains in fp32
    # self-growing schedule: theta = tf_theta_fraction * N
    tf_theta_fraction: float = 0.25
    # decoder input during training: "self_growing" (the curve above), "teacher_forcing" (ground truth
    # throughout) or "autoregressive" (own predictions from the first step; for fine-tuning)
    tf_schedule: str = "self_growing"
    # ablation switches
    teacher_forcing_only: bool = False
    dual_task: bool = True  # lip reading + its losses
    consistency: bool = True  # cross-modal consistency loss
    emotion: bool = True  # emotion conditioning (zeros when off)
    mesh_attention: bool = True
    log_every: int = 20  # steps between train_log.jsonl step lines

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.lr <= 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if not 0.0 <= self.tf_theta_fraction <= 1.0:
            problems.append(f"tf_theta_fraction must be in [0, 1] (got {self.tf_theta_fraction})")
        if self.tf_schedule not in TF_SCHEDULES:
            problems.append(
                f"tf_schedule must be one of {', '.join(TF_SCHEDULES)} (got {self.tf_schedule!r})"
            )
        elif self.teacher_forcing_only and self.tf_schedule not in ("self_growing", "teacher_forcing"):
            problems.append(
                f"teacher_forcing_only: true contradicts tf_schedule {self.tf_schedule!r}; keep one of them"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.grad_clip < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            problems.append("grad_clip, warmup_steps and num_workers must be >= 0")
        if not isinstance(self.model, dict):
            problems.append("model must be a JSON object of ModelConfig fields")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"comment"})
        if unknown:
            raise ValueError(
                f"unknown training config keys {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} not found; see configs/ for examples")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"config {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"config {path} must hold a JSON object")
        data.setdefault("name", path.stem)
        return cls.from_dict(data)

    @property
    def decoder_schedule(self) -> str:
        """The effective `tf_schedule`: the older switch `teacher_forcing_only` still means teacher forcing."""
        return "teacher_forcing" if self.teacher_forcing_only else self.tf_schedule

    def to_dict(self) -> dict:
        return asdict(self)
