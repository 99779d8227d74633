"""Emotions that show: at intensity 1 the emotion layer moves the rig's face visibly and distinctly.

Measured on the procedural ARKit rig, on the face an emotion holds at rest (its expression plus the
jaw it drops in silence):

- the defining region moves >= 6 mm: the largest displacement of any brow vertex (surprised,
  fearful, angry, sad) or of the two mouth-corner points (happy, sad, disgust);
- every pair of the 8 emotions differs by >= 2 mm on average over the face's features, where a
  feature's difference is the largest vertex distance inside it (brows, lids, mouth corners, lips,
  nose, upper cheeks; each side counted apart);
- the lips still close on every p/b/m whatever the emotion, and rest closed when neutral.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.arkit import ARKIT_INDEX
from engine.arkit.basis import apply_arkit, inner_lip_gap
from engine.data import emotion_layer
from engine.data.motion import render_motion
from engine.data.record import Phone
from engine.emotions import EMOTIONS
from engine.face import landmarks as lm
from engine.phonemes import BILABIALS

MM = 1e-3


def _rows(*rows) -> np.ndarray:
    return np.asarray([i for row in rows for i in row], dtype=np.int64)


BROWS = _rows(lm.BROW_UPPER_LEFT, lm.BROW_LOWER_LEFT, lm.BROW_UPPER_RIGHT, lm.BROW_LOWER_RIGHT)
CORNERS = _rows([lm.MOUTH_CORNER_LEFT[0], lm.MOUTH_CORNER_RIGHT[0]])
FEATURES = {
    "brow left": _rows(lm.BROW_UPPER_LEFT, lm.BROW_LOWER_LEFT),
    "brow right": _rows(lm.BROW_UPPER_RIGHT, lm.BROW_LOWER_RIGHT),
    "upper lid left": _rows(lm.EYELID_UPPER_LEFT_0),
    "upper lid right": _rows(lm.EYELID_UPPER_RIGHT_0),
    "lower lid left": _rows(lm.EYELID_LOWER_LEFT_0),
    "lower lid right": _rows(lm.EYELID_LOWER_RIGHT_0),
    "mouth corner left": _rows(lm.MOUTH_CORNER_LEFT),
    "mouth corner right": _rows(lm.MOUTH_CORNER_RIGHT),
    "upper lip": _rows(lm.LIP_UPPER_OUTER),
    "lower lip": _rows(lm.LIP_LOWER_OUTER),
    "nose": _rows([lm.NOSE_ALA_LEFT, lm.NOSE_ALA_RIGHT, lm.NOSE_TIP]),
    "cheek left": _rows(lm.EYE_RING_LOWER_LEFT_2, [lm.CHEEK_LEFT]),
    "cheek right": _rows(lm.EYE_RING_LOWER_RIGHT_2, [lm.CHEEK_RIGHT]),
}
DEFINING = {
    "happy": ("corners",),
    "sad": ("brows", "corners"),
    "angry": ("brows",),
    "fearful": ("brows",),
    "disgust": ("corners",),
    "surprised": ("brows",),
}


def held_face(emotion: str, intensity: float = 1.0) -> np.ndarray:
    """[468, 3] offsets (m) of the face an emotion holds in silence at a steady intensity."""
    curve = np.full(1, intensity, np.float32)
    weights = emotion_layer.expression(emotion, curve).astype(np.float32)
    weights[:, ARKIT_INDEX["jawOpen"]] += emotion_layer.articulation_gain(emotion, curve)[2]
    return apply_arkit(weights)[0]


def feature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the face's features of the largest vertex distance (m) inside each one."""
    dist = np.linalg.norm(a - b, axis=1)
    return float(np.mean([dist[idx].max() for idx in FEATURES.values()]))


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    return {e: held_face(e) for e in EMOTIONS}


@pytest.mark.parametrize("emotion", sorted(DEFINING))
def test_each_emotion_moves_its_defining_region_by_6_mm(faces, emotion):
    moved = np.linalg.norm(faces[emotion], axis=1)
    for region in DEFINING[emotion]:
        idx = BROWS if region == "brows" else CORNERS
        peak = moved[idx].max() if region == "brows" else moved[idx].min()  # both corners move
        assert peak >= 6 * MM, f"{emotion}: {region} move only {peak / MM:.2f} mm at intensity 1"


def test_the_eight_emotions_are_pairwise_distinguishable(faces):
    distances = {(a, b): feature_distance(faces[a], faces[b]) for a, b in itertools.combinations(EMOTIONS, 2)}
    pair, nearest = min(distances.items(), key=lambda item: item[1])
    assert nearest >= 2 * MM, f"{pair} differ by only {nearest / MM:.2f} mm on average"


def test_intensity_scales_the_expression(faces):
    for emotion in EMOTIONS[1:]:
        weak = np.linalg.norm(held_face(emotion, 0.3), axis=1).max()
        strong = np.linalg.norm(faces[emotion], axis=1).max()
        assert 0.0 < weak < 0.5 * strong, emotion
    assert np.abs(held_face("surprised", 0.0)).max() == 0.0


def _speech(rng: np.random.Generator, n: int) -> list[Phone]:
    items = [("sil", 0.4)]
    for _ in range(n):
        if rng.random() < 0.3:
            items.append((str(rng.choice(sorted(BILABIALS))), float(rng.uniform(0.05, 0.12))))
        else:
            items.append((str(rng.choice(["AA", "IY", "UW", "EH", "S", "T", "L", "R", "F"])), 0.09))
    items.append(("sil", 0.6))
    out, t = [], 0.0
    for phone, length in items:
        out.append(Phone(phone, t, t + length))
        t += length
    return out


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_lips_still_close_on_bilabials_under_every_emotion(emotion):
    phones = _speech(np.random.default_rng(7), 40)
    motion = render_motion(phones, emotion, 1.0, fps=30, seed=3)
    gap = inner_lip_gap(motion.vertices)
    frames = np.arange(len(gap)) / 30
    for p in (p for p in phones if p.phone in BILABIALS):
        inside = np.flatnonzero((frames >= p.start) & (frames <= p.end))
        if inside.size == 0:
            inside = np.array([round(0.5 * (p.start + p.end) * 30)])
        assert gap[inside].max() < 0.1 * MM, f"{emotion}: lips {gap[inside].max() / MM:.2f} mm apart at {p}"


def test_neutral_rest_keeps_the_lips_closed():
    motion = render_motion([Phone("sil", 0.0, 1.0)], "neutral", 1.0, fps=30, seed=0)
    assert np.all(np.abs(motion.vertices[:, 13, 2] - motion.vertices[:, 14, 2]) <= 0.5 * MM)
