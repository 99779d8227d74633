"""engine.retarget.numeric (numpy only, for a stock Blender) against scipy, which it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import connected_components as scipy_components
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from engine.face.template import load_template
from engine.retarget.mesh import edges
from engine.retarget.numeric import (
    NeighbourIndex,
    SparseRows,
    band_order,
    connected_components,
    shortest_distances,
    solve_banded_spd,
)

RNG = np.random.default_rng(7)


def _pair(rows: int, cols: int, entries: int, dtype=np.float64):
    r, c = RNG.integers(0, rows, entries), RNG.integers(0, cols, entries)
    v = RNG.standard_normal(entries).astype(dtype)
    return SparseRows.from_triplets(r, c, v, (rows, cols)), sparse.csr_matrix((v, (r, c)), shape=(rows, cols))


def test_sparse_rows_match_scipy_csr():
    ours, theirs = _pair(60, 40, 400)  # repeated positions add up
    theirs.sum_duplicates()
    assert np.array_equal(ours.indptr, theirs.indptr) and np.array_equal(ours.indices, theirs.indices)
    assert np.allclose(ours.toarray(), theirs.toarray())
    assert np.allclose(ours.row_sums(), np.asarray(theirs.sum(axis=1)).ravel())
    dense = RNG.standard_normal((40, 5, 3))
    assert np.allclose(ours @ dense, (theirs @ dense.reshape(40, -1)).reshape(60, 5, 3))
    other, other_scipy = _pair(40, 30, 200)
    assert np.allclose((ours @ other).toarray(), (theirs @ other_scipy).toarray())
    counts, cols = ours.rows(np.array([5, 2, 5]))
    picked = theirs[[5, 2, 5]]
    assert np.array_equal(counts, np.diff(picked.indptr)) and np.array_equal(cols, picked.indices)
    kept = ours.keep(ours.data > 0)
    assert np.allclose(kept.toarray(), np.where(theirs.toarray() > 0, theirs.toarray(), 0))


def test_float32_product_stays_float32():
    ours, theirs = _pair(500, 468, 2000, np.float32)
    dense = RNG.standard_normal((468, 90)).astype(np.float32)
    out = ours @ dense
    assert out.dtype == np.float32 and np.allclose(out, theirs @ dense, atol=1e-5)


def test_components_and_shortest_paths_match_scipy():
    pairs = RNG.integers(0, 3000, (2500, 2))
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(3000, 3000))
    _, expected = scipy_components(graph, directed=False)
    _, ours = np.unique(connected_components(3000, pairs), return_inverse=True)
    assert np.array_equal(ours, expected)  # same components, listed in the same order

    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    lengths = RNG.random(len(pairs)) + 0.01
    both = (np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]])
    weighted = sparse.csr_matrix((np.r_[lengths, lengths], both), shape=(3000, 3000))
    sources = np.array([3, 40, 900])
    expected = dijkstra(weighted, indices=sources, min_only=True, limit=2.0)
    assert np.allclose(shortest_distances(3000, pairs, lengths, sources, limit=2.0), expected)
    assert np.isinf(shortest_distances(5, np.empty((0, 2)), [], [])).all()


def _shell(count: int, radius: float = 0.1) -> np.ndarray:
    v = RNG.standard_normal((count, 3))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("points", "queries", "k"),
    [
        (_shell(20000), _shell(468) * 1.02, 8),  # the fit: template points on a dense head
        (_shell(900), _shell(5000) * 1.5, 6),  # the correspondence: a dense head on the template
        (_shell(3000), RNG.standard_normal((50, 3)), 32),  # far from every point
        (_shell(5), _shell(20), 5),  # as many neighbours as points
    ],
)
def test_nearest_matches_a_kd_tree(points, queries, k):
    dist, index = NeighbourIndex(points).nearest(queries, k)
    expected_dist, expected_index = cKDTree(points).query(queries, k=k)
    assert np.allclose(dist, expected_dist.reshape(len(queries), k))
    assert (index == expected_index.reshape(len(queries), k)).mean() > 0.999  # ties may swap


def test_balls_match_a_kd_tree():
    points = RNG.random((8000, 3))
    radii = RNG.random(8000) ** 3 * 0.05 + 0.002  # radii over several octaves
    query, point = NeighbourIndex(points).within(points, radii)
    balls = cKDTree(points).query_ball_point(points, radii)
    expected = {(q, p) for q, ball in enumerate(balls) for p in ball}
    assert set(zip(query.tolist(), point.tolist())) == expected and len(query) == len(expected)


def test_banded_solve_of_the_template_system():
    template = load_template()
    e, n = edges(template.faces.astype(np.int64)), template.n_vertices
    order = band_order(n, e)
    assert np.array_equal(np.sort(order), np.arange(n))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    bandwidth = int(np.abs(position[e[:, 0]] - position[e[:, 1]]).max())
    assert bandwidth < int(np.abs(e[:, 0] - e[:, 1]).max()) / 3
    pe = position[e]
    laplacian = np.zeros((n, n))
    np.add.at(laplacian, (pe[:, 0], pe[:, 0]), 1.0)
    np.add.at(laplacian, (pe[:, 1], pe[:, 1]), 1.0)
    np.add.at(laplacian, (pe[:, 0], pe[:, 1]), -1.0)
    np.add.at(laplacian, (pe[:, 1], pe[:, 0]), -1.0)
    matrix = np.kron(2500.0 * laplacian, np.eye(4)) + 1e-8 * np.eye(4 * n)
    homog = np.c_[RNG.random((n, 3)), np.ones(n)]
    for i in range(n):
        matrix[4 * i : 4 * i + 4, 4 * i : 4 * i + 4] += np.outer(homog[i], homog[i])
    rhs = RNG.standard_normal((4 * n, 3))
    solved = solve_banded_spd(matrix, rhs, 4 * bandwidth + 3)
    expected = np.linalg.solve(matrix, rhs)
    assert np.abs(solved - expected).max() <= 1e-8 * np.abs(expected).max()
