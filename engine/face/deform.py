"""Smooth handle-based deformation of a triangle mesh (bi-Laplacian energy minimisation).

Blendshapes and the lip seal are described by a few handle displacements plus a region that may
move; every other vertex stays put. Minimising the squared uniform Laplacian of the displacement
field gives the smoothest field that meets those constraints, and because it follows mesh edges
it respects holes: moving the upper lip never drags the lower lip across the open mouth.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def adjacency(faces: np.ndarray, n_vertices: int) -> list[set[int]]:
    """One-ring neighbour sets from a triangle list."""
    rings: list[set[int]] = [set() for _ in range(n_vertices)]
    for a, b, c in np.asarray(faces, dtype=np.int64):
        rings[a].update((b, c))
        rings[b].update((a, c))
        rings[c].update((a, b))
    return rings


def uniform_laplacian(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Dense ``[V,V]`` graph Laplacian ``L = I - D^-1 A`` (small meshes only: V is 468 here)."""
    lap = np.eye(n_vertices)
    for i, ring in enumerate(adjacency(faces, n_vertices)):
        if ring:
            lap[i, list(ring)] -= 1.0 / len(ring)
    return lap


def grow(rings: list[set[int]], seed: Iterable[int], steps: int) -> set[int]:
    """``seed`` plus every vertex within ``steps`` edges of it."""
    out = set(int(i) for i in seed)
    frontier = set(out)
    for _ in range(steps):
        frontier = {j for i in frontier for j in rings[i]} - out
        out |= frontier
    return out


def smooth_deform(
    bilaplacian: np.ndarray,
    handles: np.ndarray,
    handle_offsets: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
    """Displacement ``[V,3]``: handles get ``handle_offsets``, ``free`` vertices are solved, the rest is 0.

    ``bilaplacian`` is ``L.T @ L`` for the mesh. Vertices neither in ``handles`` nor ``free`` are held
    fixed, which is what bounds the influence of a shape.
    """
    n = bilaplacian.shape[0]
    handles = np.asarray(handles, dtype=np.int64)
    offsets = np.zeros((n, 3))
    offsets[handles] = np.asarray(handle_offsets, dtype=np.float64).reshape(len(handles), 3)
    free_idx = np.setdiff1d(np.asarray(free, dtype=np.int64), handles)
    if free_idx.size:
        known = np.setdiff1d(np.arange(n), free_idx)
        system = bilaplacian[np.ix_(free_idx, free_idx)]
        rhs = -bilaplacian[np.ix_(free_idx, known)] @ offsets[known]
        offsets[free_idx] = np.linalg.solve(system, rhs)
    return offsets
