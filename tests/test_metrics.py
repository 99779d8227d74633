from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.record import Phone
from engine.metrics import (
    bilabial_closure_rate,
    bilabial_closures,
    edit_distance,
    eve,
    fdd,
    greedy_ctc_decode,
    lve,
    phoneme_error_rate,
)


def _zeros(t=4, v=5):
    return np.zeros((t, v, 3), np.float32)


def test_lve_single_vertex_error():
    gt = _zeros()
    pred = gt.copy()
    pred[:, 2, 0] = 0.002  # 2 mm on one lip vertex in every frame
    assert lve(pred, gt, [1, 2]) == pytest.approx(4e-6)
    # a vertex outside the lip mask does not count
    assert lve(pred, gt, [0, 1]) == 0.0


def test_lve_takes_the_max_per_frame_then_the_mean():
    gt = _zeros(t=2)
    pred = gt.copy()
    pred[0, 1, 1] = 0.001  # frame 0: 1 mm and 3 mm -> max 9e-6
    pred[0, 2, 2] = 0.003
    pred[1, 1, 0] = 0.002  # frame 1: 2 mm -> 4e-6
    assert lve(pred, gt, [1, 2]) == pytest.approx((9e-6 + 4e-6) / 2)


def test_eve_is_lve_over_its_mask():
    gt = _zeros()
    pred = gt.copy()
    pred[:, 4] = [0.001, 0.002, 0.002]  # |e|^2 = 1 + 4 + 4 = 9 mm^2
    assert eve(pred, gt, [3, 4]) == pytest.approx(9e-6)


def test_fdd_by_hand():
    template = np.zeros((3, 3), np.float32)
    gt = np.zeros((4, 3, 3), np.float32)
    gt[1::2, 0, 2] = 0.002  # vertex 0 alternates 0, 2 mm: squared displacement 0, 4e-6 -> std 2e-6
    pred = np.zeros_like(gt)  # the prediction keeps the upper face still
    # mean over the two upper vertices (0 and 1): (2e-6 + 0) / 2
    assert fdd(pred, gt, [0, 1], template) == pytest.approx(1e-6)
    assert fdd(gt, gt, [0, 1], template) == 0.0
    assert fdd(gt, pred, [0, 1], template) == pytest.approx(-1e-6)  # over-animated upper face


def test_vertex_metric_errors():
    with pytest.raises(ValueError, match="differ"):
        lve(_zeros(t=3), _zeros(t=4), [0])
    with pytest.raises(ValueError, match="outside"):
        lve(_zeros(), _zeros(), [7])
    with pytest.raises(ValueError, match="empty"):
        eve(_zeros(), _zeros(), [])
    with pytest.raises(ValueError, match="template"):
        fdd(_zeros(), _zeros(), [0], np.zeros((4, 3)))


def test_phoneme_error_rate():
    ref = ["HH", "AH", "L", "OW"]
    assert phoneme_error_rate(ref, ref) == 0.0
    assert phoneme_error_rate(["HH", "EH", "L", "OW"], ref) == pytest.approx(1 / 4)  # 1 substitution
    assert phoneme_error_rate(["HH", "L", "OW"], ref) == pytest.approx(1 / 4)  # 1 deletion
    assert phoneme_error_rate([], ref) == 1.0
    assert phoneme_error_rate(["X"] * 10, ["A", "B"]) == pytest.approx(10 / 2)  # insertions push PER past 1
    assert edit_distance("kitten", "sitting") == 3
    with pytest.raises(ValueError):
        phoneme_error_rate(["A"], [])


def test_greedy_ctc_decode_merges_repeats_and_drops_blanks():
    path = [0, 3, 3, 0, 3, 5, 5, 0]
    logits = np.full((len(path), 6), -1.0)
    logits[np.arange(len(path)), path] = 1.0
    assert greedy_ctc_decode(logits) == [3, 3, 5]


def _gap_from_axis(vertices, template=None):
    """A stand-in gap: the z coordinate of vertex 0 (tests the phone/frame bookkeeping only)."""
    return vertices[:, 0, 2]


def test_bilabial_closure_rate_by_hand():
    fps = 10.0
    vertices = np.zeros((20, 1, 3), np.float32)
    vertices[:, 0, 2] = 0.01  # lips 1 cm apart
    vertices[3, 0, 2] = 0.0005  # closed during the first /p/ (frames 2..4)
    phones = [
        Phone("sil", 0.0, 0.2),
        Phone("P", 0.2, 0.5),  # frames 2, 3, 4 -> closed at frame 3
        Phone("AA", 0.5, 0.8),
        Phone("M", 0.8, 1.0),  # frames 8, 9 -> never closed
        Phone("B", 1.23, 1.26),  # shorter than a frame: judged at the nearest frame 12
    ]
    assert bilabial_closures(vertices, phones, fps, gap_fn=_gap_from_axis) == (1, 3)
    assert bilabial_closure_rate(vertices, phones, fps, gap_fn=_gap_from_axis) == pytest.approx(1 / 3)
    vertices[12, 0, 2] = 0.0
    assert bilabial_closure_rate(vertices, phones, fps, gap_fn=_gap_from_axis) == pytest.approx(2 / 3)
    # a looser threshold counts the 1 cm gap as closed too
    assert bilabial_closure_rate(vertices, phones, fps, threshold=0.02, gap_fn=_gap_from_axis) == 1.0
    assert math.isnan(bilabial_closure_rate(vertices, phones[:3:2], fps, gap_fn=_gap_from_axis))


def test_bilabial_closure_rate_on_the_template_face():
    from engine.face import load_template

    face = load_template()
    upper, lower = face.inner_lip_pairs[:, 0], face.inner_lip_pairs[:, 1]
    fps = 30.0
    vertices = np.repeat(face.vertices[None], 30, axis=0).copy()
    vertices[:, lower, 2] = vertices[:, upper, 2] - 0.008  # mouth open 8 mm in every frame
    vertices[6:9, lower, 2] = vertices[6:9, upper, 2]  # lips meet in frames 6..8 only
    phones = [Phone("P", 0.2, 0.3), Phone("AA", 0.3, 0.5), Phone("M", 0.5, 0.6)]  # frames 6-8 and 15-17
    assert bilabial_closures(vertices, phones, fps) == (1, 2)
    assert bilabial_closure_rate(vertices, phones, fps, template=face) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="FaceTemplate"):
        bilabial_closure_rate(vertices, phones, fps, template=face.vertices)
