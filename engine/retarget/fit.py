"""Non-rigid fit of the template face onto a user's head surface.

Optimal-step non-rigid ICP (Amberg, Romdhani, Vetter, CVPR 2007): every template vertex gets its
own affine transform; a stiffness term keeps neighbouring transforms alike, a data term pulls each
vertex to its closest point on the user's surface, and landmarks anchor the features. Stiffness is
lowered step by step, so the template first moves as a whole and only later follows local shape.
The template has 468 vertices, so each step is one small banded solve (~1900 unknowns), with numpy
alone so that it also runs in a stock Blender.

Everything here works in the template's frame (the user's surface is brought over by the inverse
of the landmark alignment), so the stiffness values do not depend on the user's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.retarget.align import Similarity, umeyama
from engine.retarget.mesh import SurfaceQuery, boundary_edges, edges, face_normals, vertex_normals
from engine.retarget.numeric import band_order, solve_banded_spd

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


def _stiffness(template_faces: np.ndarray, n: int, gamma: np.ndarray) -> np.ndarray:
    """[4n, 4n] S^T S for Amberg's stiffness term S = kron(edge incidence, diag(gamma)): the
    graph Laplacian of the template's edges, Kronecker with diag(gamma^2)."""
    e = edges(template_faces)
    laplacian = np.zeros((n, n))
    np.add.at(laplacian, (e[:, 0], e[:, 0]), 1.0)
    np.add.at(laplacian, (e[:, 1], e[:, 1]), 1.0)
    np.add.at(laplacian, (e[:, 0], e[:, 1]), -1.0)
    np.add.at(laplacian, (e[:, 1], e[:, 0]), -1.0)
    return np.kron(laplacian, np.diag(gamma**2))


def _add_point_terms(lhs, rhs, homog, vertex, weight, target) -> None:
    """Add D_v^T w^2 D_v to ``lhs`` and D_v^T w^2 target to ``rhs`` for data or landmark points:
    vertex ``vertex[p]``'s transform maps its homogeneous rest position ``homog[p]`` to ``target[p]``."""
    w2 = np.asarray(weight, dtype=np.float64) ** 2
    unknowns = 4 * np.asarray(vertex)[:, None] + np.arange(4)  # [P, 4] rows of each transform
    blocks = w2[:, None, None] * np.einsum("pi,pj->pij", homog, homog)
    np.add.at(lhs, (unknowns[:, :, None], unknowns[:, None, :]), blocks)
    np.add.at(rhs, unknowns, w2[:, None, None] * np.einsum("pi,pc->pic", homog, target))


def _band_order(template_faces: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """(template vertices in band order, the half-bandwidth of the system in that order): with the
    4 transform entries of each vertex together, the stiffness term couples only nearby unknowns."""
    e = edges(template_faces)
    order = band_order(n, e)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    return order, 4 * int(np.abs(position[e[:, 0]] - position[e[:, 1]]).max(initial=0)) + 3


def _solve(lhs: np.ndarray, rhs: np.ndarray, band: int) -> np.ndarray:
    """The symmetric positive definite system, by banded Cholesky (dense LU if rounding makes the
    barely regularised matrix look indefinite)."""
    try:
        return solve_banded_spd(lhs, rhs, band)
    except np.linalg.LinAlgError:
        return np.linalg.solve(lhs, rhs)


def _surface(vertices: np.ndarray, faces: np.ndarray) -> tuple[SurfaceQuery, np.ndarray, np.ndarray]:
    """What a fit asks of the mesh it fits to: closest-point queries, unit face normals, and which
    faces touch the open border (closest points there are no real correspondence)."""
    normals = face_normals(vertices, faces)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    rim = np.zeros(len(vertices), dtype=bool)
    rim[np.unique(boundary_edges(faces))] = True
    return SurfaceQuery(vertices, faces), normals, rim[faces].any(axis=1)


def _apply(homog: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each vertex's affine transform (rows of x [4n, 3]) applied to its rest position."""
    return np.einsum("ni,nic->nc", homog, x.reshape(len(homog), 4, 3))


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
    order, band = _band_order(faces, n)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    src, faces = src[order], position[faces]  # the template renumbered: a banded system below
    query, tgt_normals, rim_face = _surface(tgt, t_faces)

    gamma = np.array([1.0, 1.0, 1.0, settings.translation_weight])
    stiff = _stiffness(faces, n, gamma)
    homog = np.c_[src, np.ones(n)]
    every = np.arange(n)
    x = np.vstack([np.eye(3), np.zeros((1, 3))])
    x = np.tile(x, (n, 1))  # identity transforms [4n, 3]
    have_marks = template_landmarks is not None and len(template_landmarks) > 0
    if have_marks:
        lm_idx = position[np.asarray(template_landmarks, dtype=np.int64)]
        lm_pos = np.asarray(target_landmarks, dtype=np.float64) / UNIT
    cos_limit = np.cos(np.deg2rad(settings.max_normal_angle_deg))
    max_dist = settings.max_distance / UNIT
    alpha0 = settings.stiffness[0]

    for alpha in settings.stiffness:
        beta2 = settings.landmark_weight * n / max(len(lm_idx), 1) * (alpha / alpha0) if have_marks else 0.0
        for _ in range(settings.iterations_per_stage):
            current = _apply(homog, x)
            tri, bary, dist = query.query(current)
            closest = np.einsum("pk,pkc->pc", bary, tgt[t_faces[tri]])
            normals = vertex_normals(current, faces)
            agree = np.abs(np.einsum("ij,ij->i", normals, tgt_normals[tri])) >= cos_limit
            w = (agree & (dist <= max_dist) & ~rim_face[tri]).astype(np.float64)
            lhs = alpha**2 * stiff
            rhs = np.zeros((4 * n, 3))
            _add_point_terms(lhs, rhs, homog, every, w, closest)
            if have_marks:
                _add_point_terms(
                    lhs, rhs, homog[lm_idx], lm_idx, np.full(len(lm_idx), np.sqrt(beta2)), lm_pos
                )
            # A whisper of "stay where you are" keeps the system regular when few points match.
            lhs[np.diag_indices(4 * n)] += 1e-8
            rhs = rhs + 1e-8 * x
            new_x = _solve(lhs, rhs, band)
            change = np.abs(new_x - x).max()
            x = new_x
            if change < 1e-4:
                break
    return (_apply(homog, x) * UNIT)[position]


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
    query, user_normals, rim_face = _surface(user, u_faces)
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
