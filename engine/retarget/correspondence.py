"""Dense correspondence from a user's head to the template, and motion transfer through it.

Each user vertex takes the motion of its closest point on the fitted template surface
(barycentric weights of one template triangle), rotated and scaled into the user's frame. All of
that is one sparse matrix ``[V_user, 468]``, so a whole take is a single sparse product.

Lips: a user vertex above the fitted mouth line may only attach to triangles free of lower-lip
vertices, and a vertex below it only to triangles free of upper-lip vertices, so an upper lip never
picks up lower-lip motion (and the reverse) even where the lips touch or the user's mouth is open.
Vertices far from the face (back of the head, ears, neck, mouth bag) fade out smoothly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic_file import atomic_output
from engine.retarget.align import Similarity
from engine.retarget.errors import RetargetError
from engine.retarget.mesh import SurfaceQuery, edges, vertex_normals
from engine.retarget.numeric import NeighbourIndex, SparseRows, shortest_distances

LIP_NONE, LIP_UPPER, LIP_LOWER = 0, 1, 2
FORMAT_VERSION = 1
# Smoothing spreads a vertex over many template vertices; the few largest carry nearly all of the
# weight, and a short row keeps applying a take a single cheap sparse product.
MAX_WEIGHTS_PER_VERTEX = 4
# Template metres: a point this much nearer one fitted lip than the other is not yet decided by it,
# since touching lips (and fit error) put both lips' surfaces about equally near.
LIP_TIE_DISTANCE = 3e-4
# How much nearer (along the surface, relative) one lip must be than the other to decide a side.
GEODESIC_CONTRAST = 0.25


@dataclass(frozen=True)
class TransferSettings:
    full_weight_distance: float = 0.004  # template metres: vertices this close move fully
    zero_weight_distance: float = 0.015  # ... and from this far on not at all
    smooth_radius: float = 0.35  # in local template edge lengths; 0 turns smoothing off


@dataclass
class Correspondence:
    """How one user mesh follows the template. Build with :func:`engine.retarget.fit_head`."""

    matrix: SparseRows  # [V_user, 468] motion weights (barycentric x falloff, smoothed)
    similarity: Similarity  # template frame -> user frame
    fitted_template: np.ndarray  # [468, 3] template fitted to the user surface, template frame
    lip_class: np.ndarray  # [V_user] int8: 0 none, 1 upper lip side, 2 lower lip side
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # user frame
    mesh_key: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.matrix.shape[0])

    def transfer(self, offsets: np.ndarray) -> np.ndarray:
        """Template offsets [T, 468, 3] (or [468, 3]) -> user vertex offsets [T, V_user, 3] float32.

        The result for a take is a view in frame-major order over one buffer, so large takes are
        not copied twice; call ``np.ascontiguousarray`` on a frame if an API needs it contiguous.
        """
        offsets = np.asarray(offsets, dtype=np.float32)
        single = offsets.ndim == 2
        if single:
            offsets = offsets[None]
        n_tpl = self.matrix.shape[1]
        if offsets.ndim != 3 or offsets.shape[1:] != (n_tpl, 3):
            raise RetargetError(f"template offsets must be [frames, {n_tpl}, 3], got shape {offsets.shape}")
        rot = (self.similarity.scale * self.similarity.rotation).astype(np.float32)
        frames = offsets.shape[0]
        # [468, T, 3] rotated into the user frame, then one sparse product for every frame at once.
        moved = np.ascontiguousarray((offsets @ rot.T).transpose(1, 0, 2)).reshape(n_tpl, frames * 3)
        out = (self.matrix @ moved).reshape(self.n_vertices, frames, 3).transpose(1, 0, 2)
        return out[0] if single else out

    def arkit_shapes(self, basis: np.ndarray | None = None) -> np.ndarray:
        """The template's 52 ARKit shapes carried over: deltas [52, V_user, 3] for shape keys."""
        if basis is None:
            from engine.arkit.basis import arkit_basis

            basis = arkit_basis()
        return np.ascontiguousarray(self.transfer(basis))

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        m = self.matrix
        info = {
            "version": FORMAT_VERSION,
            "similarity": self.similarity.as_dict(),
            "landmarks": {k: np.asarray(v).tolist() for k, v in self.landmarks.items()},
            "mesh_key": self.mesh_key,
            "shape": list(m.shape),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, "fit cache") as temporary, temporary.open("wb") as handle:
            np.savez_compressed(
                handle,
                data=m.data.astype(np.float32),
                indices=m.indices.astype(np.int32),
                indptr=m.indptr.astype(np.int64),
                fitted_template=self.fitted_template.astype(np.float64),
                lip_class=self.lip_class.astype(np.int8),
                info=np.frombuffer(json.dumps(info).encode(), dtype=np.uint8),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Correspondence:
        try:
            with np.load(Path(path)) as data:
                info = json.loads(data["info"].tobytes().decode())
                if info.get("version") != FORMAT_VERSION:
                    raise RetargetError(f"{path} was written by another DualFace version; fit the mesh again")
                matrix = SparseRows(data["data"], data["indices"], data["indptr"], tuple(info["shape"]))
                return cls(
                    matrix=matrix,
                    similarity=Similarity.from_dict(info["similarity"]),
                    fitted_template=data["fitted_template"],
                    lip_class=data["lip_class"],
                    landmarks={k: np.asarray(v) for k, v in info["landmarks"].items()},
                    mesh_key=info.get("mesh_key", ""),
                )
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, RetargetError):
                raise
            raise RetargetError(f"cannot read correspondence {path}: {exc}; delete it and fit again") from exc


def mouth_line(fitted: np.ndarray, inner_pairs: np.ndarray, corners: tuple[int, int]) -> np.ndarray:
    """Points (x, z) [K+2, 2] of the fitted mouth line, sorted by x (template frame)."""
    mids = 0.5 * (fitted[inner_pairs[:, 0]] + fitted[inner_pairs[:, 1]])
    pts = np.vstack([fitted[corners[0]], mids, fitted[corners[1]]])[:, [0, 2]]
    return pts[np.argsort(pts[:, 0])]


def classify_lips(
    points: np.ndarray,
    faces: np.ndarray,
    line: np.ndarray,
    near_line_side=None,
    band: float = 0.001,
) -> np.ndarray:
    """Lip side of points [P,3] (template frame): above the mouth line, below it, or beside the mouth.

    Farther than ``band`` from the line the height decides. Closer, where lips touch or curl, the
    path along the surface decides: no edge crosses a mouth slit, so a point is much nearer (along
    the mesh) to its own lip than to the other. Where both are about as near (at the corners, where
    the lips join), ``near_line_side(indices) -> +1/-1/0`` (which fitted template lip is nearer)
    breaks the tie.
    """
    x, z = points[:, 0], points[:, 2]
    inside = (x > line[0, 0]) & (x < line[-1, 0])
    dz = z - np.interp(x, line[:, 0], line[:, 1])
    side = np.where(dz >= 0, LIP_UPPER, LIP_LOWER).astype(np.int8)
    near = inside & (np.abs(dz) <= band)
    if near.any():
        e = edges(np.asarray(faces, dtype=np.int64))
        # Paths stay between the mouth corners: beyond them the lips join, inside only a slit
        # (where there is one) separates them.
        e = e[inside[e[:, 0]] & inside[e[:, 1]]]
        length = np.linalg.norm(points[e[:, 0]] - points[e[:, 1]], axis=1) + 1e-12
        n = len(points)
        limit = 30 * band
        far_up = np.flatnonzero(inside & (dz > band))
        far_low = np.flatnonzero(inside & (dz < -band))
        to_up = shortest_distances(n, e, length, far_up, limit)
        to_low = shortest_distances(n, e, length, far_low, limit)
        idx = np.flatnonzero(near)
        g_up, g_low = np.minimum(to_up[idx], limit), np.minimum(to_low[idx], limit)
        contrast = (g_low - g_up) / np.maximum(g_low + g_up, 1e-12)
        side[idx[contrast > GEODESIC_CONTRAST]] = LIP_UPPER
        side[idx[contrast < -GEODESIC_CONTRAST]] = LIP_LOWER
        unsure = idx[np.abs(contrast) <= GEODESIC_CONTRAST]
        if unsure.size and near_line_side is not None:
            hint = np.asarray(near_line_side(unsure))
            side[unsure[hint > 0]] = LIP_UPPER
            side[unsure[hint < 0]] = LIP_LOWER
    out = np.full(len(points), LIP_NONE, dtype=np.int8)
    out[inside] = side[inside]
    return out


def _falloff(dist: np.ndarray, settings: TransferSettings) -> np.ndarray:
    r0, r1 = settings.full_weight_distance, settings.zero_weight_distance
    t = np.clip((dist - r0) / max(r1 - r0, 1e-12), 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)  # smoothstep down


def _smoothing(
    points: np.ndarray,
    faces: np.ndarray,
    lip_class: np.ndarray,
    radius: np.ndarray,
    active: np.ndarray,
) -> SparseRows:
    """Row-normalised Gaussian averaging over nearby vertices on the same lip side, facing the same way.

    ``radius`` [P] is per vertex (a share of the local template edge length), so the dense lips and
    eyelids are smoothed less than the cheeks. Only ``active`` vertices (those that move) take
    part; the rest keep an identity row.
    """
    n = len(points)
    idx = np.flatnonzero(active)
    rows, cols, vals = np.arange(n), np.arange(n), np.ones(n)
    if idx.size > 1:
        near_query, near_point = NeighbourIndex(points[idx]).within(points[idx], radius[idx])
        i, j = idx[near_query], idx[near_point]
        normals = vertex_normals(points, faces)
        across_mouth = (
            (lip_class[i] != lip_class[j]) & (lip_class[i] != LIP_NONE) & (lip_class[j] != LIP_NONE)
        )
        facing = np.einsum("ij,ij->i", normals[i], normals[j]) > 0.5
        keep = facing & ~across_mouth & (i != j)
        i, j = i[keep], j[keep]
        diff = points[i] - points[j]
        d2 = np.einsum("ij,ij->i", diff, diff)
        # The smaller of the two radii: a vertex beside a lid or lip margin must not reach across it.
        r = np.minimum(radius[i], radius[j])
        inside_both = d2 < r * r
        i, j, d2, r = i[inside_both], j[inside_both], d2[inside_both], r[inside_both]
        w = np.exp(-d2 / (2 * (0.5 * r) ** 2))
        rows, cols, vals = np.r_[i, rows], np.r_[j, cols], np.r_[w, vals]
    k = SparseRows.from_triplets(rows, cols, vals, (n, n))
    return k.scale_rows(1.0 / k.row_sums())


def _keep_largest(matrix: SparseRows, k: int) -> SparseRows:
    """Each row's ``k`` largest entries, rescaled to the row's original sum."""
    matrix = matrix.without_zeros()
    counts = np.diff(matrix.indptr)
    if counts.max(initial=0) <= k:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((-matrix.data, rows))
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    keep = np.zeros(len(order), dtype=bool)
    keep[order[rank < k]] = True
    total = np.bincount(rows, weights=matrix.data, minlength=matrix.shape[0])
    pruned = matrix.keep(keep)
    kept = pruned.row_sums()
    scale = np.divide(total, kept, out=np.zeros_like(total), where=kept > 0)
    return pruned.scale_rows(scale)


def _forbid_other_lip(
    matrix: SparseRows, lip_class: np.ndarray, is_upper: np.ndarray, is_lower: np.ndarray
) -> SparseRows:
    """Drop weights on the other lip's vertices (smoothing can bring them in from beside the mouth)."""
    rows, cols = matrix.row_ids(), matrix.indices
    cls = lip_class[rows]
    bad = ((cls == LIP_UPPER) & is_lower[cols]) | ((cls == LIP_LOWER) & is_upper[cols])
    if not bad.any():
        return matrix
    total = matrix.row_sums()
    kept = matrix.keep(~bad)
    remaining = kept.row_sums()
    scale = np.divide(total, remaining, out=np.zeros_like(total), where=remaining > 0)
    return kept.scale_rows(scale)


def dense_correspondence(
    user_points: np.ndarray,
    user_faces: np.ndarray,
    fitted: np.ndarray,
    template_faces: np.ndarray,
    lip_upper: np.ndarray,
    lip_lower: np.ndarray,
    inner_pairs: np.ndarray,
    corners: tuple[int, int],
    settings: TransferSettings | None = None,
) -> tuple[SparseRows, np.ndarray]:
    """(weights [V_user, n_template], lip class [V_user]) with user points already in the template frame."""
    settings = settings or TransferSettings()
    n_tpl = len(fitted)
    faces = np.asarray(template_faces, dtype=np.int64)
    line = mouth_line(fitted, inner_pairs, corners)
    is_upper = np.zeros(n_tpl, dtype=bool)
    is_upper[lip_upper] = True
    is_lower = np.zeros(n_tpl, dtype=bool)
    is_lower[lip_lower] = True
    query = SurfaceQuery(fitted, faces, k=8, by_centroid=True)

    upper_ok = ~is_lower[faces].any(axis=1)
    lower_ok = ~is_upper[faces].any(axis=1)

    lip_vertices = np.flatnonzero(is_upper | is_lower)
    lip_tree = NeighbourIndex(fitted[lip_vertices])
    lip_normals = vertex_normals(fitted, faces)[lip_vertices]
    user_normals = vertex_normals(user_points, np.asarray(user_faces, dtype=np.int64))

    def fitted_lip_side(idx: np.ndarray) -> np.ndarray:
        """+1 / -1 where the fitted upper / lower lip is clearly nearer. On near-ties (touching lips:
        both lips' surfaces pass through the same points) the nearby fitted lip vertex that faces
        the same way as the point decides, since an upper lip's underside faces down and a lower
        lip's top faces up."""
        d_up = query.query(user_points[idx], allowed=upper_ok)[2]
        d_low = query.query(user_points[idx], allowed=lower_ok)[2]
        k = min(6, len(lip_vertices))
        _, near = lip_tree.nearest(user_points[idx], k=k)
        facing = np.einsum("pkc,pc->pk", lip_normals[near], user_normals[idx])
        best = lip_vertices[near[np.arange(len(idx)), np.argmax(facing, axis=1)]]
        by_normal = np.where(is_upper[best], 1, -1)
        tie = np.abs(d_up - d_low) <= LIP_TIE_DISTANCE
        return np.where(tie, by_normal, np.where(d_up < d_low, 1, -1))

    lip_class = classify_lips(user_points, user_faces, line, fitted_lip_side)
    allowed = {LIP_NONE: None, LIP_UPPER: upper_ok, LIP_LOWER: lower_ok}
    tri = np.empty(len(user_points), dtype=np.int64)
    bary = np.empty((len(user_points), 3))
    dist = np.empty(len(user_points))
    for cls, mask in allowed.items():
        sel = np.flatnonzero(lip_class == cls)
        if sel.size:
            tri[sel], bary[sel], dist[sel] = query.query(user_points[sel], allowed=mask)
    weight = _falloff(dist, settings)
    rows = np.repeat(np.arange(len(user_points)), 3)
    cols = faces[tri].reshape(-1)
    vals = (bary * weight[:, None]).reshape(-1)
    matrix = SparseRows.from_triplets(rows, cols, vals, (len(user_points), n_tpl)).without_zeros()
    if settings.smooth_radius > 0:
        corners = fitted[faces[tri]]
        # The shortest side: slivers along the lid and lip margins must not smooth across the margin.
        local_edge = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).min(axis=1)
        smooth = _smoothing(
            user_points,
            np.asarray(user_faces, dtype=np.int64),
            lip_class,
            settings.smooth_radius * local_edge,
            weight > 0,
        )
        matrix = _keep_largest(smooth @ matrix, MAX_WEIGHTS_PER_VERTEX)
        matrix = _forbid_other_lip(matrix, lip_class, is_upper, is_lower)
    return matrix.astype(np.float32), lip_class
