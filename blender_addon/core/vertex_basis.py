"""Vertex mode: a take's per-frame vertex offsets as a handful of shape keys plus their weights.

Blender plays shape keys far faster than per-vertex keyframes, and a talking face lives in a
low-dimensional space, so the take's offsets `[T, V, 3]` are factorised as `weights [T, K] @
basis [K, V*3]` with a truncated, randomised SVD on evenly spaced frames followed by one exact
projection of every frame; touching the big take matrix dominates the cost, and this touches it
about twice. Each component is scaled so its weights span [-1, 1], which keeps the shape-key
sliders in a usable range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_KEYS = 16  # speech needs ~10 (measured on the synthetic ground truth); cost grows linearly
SAMPLE_FRAMES = 600  # frames the components are estimated on (20 s at 30 fps)
DEFAULT_ENERGY = 0.99999  # share of the motion's energy to keep: ~0.3% RMS error, ~11 keys for speech


@dataclass(frozen=True)
class VertexBasis:
    basis: np.ndarray  # [K, V, 3] float32 offsets at weight 1
    weights: np.ndarray  # [T, K] float32 in [-1, 1]
    explained: float  # share of the motion's energy the K components reproduce (on the sampled frames)

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
    """Factorise `offsets [T, V, 3]`; deterministic for a given seed.

    The spatial components are found on at most SAMPLE_FRAMES evenly spaced frames (a face
    repeats its shapes many times a minute), then every frame's weights are its exact
    least-squares projection onto them, so no frame is approximated by the sampling itself.
    """
    offsets = np.asarray(offsets, dtype=np.float32)
    if offsets.ndim != 3 or offsets.shape[2] != 3 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be [frames, vertices, 3], got {offsets.shape}")
    n_frames, n_vertices, _ = offsets.shape
    matrix = offsets.reshape(n_frames, n_vertices * 3)
    stride = max(1, n_frames // SAMPLE_FRAMES)
    sample = np.ascontiguousarray(matrix[::stride])
    total = _energy(sample)
    if total == 0.0 and stride > 1:  # motion only between the samples: use every frame
        sample, total = matrix, _energy(matrix)
    if total == 0.0:  # a silent take: one empty key keeps the take's structure uniform
        return VertexBasis(np.zeros((1, n_vertices, 3), np.float32), np.zeros((n_frames, 1), np.float32), 1.0)
    rank = min(max_keys, sample.shape[0], n_vertices * 3)
    _, s, vt = _randomised_svd(sample, rank, seed)
    cumulative = np.cumsum(s.astype(np.float64) ** 2) / total
    keep = min(rank, int(np.searchsorted(cumulative, energy)) + 1)
    components = vt[:keep]  # orthonormal rows
    weights = matrix @ components.T
    scale = np.abs(weights).max(axis=0)
    scale[scale == 0] = 1.0
    basis = (components * scale[:, None]).reshape(keep, n_vertices, 3)
    return VertexBasis(
        basis.astype(np.float32), (weights / scale).astype(np.float32), float(min(cumulative[keep - 1], 1.0))
    )


def _energy(matrix: np.ndarray) -> float:
    """Sum of squares: per-frame sums in float32 (short, accurate), then float64 across frames; one
    float32 dot over tens of millions of values is off by ~1e-4, the size of the threshold itself."""
    return float(np.einsum("ij,ij->i", matrix, matrix).sum(dtype=np.float64))


def _randomised_svd(matrix: np.ndarray, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two passes over the data (sketch, project): the take matrix is large and touching it
    dominates the cost; face motion's spectrum decays fast enough that no power iteration is
    needed (the kept energy is reported, not assumed)."""
    n_rows, n_cols = matrix.shape
    sketch = min(rank + 4, n_rows, n_cols)
    if sketch >= min(n_rows, n_cols) // 2:  # small problems: the exact SVD is as fast
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        return u[:, :rank], s[:rank], vt[:rank]
    rng = np.random.default_rng(seed)
    probe = rng.standard_normal((n_cols, sketch)).astype(np.float32)
    range_basis, _ = np.linalg.qr(matrix @ probe)
    projected = range_basis.T @ matrix  # [sketch, n_cols], wide: decompose via its small Gram matrix
    gram = (projected @ projected.T).astype(np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:rank]
    s = np.sqrt(np.maximum(eigenvalues[order], 0.0))
    u_small = eigenvectors[:, order]
    safe = np.where(s > s[0] * 1e-7, s, np.inf) if s[0] > 0 else np.full_like(s, np.inf)
    vt = ((u_small.T.astype(np.float32) @ projected) / safe[:, None].astype(np.float32)).astype(np.float32)
    u = (range_basis @ u_small.astype(np.float32)).astype(np.float32)
    return u, s.astype(np.float32), vt
