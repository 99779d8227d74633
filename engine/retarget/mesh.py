"""Triangle-mesh geometry the retargeting steps share: validation, normals, closest points on triangles.

Pure numpy and vectorised, because user heads have tens of thousands of vertices.
"""

from __future__ import annotations

import hashlib

import numpy as np

from engine.retarget.errors import RetargetError
from engine.retarget.numeric import NeighbourIndex, SparseRows

MIN_VERTICES = 50  # below this a mesh cannot carry a face


def check_mesh(
    vertices: np.ndarray, faces: np.ndarray, what: str = "mesh", min_vertices: int = MIN_VERTICES
) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 vertices [N,3] and int64 triangles [F,3] (raises RetargetError otherwise)."""
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise RetargetError(f"{what}: vertices must be [N, 3], got shape {vertices.shape}")
    if vertices.shape[0] < min_vertices:
        raise RetargetError(
            f"{what} has only {vertices.shape[0]} vertices; it needs at least {min_vertices} "
            "(select the head mesh, not a proxy or an empty object)"
        )
    if not np.all(np.isfinite(vertices)):
        raise RetargetError(f"{what} has NaN or infinite vertex positions; fix or re-import the mesh")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise RetargetError(
            f"{what}: faces must be triangles [F, 3], got shape {faces.shape} (triangulate polygons first)"
        )
    if not np.issubdtype(faces.dtype, np.integer):
        raise RetargetError(f"{what}: faces must be integer vertex indices, got {faces.dtype}")
    if faces.min() < 0 or faces.max() >= vertices.shape[0]:
        raise RetargetError(f"{what}: a face refers to a vertex that does not exist; the mesh is corrupt")
    vertices = vertices.astype(np.float64)
    faces = faces.astype(np.int64)
    extent = np.ptp(vertices, axis=0)
    if np.sort(extent)[1] <= 1e-9 * max(extent.max(), 1e-30):
        raise RetargetError(f"{what} is flat or collapsed to a line (extent {extent}); it cannot be a head")
    return vertices, faces


def mesh_hash(vertices: np.ndarray, faces: np.ndarray, extra: str = "") -> str:
    """Stable key of positions + topology (+ settings) for the correspondence cache."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(vertices, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    digest.update(extra.encode())
    return digest.hexdigest()[:32]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted (un-normalised) triangle normals [F,3]."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return np.cross(b - a, c - a)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals [N,3] (area-weighted); isolated vertices get zero."""
    fn = face_normals(vertices, faces)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], fn)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _edge_keys(faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Every triangle side as one int64 key ``i * n + j`` (i < j); 1-D keys sort far faster than rows."""
    n = int(faces.max()) + 1
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    return lo * n + hi, n


def edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges [E,2] (i < j)."""
    keys, n = _edge_keys(faces)
    keys = np.unique(keys)
    return np.stack([keys // n, keys % n], axis=1)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by exactly one triangle [B,2]: the rims of holes (eye sockets, an open mouth)."""
    keys, n = _edge_keys(faces)
    keys, counts = np.unique(keys, return_counts=True)
    keys = keys[counts == 1]
    return np.stack([keys // n, keys % n], axis=1)


def vertex_faces(faces: np.ndarray, n_vertices: int) -> SparseRows:
    """[N, F] incidence: row i lists the triangles around vertex i."""
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return SparseRows.from_triplets(rows, cols, np.ones(len(rows), dtype=np.int8), (n_vertices, len(faces)))


def closest_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights [P,3] of the closest point on triangle (a,b,c)[P] to each point [P,3].

    Region tests after Ericson, *Real-Time Collision Detection* 5.1.5, evaluated for all pairs at once.
    """
    ab, ac, ap = b - a, c - a, points - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = points - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = points - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        bary = np.stack([1.0 - v - w, v, w], axis=1)  # interior
        # Edges.
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    on_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    bary[on_bc] = np.stack([np.zeros(on_bc.sum()), 1 - t_bc[on_bc], t_bc[on_bc]], axis=1)
    bary[on_ac] = np.stack([1 - t_ac[on_ac], np.zeros(on_ac.sum()), t_ac[on_ac]], axis=1)
    bary[on_ab] = np.stack([1 - t_ab[on_ab], t_ab[on_ab], np.zeros(on_ab.sum())], axis=1)
    # Vertices (checked last so they win over the edge cases they border).
    at_a = (d1 <= 0) & (d2 <= 0)
    at_b = (d3 >= 0) & (d4 <= d3)
    at_c = (d6 >= 0) & (d5 <= d6)
    bary[at_a] = (1.0, 0.0, 0.0)
    bary[at_b] = (0.0, 1.0, 0.0)
    bary[at_c] = (0.0, 0.0, 1.0)
    # Degenerate triangles: fall back to the nearest corner.
    bad = ~np.all(np.isfinite(bary), axis=1)
    if bad.any():
        dists = np.stack(
            [np.linalg.norm(points[bad] - x[bad], axis=1) for x in (a, b, c)],
            axis=1,
        )
        bary[bad] = np.eye(3)[np.argmin(dists, axis=1)]
    return bary


class SurfaceQuery:
    """Closest points on a triangle mesh, optionally restricted per query to allowed triangles.

    Candidates are the triangles around the ``k`` nearest vertices (a neighbour index), then an exact
    point-triangle test picks the best; exact for any reasonable mesh, and vectorised.
    """

    def __init__(
        self, vertices: np.ndarray, faces: np.ndarray, k: int = 8, by_centroid: bool = False
    ) -> None:
        """``by_centroid``: candidates are the ``k`` triangles with the nearest centroids instead of
        the triangles around the ``k`` nearest vertices; fewer pairs, for fairly regular meshes
        such as the template queried by a dense head."""
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64)
        self.by_centroid = by_centroid
        if by_centroid:
            self._tree = NeighbourIndex(self.vertices[self.faces].mean(axis=1))
            self.k = int(min(k, len(self.faces)))
        else:
            used = np.unique(self.faces)
            self._used = used
            self._tree = NeighbourIndex(self.vertices[used])
            self._vf = vertex_faces(self.faces, len(self.vertices))
            self.k = int(min(k, len(used)))

    def query(
        self, points: np.ndarray, allowed: np.ndarray | None = None, chunk: int = 20000
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(triangle index [P], barycentric [P,3], distance [P]) of the closest surface point.

        ``allowed`` is an optional boolean [F] mask of usable triangles, the same for all points
        (callers with per-point restrictions query each group separately).
        """
        points = np.asarray(points, dtype=np.float64)
        tri_out = np.empty(len(points), dtype=np.int64)
        bary_out = np.empty((len(points), 3))
        dist_out = np.empty(len(points))
        for start in range(0, len(points), chunk):
            sl = slice(start, start + chunk)
            tri, bary, dist = self._query_chunk(points[sl], allowed)
            tri_out[sl], bary_out[sl], dist_out[sl] = tri, bary, dist
        return tri_out, bary_out, dist_out

    def _query_chunk(self, points: np.ndarray, allowed: np.ndarray | None):
        _, nearest = self._tree.nearest(points, k=self.k)
        if self.by_centroid:
            pair_point = np.repeat(np.arange(len(points)), nearest.shape[1])
            pair_tri = nearest.reshape(-1).astype(np.int64)
        else:
            # Candidate (point, triangle) pairs from the incidence rows of the nearest vertices.
            counts, pair_tri = self._vf.rows(self._used[nearest].reshape(-1))
            point_of_row = np.repeat(np.arange(len(points)), nearest.shape[1])
            pair_point = np.repeat(point_of_row, counts)
        if allowed is not None:
            keep = allowed[pair_tri]
            pair_point, pair_tri = pair_point[keep], pair_tri[keep]
        tri_v = self.faces[pair_tri]
        a, b, c = (self.vertices[tri_v[:, i]] for i in range(3))
        p = points[pair_point]
        bary = closest_on_triangles(p, a, b, c)
        closest = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
        dist = np.einsum("ij,ij->i", p - closest, p - closest)
        # Pairs are grouped by point (in order): the best pair per group via reduceat.
        tri = np.full(len(points), -1, dtype=np.int64)
        out_bary = np.zeros((len(points), 3))
        out_dist = np.full(len(points), np.inf)
        if len(pair_point):
            starts = np.flatnonzero(np.r_[True, pair_point[1:] != pair_point[:-1]])
            found = pair_point[starts]
            best_d = np.minimum.reduceat(dist, starts)
            is_best = dist <= best_d[np.searchsorted(found, pair_point)]
            positions = np.where(is_best, np.arange(len(dist)), len(dist))
            best = np.minimum.reduceat(positions, starts)
            tri[found] = pair_tri[best]
            out_bary[found] = bary[best]
            out_dist[found] = np.sqrt(dist[best])
        missing = tri < 0
        if missing.any():
            tri[missing], out_bary[missing], out_dist[missing] = self._brute(points[missing], allowed)
        return tri, out_bary, out_dist

    def _brute(self, points: np.ndarray, allowed: np.ndarray | None):
        """Exhaustive fallback for the rare point whose nearby triangles were all disallowed."""
        tris = np.arange(len(self.faces)) if allowed is None else np.flatnonzero(allowed)
        if tris.size == 0:
            raise RetargetError(
                "no triangle is allowed for the closest-point query; the template mask is empty"
            )
        centroids = self.vertices[self.faces[tris]].mean(axis=1)
        kk = min(32, len(tris))
        _, idx = NeighbourIndex(centroids).nearest(points, k=kk)
        pair_point = np.repeat(np.arange(len(points)), kk)
        pair_tri = tris[idx.reshape(-1)]
        tri_v = self.faces[pair_tri]
        a, b, c = (self.vertices[tri_v[:, i]] for i in range(3))
        bary = closest_on_triangles(points[pair_point], a, b, c)
        closest = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
        dist = np.linalg.norm(points[pair_point] - closest, axis=1).reshape(len(points), kk)
        pick = np.argmin(dist, axis=1)
        rows = np.arange(len(points)) * kk + pick
        return pair_tri[rows], bary[rows], dist[np.arange(len(points)), pick]
