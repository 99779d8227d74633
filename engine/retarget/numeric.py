"""Sparse rows, graph searches and nearest neighbours in plain numpy.

Retargeting also runs inside a stock Blender, whose Python has numpy and nothing else, so the few
pieces of scipy it needs live here: a compressed-row sparse matrix (the correspondence weights),
connected components, shortest paths on a mesh, and neighbour queries (a sort-based grid of cells
for balls of a given radius, and k nearest as balls of a growing radius).
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

_DIRECT_POINTS = 1024  # up to this many points, k-nearest compares every pair (in blocks)
_BRUTE_FORCE_POINTS = 4096  # up to this many points, queries far from all of them compare every pair
_BALL_ATTEMPTS = 3  # ... after this many growing balls
_BLOCK_ENTRIES = 2_000_000  # distances per block
_PRODUCT_BLOCK_ENTRIES = 524_288  # sparse x dense: gathered entries per block (fits a CPU cache)


class SparseRows:
    """A compressed-row sparse matrix (scipy's CSR layout: ``data``, ``indices``, ``indptr``)."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]):
        self.data = np.asarray(data)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.shape = (int(shape[0]), int(shape[1]))
        if len(self.indptr) != self.shape[0] + 1 or not self.indptr[-1] == len(self.data) == len(
            self.indices
        ):
            raise ValueError(f"inconsistent sparse rows for shape {self.shape}")

    @classmethod
    def from_triplets(cls, rows, cols, values, shape: tuple[int, int]) -> SparseRows:
        """Entries (row, col, value); repeated positions add up, as in scipy's COO -> CSR."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        values = np.asarray(values)
        order = np.lexsort((cols, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        if len(rows):
            first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]
            starts = np.flatnonzero(first)
            values = np.add.reduceat(values, starts)
            rows, cols = rows[starts], cols[starts]
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=shape[0]))]
        return cls(values, cols, indptr, shape)

    @property
    def nnz(self) -> int:
        return len(self.data)

    def row_ids(self) -> np.ndarray:
        """The row of every stored entry."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def row_sums(self) -> np.ndarray:
        return np.bincount(self.row_ids(), weights=self.data, minlength=self.shape[0])

    def scale_rows(self, scale: np.ndarray) -> SparseRows:
        return SparseRows(
            self.data * np.asarray(scale)[self.row_ids()], self.indices, self.indptr, self.shape
        )

    def keep(self, mask: np.ndarray) -> SparseRows:
        """Only the entries where ``mask`` [nnz] is True."""
        rows = self.row_ids()[mask]
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=self.shape[0]))]
        return SparseRows(self.data[mask], self.indices[mask], indptr, self.shape)

    def without_zeros(self) -> SparseRows:
        return self.keep(self.data != 0)

    def astype(self, dtype) -> SparseRows:
        return SparseRows(self.data.astype(dtype), self.indices, self.indptr, self.shape)

    def rows(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(entries per row [len(which)], their columns concatenated) of the rows ``which``."""
        which = np.asarray(which, dtype=np.int64)
        counts = self.indptr[which + 1] - self.indptr[which]
        offsets = np.repeat(self.indptr[which] - np.r_[0, np.cumsum(counts)[:-1]], counts)
        return counts, self.indices[np.arange(int(counts.sum())) + offsets]

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.data.dtype)
        np.add.at(out, (self.row_ids(), self.indices), self.data)
        return out

    def __matmul__(self, other):
        if isinstance(other, SparseRows):
            return self._times_sparse(other)
        return self._times_dense(np.asarray(other))

    def _times_dense(self, dense: np.ndarray) -> np.ndarray:
        """Rows padded to the longest row (weight 0), then a block of rows at a time: gather the
        rows of ``dense`` they use and sum them weighted, in blocks that stay in cache."""
        if dense.shape[0] != self.shape[1]:
            raise ValueError(f"cannot multiply {self.shape} by {dense.shape}")
        flat = dense.reshape(dense.shape[0], -1)
        n_rows = self.shape[0]
        out = np.empty((n_rows, flat.shape[1]), dtype=np.result_type(self.data, dense))
        counts = np.diff(self.indptr)
        width = int(counts.max(initial=0))
        index = np.zeros((n_rows, width), dtype=np.int64)
        weight = np.zeros((n_rows, width), dtype=out.dtype)
        slot = np.arange(self.nnz) - np.repeat(self.indptr[:-1], counts)
        index[self.row_ids(), slot] = self.indices
        weight[self.row_ids(), slot] = self.data
        flat = flat.astype(out.dtype, copy=False)
        step = max(1, _PRODUCT_BLOCK_ENTRIES // max(flat.shape[1] * width, 1))
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            out[start:stop] = np.einsum("rk,rkc->rc", weight[start:stop], flat[index[start:stop]])
        return out.reshape(n_rows, *dense.shape[1:])

    def _times_sparse(self, other: SparseRows) -> SparseRows:
        if self.shape[1] != other.shape[0]:
            raise ValueError(f"cannot multiply {self.shape} by {other.shape}")
        counts, cols = other.rows(self.indices)
        rows = np.repeat(self.row_ids(), counts)
        starts = np.repeat(other.indptr[self.indices], counts)
        position = np.arange(len(cols)) - np.repeat(np.r_[0, np.cumsum(counts)[:-1]], counts) + starts
        values = np.repeat(self.data, counts) * other.data[position]
        return SparseRows.from_triplets(rows, cols, values, (self.shape[0], other.shape[1]))


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component label [n] of every vertex of the undirected graph with edges ``pairs`` [E, 2].

    Labels are the smallest vertex index in each component (so sorting them lists the components
    in order of their first vertex); found by hooking to the smaller label and pointer jumping.
    """
    labels = np.arange(n)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    while len(pairs):
        la, lb = labels[a], labels[b]
        if np.array_equal(la, lb):
            break
        low = np.minimum(la, lb)
        np.minimum.at(labels, la, low)
        np.minimum.at(labels, lb, low)
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
    return labels


def shortest_distances(
    n: int, pairs: np.ndarray, lengths: np.ndarray, sources: np.ndarray, limit: float = np.inf
) -> np.ndarray:
    """Distance [n] from the nearest of ``sources`` along undirected edges ``pairs`` (Dijkstra);
    inf where no path is at most ``limit`` long."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    lengths = np.asarray(lengths, dtype=np.float64)
    ends = np.r_[pairs[:, 0], pairs[:, 1]]
    graph = SparseRows.from_triplets(ends, np.r_[pairs[:, 1], pairs[:, 0]], np.r_[lengths, lengths], (n, n))
    indptr, indices, weights = graph.indptr.tolist(), graph.indices.tolist(), graph.data.tolist()
    dist = [np.inf] * n
    heap = []
    for source in np.unique(np.asarray(sources, dtype=np.int64)).tolist():
        dist[source] = 0.0
        heap.append((0.0, source))
    heapq.heapify(heap)
    while heap:
        d, vertex = heapq.heappop(heap)
        if d > dist[vertex]:
            continue
        for k in range(indptr[vertex], indptr[vertex + 1]):
            nd = d + weights[k]
            other = indices[k]
            if nd < dist[other] and nd <= limit:
                dist[other] = nd
                heapq.heappush(heap, (nd, other))
    return np.asarray(dist)


class NeighbourIndex:
    """Neighbour queries on a fixed point set [N, 3] (what the retargeting used scipy's KD-tree for)."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 3)

    def nearest(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(distances [Q, k], indices [Q, k]) of the ``k`` nearest points, nearest first.

        Ball queries of a growing radius: a query is answered once its ball holds ``k`` points
        (then no point outside can be nearer); the first radius expects about 2k points on a
        surface sampled as densely as this point set. Small sets, and queries still unanswered
        after a few rounds (far from a few thousand points), compare every pair instead.
        """
        queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
        k = min(int(k), len(self.points))
        dist = np.zeros((len(queries), k))
        index = np.zeros((len(queries), k), dtype=np.int64)
        if k == 0 or not len(queries):
            return dist, index
        if len(self.points) <= _DIRECT_POINTS:
            return self._nearest_by_blocks(queries, k)
        extent = np.sort(np.ptp(self.points, axis=0))[::-1]
        spacing = np.sqrt(max(extent[0] * extent[1], 1e-24) / len(self.points))
        radius = max(spacing * np.sqrt(2.0 * k / np.pi), 1e-9)
        todo = np.arange(len(queries))
        for attempt in itertools.count():
            if not len(todo):
                break
            if attempt == _BALL_ATTEMPTS and len(self.points) <= _BRUTE_FORCE_POINTS:
                dist[todo], index[todo] = self._nearest_by_blocks(queries[todo], k)  # far from all
                break
            q, p = self.within(queries[todo], radius)
            d = np.linalg.norm(self.points[p] - queries[todo][q], axis=1)
            order = np.lexsort((p, d, q))  # by query, then distance (ties: lower index first)
            q, p, d = q[order], p[order], d[order]
            counts = np.bincount(q, minlength=len(todo))
            done = counts >= k
            first = np.r_[0, np.cumsum(counts)[:-1]]
            pick = (first[done][:, None] + np.arange(k)[None, :]).reshape(-1)
            index[todo[done]] = p[pick].reshape(-1, k)
            dist[todo[done]] = d[pick].reshape(-1, k)
            todo = todo[~done]
            radius *= 2.0
        return dist, index

    def _nearest_by_blocks(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every distance, a block of queries at a time: fastest for a few thousand points, and
        its cost does not grow for queries far from them."""
        dist = np.empty((len(queries), k))
        index = np.empty((len(queries), k), dtype=np.int64)
        step = max(1, _BLOCK_ENTRIES // len(self.points))
        for start in range(0, len(queries), step):
            block = queries[start : start + step]
            diff = block[:, None, :] - self.points[None, :, :]
            d2 = np.einsum("qpc,qpc->qp", diff, diff)
            near = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(self.points) else None
            if near is None:
                near = np.broadcast_to(np.arange(k), (len(block), k))
            near_d2 = np.take_along_axis(d2, near, axis=1)
            order = np.argsort(near_d2, axis=1, kind="stable")
            index[start : start + step] = np.take_along_axis(near, order, axis=1)
            dist[start : start + step] = np.sqrt(np.take_along_axis(near_d2, order, axis=1))
        return dist, index

    def within(self, queries: np.ndarray, radii: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(query index, point index) pairs with the point at most the query's radius away.

        A grid of cells as wide as the largest radius, sorted by cell: each query looks in the 27
        cells around its own, found by binary search.
        """
        queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
        radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(queries),))
        if not len(queries) or not len(self.points):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        scale = np.floor(np.log2(np.maximum(radii, 1e-12)))
        if len(np.unique(scale)) > 1:  # cells sized per octave of radius: small balls stay cheap
            found = [self.within(queries[scale == s], radii[scale == s]) for s in np.unique(scale)]
            owners = [np.flatnonzero(scale == s) for s in np.unique(scale)]
            return (
                np.concatenate([owner[q] for owner, (q, _) in zip(owners, found)]),
                np.concatenate([p for _, p in found]),
            )
        cell = max(float(radii.max()), 1e-12)
        low = np.minimum(self.points.min(axis=0), queries.min(axis=0)) - cell
        size = (
            np.floor((np.maximum(self.points.max(axis=0), queries.max(axis=0)) - low) / cell).astype(np.int64)
            + 3
        )

        def key(cells: np.ndarray) -> np.ndarray:
            return (cells[:, 0] * size[1] + cells[:, 1]) * size[2] + cells[:, 2]

        keys = key(np.floor((self.points - low) / cell).astype(np.int64))
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        home = np.floor((queries - low) / cell).astype(np.int64)
        found_q, found_p = [], []
        for offset in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), axis=-1).reshape(-1, 3):
            target = key(home + offset)
            lo = np.searchsorted(sorted_keys, target, side="left")
            hi = np.searchsorted(sorted_keys, target, side="right")
            counts = hi - lo
            q = np.repeat(np.arange(len(queries)), counts)
            p = order[np.arange(int(counts.sum())) + np.repeat(lo - np.r_[0, np.cumsum(counts)[:-1]], counts)]
            diff = self.points[p] - queries[q]
            inside = np.einsum("ij,ij->i", diff, diff) <= radii[q] ** 2
            found_q.append(q[inside])
            found_p.append(p[inside])
        return np.concatenate(found_q), np.concatenate(found_p)


def band_order(n: int, pairs: np.ndarray) -> np.ndarray:
    """A vertex order that keeps edges' ends close together (reverse Cuthill-McKee): breadth-first
    from a far-out vertex, neighbours by rising degree, reversed. A matrix whose couplings follow
    the edges is then banded, which :func:`solve_banded_spd` exploits."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = SparseRows.from_triplets(
        np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]], np.ones(2 * len(pairs)), (n, n)
    )
    degree = np.diff(graph.indptr)
    seen = np.zeros(n, dtype=bool)
    order: list[int] = []

    def sweep(start: int, mark: np.ndarray) -> list[int]:
        mark[start] = True
        visited, queue = [], [start]
        while queue:
            visited.extend(queue)
            _, neighbours = graph.rows(np.asarray(queue))
            fresh = np.unique(neighbours[~mark[neighbours]])
            fresh = fresh[np.argsort(degree[fresh], kind="stable")]
            mark[fresh] = True
            queue = fresh.tolist()
        return visited

    for start in np.argsort(degree, kind="stable").tolist():  # one sweep per connected component
        if not seen[start]:
            far = sweep(start, seen.copy())[-1]  # start again from the far end: a thinner band
            order.extend(sweep(far, seen))
    return np.asarray(order[::-1], dtype=np.int64)


def solve_banded_spd(matrix: np.ndarray, rhs: np.ndarray, band: int, block: int = 64) -> np.ndarray:
    """Solve ``matrix @ x = rhs`` for a symmetric positive definite matrix that is zero farther than
    ``band`` from its diagonal: a blocked Cholesky factorisation that stays inside the band, so
    its cost grows with size x band^2, not size^3 (and needs no fast BLAS)."""
    a = np.array(matrix, dtype=np.float64)
    size = len(a)
    factors = []
    for k0 in range(0, size, block):
        k1 = min(k0 + block, size)
        end = min(k1 + band, size)
        diagonal = np.linalg.cholesky(a[k0:k1, k0:k1])
        below = np.linalg.solve(diagonal, a[k1:end, k0:k1].T).T
        a[k1:end, k1:end] -= below @ below.T
        factors.append((k0, k1, end, diagonal, below))
    y = np.array(rhs, dtype=np.float64)
    for k0, k1, end, diagonal, below in factors:
        y[k0:k1] = np.linalg.solve(diagonal, y[k0:k1])
        y[k1:end] -= below @ y[k0:k1]
    for k0, k1, end, diagonal, below in reversed(factors):
        y[k0:k1] = np.linalg.solve(diagonal.T, y[k0:k1] - below.T @ y[k1:end])
    return y
