"""Similarity alignment (rotation, uniform scale, translation) from corresponding points.

Umeyama (1991), "Least-squares estimation of transformation parameters between two point
patterns": the closed form, with the reflection fix, so a mirrored landmark set can never turn
the template inside out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.retarget.errors import RetargetError


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * rotation @ x + translation`` (template frame -> user frame)."""

    rotation: np.ndarray  # [3,3]
    scale: float
    translation: np.ndarray  # [3]

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation

    def apply_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Offsets (differences of points) transform without the translation."""
        return self.scale * np.asarray(vectors) @ self.rotation.T

    def inverse(self) -> Similarity:
        rot_t = self.rotation.T
        return Similarity(rot_t, 1.0 / self.scale, -(rot_t @ self.translation) / self.scale)

    def as_dict(self) -> dict:
        return {
            "rotation": np.asarray(self.rotation).tolist(),
            "scale": float(self.scale),
            "translation": np.asarray(self.translation).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Similarity:
        return cls(
            np.asarray(data["rotation"], float), float(data["scale"]), np.asarray(data["translation"], float)
        )

    @classmethod
    def identity(cls) -> Similarity:
        return cls(np.eye(3), 1.0, np.zeros(3))


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> Similarity:
    """The similarity that best maps ``source`` [N,3] onto ``target`` [N,3] (least squares)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise RetargetError(
            f"landmarks must be two matching [N, 3] point sets, got {source.shape} and {target.shape}"
        )
    if len(source) < 3:
        raise RetargetError(f"at least 3 landmarks are needed to align the face, got {len(source)}")
    if not (np.all(np.isfinite(source)) and np.all(np.isfinite(target))):
        raise RetargetError("a landmark position is NaN or infinite; pick the landmarks again")
    w = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s = w @ source
    mu_t = w @ target
    src = source - mu_s
    dst = target - mu_t
    var_s = float(w @ np.sum(src**2, axis=1))
    spread_t = float(w @ np.sum(dst**2, axis=1))
    for name, centred, var in (("template", src, var_s), ("picked", dst, spread_t)):
        sv = np.linalg.svd(centred * np.sqrt(w)[:, None], compute_uv=False)
        if var <= 1e-18 or sv[1] <= 1e-6 * sv[0]:
            raise RetargetError(
                f"the {name} landmarks are degenerate (all on one point or one line); pick landmarks "
                "that span the face: nose tip, chin, both mouth corners and eye corners"
            )
    cov = (dst * w[:, None]).T @ src
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1.0
    rotation = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix) / var_s)
    if scale <= 0:
        raise RetargetError(
            "the landmarks map the face onto its mirror image; check left/right landmark names"
        )
    translation = mu_t - scale * rotation @ mu_s
    return Similarity(rotation, scale, translation)
