"""The template is recognised by its shape, not by its vertex count."""

from __future__ import annotations

import numpy as np
import pytest

from engine.face.template import load_template
from engine.face.template_shape import is_template_shape, template_shape_mismatch

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def template() -> np.ndarray:
    return load_template().vertices.astype(np.float64)


def test_the_template_moved_or_lightly_sculpted_is_still_the_template(template):
    rng = np.random.default_rng(0)
    assert is_template_shape(template)
    assert is_template_shape(template + np.array([0.3, -2.0, 1.0]))
    assert is_template_shape(template * 1.1 + 0.0005 * rng.standard_normal(template.shape))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda v: v * 1000.0, "1e+03x the template's size"),
        (lambda v: v * 0.01, "0.01x the template's size"),
        (lambda v: np.where(np.arange(len(v))[:, None] == 7, np.nan, v), "1 of its vertices have NaN"),
        (
            lambda v: v @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
            "landmarks sit elsewhere",
        ),
        (lambda v: v * np.array([-1.0, 1.0, 1.0]), "landmarks sit elsewhere"),
        (lambda v: np.random.default_rng(1).permutation(v), "landmarks sit elsewhere"),
        (lambda v: v[:400], "400 vertices"),
    ],
    ids=["scaled-1000x", "scaled-0.01x", "nan", "rotated", "mirrored", "shuffled", "fewer-vertices"],
)
def test_anything_else_is_not_the_template_and_says_why(template, change, reason):
    mismatch = template_shape_mismatch(change(template.copy()))
    assert mismatch is not None and reason in mismatch
