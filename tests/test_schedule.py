from __future__ import annotations

import math

import pytest

from engine.training.loop import lr_factor
from engine.training.schedule import SelfGrowingSchedule


def test_teacher_forcing_until_theta():
    schedule = SelfGrowingSchedule(theta=10, total=50)
    assert schedule.tf_prob(0) == 1.0
    assert schedule.tf_prob(9.99) == 1.0
    assert schedule.tf_prob(10) == pytest.approx(1.0)  # cos(0)


def test_cosine_decay_between_theta_and_midpoint():
    schedule = SelfGrowingSchedule(theta=10, total=50)
    # n = 20: cos(pi * 10 / 40) = cos(pi / 4)
    assert schedule.tf_prob(20) == pytest.approx(math.sqrt(0.5))
    # n = 30 = (50 + 10) / 2: the cosine reaches zero exactly where the schedule switches to 0
    assert schedule.free_running_from == 30
    assert schedule.tf_prob(29.999) == pytest.approx(0.0, abs=1e-3)
    values = [schedule.tf_prob(n) for n in range(10, 31)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_free_running_after_midpoint():
    schedule = SelfGrowingSchedule(theta=10, total=50)
    assert schedule.tf_prob(30) == 0.0
    assert schedule.tf_prob(45) == 0.0
    assert schedule.tf_prob(50) == 0.0
    assert schedule.tf_prob(80) == 0.0  # beyond N (budget overrun) stays 0, never negative


def test_fraction_and_disabled():
    by_fraction = SelfGrowingSchedule.from_fraction(0.25, 1.0)
    assert by_fraction.theta == 0.25
    # budget units: half way between theta and the midpoint 0.625
    assert by_fraction.tf_prob(0.4375) == pytest.approx(math.cos(math.pi * 0.1875 / 0.75))
    off = SelfGrowingSchedule(theta=0, total=10, enabled=False)
    assert all(off.tf_prob(n) == 1.0 for n in (0, 5, 10, 20))


def test_theta_equal_total_means_always_teacher_forcing():
    schedule = SelfGrowingSchedule(theta=10, total=10)
    assert schedule.tf_prob(9) == 1.0
    assert schedule.tf_prob(10) == 0.0  # training is over


@pytest.mark.parametrize("theta,total", [(-1, 10), (11, 10), (0, 0)])
def test_bad_arguments(theta, total):
    with pytest.raises(ValueError):
        SelfGrowingSchedule(theta=theta, total=total)


def test_lr_warmup_then_cosine():
    assert lr_factor(0, 0.0, warmup_steps=4, min_ratio=0.1) == pytest.approx(0.25)
    assert lr_factor(3, 0.0, warmup_steps=4, min_ratio=0.1) == pytest.approx(1.0)
    assert lr_factor(10, 0.5, warmup_steps=4, min_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(10, 1.0, warmup_steps=4, min_ratio=0.1) == pytest.approx(0.1)
