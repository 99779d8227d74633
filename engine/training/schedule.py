"""The self-growing teacher-forcing schedule of EmoFace.

An autoregressive decoder trained only on ground-truth history (teacher forcing) never sees its own
mistakes and drifts at inference; trained only on its own history from the start it never converges.
EmoFace grows the share of self-generated history over training:

    p(n) = 1                                   for n < theta
    p(n) = cos(pi * (n - theta) / (N - theta)) for theta <= n < (N + theta) / 2
    p(n) = 0                                   for n >= (N + theta) / 2

where n is the (fractional) epoch, N the number of epochs, theta the last fully teacher-forced epoch
and p the per-frame probability of feeding the ground-truth previous frame instead of the model's
own prediction. At n = (N + theta) / 2 the cosine reaches 0, so the curve is continuous; the result is
clamped to [0, 1]. When training runs on a time budget, n and N are measured in "budget epochs":
n = N * elapsed / budget, so runs with the same budget follow the same curve.

Fine-tuning a trained model may skip the curve: `decoder_input_schedule` also gives plain teacher
forcing (the FaceFormer baseline) and a fully autoregressive decoder (tf_prob 0 from the first step,
as at inference), chosen by the config key `tf_schedule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SelfGrowingSchedule:
    theta: float  # epochs of pure teacher forcing
    total: float  # N, the length of training in epochs
    enabled: bool = True  # False: teacher forcing throughout (the FaceFormer baseline / ablation)

    def __post_init__(self) -> None:
        if self.total <= 0:
            raise ValueError(f"schedule total epochs must be > 0, got {self.total}")
        if not 0 <= self.theta <= self.total:
            raise ValueError(
                f"schedule theta must lie in [0, total={self.total}], got {self.theta}; "
                "set tf_theta_fraction in the config between 0 and 1"
            )

    @classmethod
    def from_fraction(cls, theta_fraction: float, total: float, enabled: bool = True) -> SelfGrowingSchedule:
        """theta given as a share of training, so one config fits any number of epochs or any budget."""
        if not 0.0 <= theta_fraction <= 1.0:
            raise ValueError(f"tf_theta_fraction must be in [0, 1], got {theta_fraction}")
        return cls(theta=theta_fraction * total, total=total, enabled=enabled)

    @property
    def free_running_from(self) -> float:
        """The epoch from which the decoder only sees its own predictions."""
        return (self.total + self.theta) / 2.0

    def tf_prob(self, epoch: float) -> float:
        """Probability of teacher forcing each frame at (fractional) epoch `epoch`."""
        if not self.enabled or epoch < self.theta:
            return 1.0
        if epoch >= self.free_running_from or self.total <= self.theta:
            return 0.0
        p = math.cos(math.pi * (epoch - self.theta) / (self.total - self.theta))
        return min(1.0, max(0.0, p))


TF_SCHEDULES = ("self_growing", "teacher_forcing", "autoregressive")


@dataclass(frozen=True)
class FixedTeacherForcing:
    """The same teacher-forcing probability throughout: 0 trains the decoder exactly as it runs at
    inference, which only makes sense for a model that already predicts well (fine-tuning)."""

    p: float

    def tf_prob(self, epoch: float) -> float:
        return self.p


def decoder_input_schedule(
    kind: str, theta_fraction: float, total: float
) -> SelfGrowingSchedule | FixedTeacherForcing:
    """The schedule named by the config key `tf_schedule` (one of TF_SCHEDULES)."""
    if kind == "self_growing":
        return SelfGrowingSchedule.from_fraction(theta_fraction, total)
    if kind == "teacher_forcing":
        return SelfGrowingSchedule.from_fraction(theta_fraction, total, enabled=False)
    if kind == "autoregressive":
        return FixedTeacherForcing(0.0)
    raise ValueError(f"tf_schedule must be one of {', '.join(TF_SCHEDULES)} (got {kind!r})")
