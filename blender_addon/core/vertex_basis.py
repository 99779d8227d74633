"""Vertex mode: a take's per-frame vertex offsets as a handful of shape keys plus their weights.

Blender plays shape keys far faster than per-vertex keyframes, and a talking face lives in a
low-dimensional space, so the take's offsets `[T, V, 3]` are factorised as `weights [T, K] @
basis [K, V*3]` with a truncated SVD. The SVD is randomised (range finder + one power iteration)
so a 60 s take on a 20,000-vertex mesh factorises in well under a second. Each component is
scaled so its weights span [-1, 1], which keeps the shape-key sliders in a usable range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_KEYS = 24
DEFAULT_ENERGY = 0.999  # keep components until this share of the motion's energy is explained


@dataclass(frozen=True)
class VertexBasis:
    basis: np.ndarray  # [K, V, 3] float32 offsets at weight 1
    weights: np.ndarray  # [T, K] float32 in [-1, 1]
    explained: float  # share of the take's energy the K components reproduce

    @property
    def n_keys(self) -> int:
        return int(self.basis.shape[0])

    def reconstruct(self) -> np.ndarray:
        k, v, _ = self.basis.shape
        return (self.weights @ self.basis.reshape(k, v * 3)).reshape(-1, v, 3)


def compact_basis(
    offsets: np.ndarray,
    max_keys: int = DEFAULT_MAX_KEYS,
    energy: float = DEFAULT_ENERGY,
    seed: int = 0,
) -> VertexBasis:
    """Factorise `offsets [T, V, 3]`; deterministic for a given seed."""
    offsets = np.asarray(offsets, dtype=np.float32)
    if offsets.ndim != 3 or offsets.shape[2] != 3 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be [frames, vertices, 3], got {offsets.shape}")
    n_frames, n_vertices, _ = offsets.shape
    matrix = offsets.reshape(n_frames, n_vertices * 3)
    total = float(np.einsum("ij,ij->", matrix, matrix, dtype=np.float64))
    if total == 0.0:  # a silent take: one empty key keeps the take's structure uniform
        return VertexBasis(
            np.zeros((1, n_vertices, 3), np.float32), np.zeros((n_frames, 1), np.float32), 1.0
        )
    rank = min(max_keys, n_frames, n_vertices * 3)
    u, s, vt = _randomised_svd(matrix, rank, seed)
    cumulative = np.cumsum(s.astype(np.float64) ** 2) / total
    keep = int(min(rank, np.searchsorted(cumulative, energy) + 1))
    weights = u[:, :keep] * s[:keep]
    scale = np.abs(weights).max(axis=0)
    scale[scale == 0] = 1.0
    basis = (vt[:keep] * scale[:, None]).reshape(keep, n_vertices, 3)
    return VertexBasis(
        basis.astype(np.float32), (weights / scale).astype(np.float32), float(min(cumulative[keep - 1], 1.0))
    )


def _randomised_svd(matrix: np.ndarray, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_cols = matrix.shape
    sketch = min(rank + 8, n_rows, n_cols)
    if sketch >= min(n_rows, n_cols) // 2:  # small problems: the exact SVD is as fast
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        return u[:, :rank], s[:rank], vt[:rank]
    rng = np.random.default_rng(seed)
    probe = rng.standard_normal((n_cols, sketch)).astype(np.float32)
    range_basis, _ = np.linalg.qr(matrix @ probe)
    range_basis, _ = np.linalg.qr(matrix @ (matrix.T @ range_basis))  # one power iteration
    small = range_basis.T @ matrix  # [sketch, n_cols]
    u_small, s, vt = np.linalg.svd(small, full_matrices=False)
    u = range_basis @ u_small
    return u[:, :rank], s[:rank], vt[:rank]
