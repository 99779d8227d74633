"""Is this mesh the DualFace template itself, so its vertices can take the engine's offsets directly?

Sharing the template's vertex count is not enough: a copy scaled 1000x in Edit Mode would move by a
thousandth of its size, a rotated one in the wrong directions, and NaN vertices would poison the
take. The template is recognised by its shape -- size, where the landmarks sit relative to each
other, finite coordinates -- and anything else is sent through the fit (or refused with the reason).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SIZE_TOLERANCE = 1.25  # a template within 1/1.25 .. 1.25 of the original size counts as the template
LANDMARK_TOLERANCE = 0.25  # each landmark pair's vector may differ by a quarter of its length
SHAPE_TOLERANCE = 0.15  # mean vertex deviation, as a fraction of the face's RMS radius

_LANDMARK_PAIRS = (
    ("eye_outer_right", "eye_outer_left"),
    ("mouth_corner_right", "mouth_corner_left"),
    ("nose_bridge", "chin"),
    ("forehead_center", "chin"),
    ("nose_tip", "upper_lip_center"),
    ("cheek_right", "nose_tip"),
)


@lru_cache(maxsize=1)
def _reference() -> tuple[np.ndarray, float, np.ndarray]:
    """Centred template vertices, their RMS radius, and the landmark-pair vectors."""
    from engine.face.template import load_template

    template = load_template()
    centred = template.vertices.astype(np.float64) - template.vertices.mean(axis=0)
    radius = float(np.sqrt((centred**2).sum(axis=1).mean()))
    return centred, radius, _pair_vectors(centred, template.landmarks)


def _pair_vectors(vertices: np.ndarray, landmarks: dict[str, int]) -> np.ndarray:
    return np.stack([vertices[landmarks[b]] - vertices[landmarks[a]] for a, b in _LANDMARK_PAIRS])


def template_shape_mismatch(vertices: np.ndarray) -> str | None:
    """Why ``vertices`` (object-local, [V, 3]) are not the template's shape, or None when they are."""
    from engine.face.template import N_VERTICES, load_template

    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        return f"vertices must be [N, 3], got shape {vertices.shape}"
    if vertices.shape[0] != N_VERTICES:
        return f"it has {vertices.shape[0]} vertices; the DualFace template has {N_VERTICES}"
    bad = int((~np.isfinite(vertices).all(axis=1)).sum())
    if bad:
        return f"{bad} of its vertices have NaN or infinite coordinates"
    reference, radius, reference_pairs = _reference()
    centred = vertices - vertices.mean(axis=0)
    scale = float(np.sqrt((centred**2).sum(axis=1).mean())) / radius
    if not 1.0 / SIZE_TOLERANCE <= scale <= SIZE_TOLERANCE:
        return f"it is {scale:.3g}x the template's size (scaled in Edit Mode?)"
    pairs = _pair_vectors(centred, load_template().landmarks)
    drift = np.linalg.norm(pairs - reference_pairs, axis=1) / np.linalg.norm(reference_pairs, axis=1)
    if drift.max() > LANDMARK_TOLERANCE:
        worst = _LANDMARK_PAIRS[int(drift.argmax())]
        return (
            f"its landmarks sit elsewhere than the template's ({worst[0]} -> {worst[1]} differs by "
            f"{drift.max():.0%}; rotated, mirrored or reshaped?)"
        )
    deviation = float(np.linalg.norm(centred - reference, axis=1).mean()) / radius
    if deviation > SHAPE_TOLERANCE:
        return f"its vertices differ from the template's by {deviation:.0%} of the face size on average"
    return None


def is_template_shape(vertices: np.ndarray) -> bool:
    """True when the engine's template offsets can drive ``vertices`` directly, without a fit."""
    return template_shape_mismatch(vertices) is None
