"""Non-rigid fit of the template face onto a user's head surface.

Optimal-step non-rigid ICP (Amberg, Romdhani, Vetter, CVPR 2007): every template vertex gets its
own affine transform; a stiffness term keeps neighbouring transforms alike, a data term pulls each
vertex to its closest point on the user's surface, and landmarks anchor the features. Stiffness is
lowered step by step, so the template first moves as a whole and only later follows local shape.
The template has 468 vertices, so each step is one small sparse solve (~1900 unknowns).

Everything here works in the template's frame (the user's surface is brought over by the inverse
of the landmark alignment), so the stiffness values do not depend on the user's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from engine.retarget.align import Similarity, umeyama
from engine.retarget.mesh import SurfaceQuery, boundary_edges, edges, face_normals, vertex_normals

# Stiffness schedule (Amberg's alpha), high to low, for coordinates in decimetres.
DEFAULT_STIFFNESS: tuple[float, ...] = (50.0, 20.0, 8.0, 3.0, 1.5)
UNIT = 0.1  # template metres -> decimetres, so edges are ~0.05 and faces ~1.5 units


@dataclass(frozen=True)
class FitSettings:
    stiffness: tuple[float, ...] = DEFAULT_STIFFNESS
    landmark_weight: float = 1.0  # relative to the data term at the first stage
    iterations_per_stage: int = 4
    max_distance: float = 0.02  # template metres: matches farther than this are ignored
    max_normal_angle_deg: float = 60.0
    translation_weight: float = 1.0  # Amberg's gamma


def _incidence(template_faces: np.ndarray, n: int) -> sparse.csr_matrix:
    e = edges(template_faces)
    m = len(e)
    rows = np.r_[np.arange(m), np.arange(m)]
    cols = np.r_[e[:, 0], e[:, 1]]
    vals = np.r_[np.full(m, -1.0), np.full(m, 1.0)]
    return sparse.csr_matrix((vals, (rows, cols)), shape=(m, n))


def _design(points: np.ndarray) -> sparse.csr_matrix:
    """[n, 4n] matrix D with D @ X = per-vertex affine transform of ``points``."""
    n = len(points)
    homog = np.c_[points, np.ones(n)]
    rows = np.repeat(np.arange(n), 4)
    cols = (4 * np.arange(n)[:, None] + np.arange(4)[None, :]).reshape(-1)
    return sparse.csr_matrix((homog.reshape(-1), (rows, cols)), shape=(n, 4 * n))


def nonrigid_fit(
    template_vertices: np.ndarray,
    template_faces: np.ndarray,
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    template_landmarks: np.ndarray | None = None,
    target_landmarks: np.ndarray | None = None,
    settings: FitSettings | None = None,
) -> np.ndarray:
    """Template vertex positions [n,3] deformed onto the target surface (both in the template frame).

    ``template_landmarks`` are template vertex indices [L]; ``target_landmarks`` [L,3] where they
    should land.
    """
    settings = settings or FitSettings()
    src = np.asarray(template_vertices, dtype=np.float64) / UNIT
    tgt = np.asarray(target_vertices, dtype=np.float64) / UNIT
    faces = np.asarray(template_faces, dtype=np.int64)
    t_faces = np.asarray(target_faces, dtype=np.int64)
    n = len(src)
    query = SurfaceQuery(tgt, t_faces)
    tgt_normals = face_normals(tgt, t_faces)
    tgt_normals /= np.maximum(np.linalg.norm(tgt_normals, axis=1, keepdims=True), 1e-30)
    rim = np.zeros(len(tgt), dtype=bool)
    rim[np.unique(boundary_edges(t_faces))] = True
    rim_face = rim[t_faces].any(axis=1)

    gamma = np.array([1.0, 1.0, 1.0, settings.translation_weight])
    stiff = sparse.kron(_incidence(faces, n), sparse.diags(gamma)).tocsr()
    design = _design(src)
    x = np.vstack([np.eye(3), np.zeros((1, 3))])
    x = np.tile(x, (n, 1))  # identity transforms [4n, 3]
    have_marks = template_landmarks is not None and len(template_landmarks) > 0
    if have_marks:
        lm_idx = np.asarray(template_landmarks, dtype=np.int64)
        lm_pos = np.asarray(target_landmarks, dtype=np.float64) / UNIT
        lm_design = design[lm_idx]
    cos_limit = np.cos(np.deg2rad(settings.max_normal_angle_deg))
    max_dist = settings.max_distance / UNIT
    alpha0 = settings.stiffness[0]

    for alpha in settings.stiffness:
        beta2 = settings.landmark_weight * n / max(len(lm_idx), 1) * (alpha / alpha0) if have_marks else 0.0
        for _ in range(settings.iterations_per_stage):
            current = design @ x
            tri, bary, dist = query.query(current)
            closest = np.einsum("pk,pkc->pc", bary, tgt[t_faces[tri]])
            normals = vertex_normals(current, faces)
            agree = np.abs(np.einsum("ij,ij->i", normals, tgt_normals[tri])) >= cos_limit
            w = (agree & (dist <= max_dist) & ~rim_face[tri]).astype(np.float64)
            wd = sparse.diags(w) @ design
            lhs = alpha**2 * (stiff.T @ stiff) + wd.T @ wd
            rhs = wd.T @ (w[:, None] * closest)
            if have_marks:
                lhs = lhs + beta2 * (lm_design.T @ lm_design)
                rhs = rhs + beta2 * (lm_design.T @ lm_pos)
            # A whisper of "stay where you are" keeps the system regular when few points match.
            lhs = lhs + 1e-8 * sparse.identity(4 * n)
            rhs = rhs + 1e-8 * x
            new_x = splu(lhs.tocsc()).solve(rhs)
            change = np.abs(new_x - x).max()
            x = new_x
            if change < 1e-4:
                break
    return (design @ x) * UNIT


def similarity_icp(
    start: Similarity,
    template_vertices: np.ndarray,
    template_faces: np.ndarray,
    user_vertices: np.ndarray,
    user_faces: np.ndarray,
    iterations: int = 15,
    max_distance: float = 0.015,
) -> Similarity:
    """Refine a template -> user similarity by ICP of the template onto the user's surface.

    Automatic landmarks are only a start (a few millimetres off, and blind to a slightly turned
    head); matching the whole face surface fixes rotation, scale and position before the
    non-rigid fit, which would otherwise spend its flexibility on a pose error.
    """
    tpl = np.asarray(template_vertices, dtype=np.float64)
    t_faces = np.asarray(template_faces, dtype=np.int64)
    user = np.asarray(user_vertices, dtype=np.float64)
    u_faces = np.asarray(user_faces, dtype=np.int64)
    query = SurfaceQuery(user, u_faces)
    user_normals = face_normals(user, u_faces)
    user_normals /= np.maximum(np.linalg.norm(user_normals, axis=1, keepdims=True), 1e-30)
    rim = np.zeros(len(user), dtype=bool)
    rim[np.unique(boundary_edges(u_faces))] = True
    rim_face = rim[u_faces].any(axis=1)
    tpl_normals = vertex_normals(tpl, t_faces)
    sim = start
    for _ in range(iterations):
        placed = sim.apply(tpl)
        tri, bary, dist = query.query(placed)
        closest = np.einsum("pk,pkc->pc", bary, user[u_faces[tri]])
        normals = tpl_normals @ sim.rotation.T
        agree = np.abs(np.einsum("ij,ij->i", normals, user_normals[tri])) > 0.5
        ok = agree & (dist <= max_distance * sim.scale) & ~rim_face[tri]
        if ok.sum() < 0.3 * len(tpl):
            break  # too little overlap to trust: keep what the landmarks gave
        new = umeyama(tpl[ok], closest[ok])
        moved = np.abs(new.apply(tpl) - placed).max() / sim.scale
        sim = new
        if moved < 1e-5:
            break
    return sim
