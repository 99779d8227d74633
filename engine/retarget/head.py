"""Fit DualFace's template to a user's head: landmarks -> similarity -> non-rigid fit -> correspondence.

The result is cached per mesh (hash of positions, topology, landmarks and settings), so only the
first take on a head pays for the fit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.retarget.align import Similarity, umeyama
from engine.retarget.correspondence import (
    FORMAT_VERSION,
    Correspondence,
    TransferSettings,
    dense_correspondence,
)
from engine.retarget.errors import RetargetError
from engine.retarget.fit import FitSettings, nonrigid_fit, similarity_icp
from engine.retarget.landmarks import FIT_LANDMARKS, find_landmarks, template_landmarks
from engine.retarget.mesh import check_mesh, mesh_hash
from engine.retarget.numeric import SparseRows

# A landmark set whose best similarity still misses by more than this share of the face height is
# self-contradictory (left/right swapped, a point on the wrong feature).
MAX_LANDMARK_RESIDUAL = 0.12
# Landmarks that may pin the non-rigid fit (the stomion only aligns: in an open mouth it is air).
PINNED = tuple(n for n in FIT_LANDMARKS if n != "stomion")


def default_cache_dir() -> Path:
    """``$DUALFACE_CACHE/retarget`` or ``~/.cache/dualface/retarget``."""
    root = os.environ.get("DUALFACE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "dualface"
    return base / "retarget"


def _template():
    from engine.face.template import load_template

    return load_template()


def _inner_corners() -> tuple[int, int]:
    from engine.face import landmarks as lm

    return lm.MOUTH_CORNER_RIGHT[-1], lm.MOUTH_CORNER_LEFT[-1]


def _correspond(
    user_t: np.ndarray, faces: np.ndarray, fitted: np.ndarray, settings: TransferSettings | None
) -> tuple[SparseRows, np.ndarray]:
    """dense_correspondence of user points (in the template frame) onto the fitted template face."""
    tpl = _template()
    return dense_correspondence(
        user_t,
        faces,
        fitted,
        tpl.faces,
        tpl.regions["lip_upper"],
        tpl.regions["lip_lower"],
        tpl.inner_lip_pairs,
        _inner_corners(),
        settings,
    )


def align_landmarks(user_marks: Mapping[str, np.ndarray]) -> Similarity:
    """Template -> user similarity from the landmarks both have; rejects contradictory sets."""
    tpl_marks = template_landmarks()
    names = [n for n in FIT_LANDMARKS if n in user_marks]
    if len(names) < 3:
        raise RetargetError(
            f"only {len(names)} landmark(s) given ({names}); at least 3 that span the face are needed, "
            f"e.g. nose_tip, chin, mouth_corner_left, mouth_corner_right"
        )
    src = np.stack([tpl_marks[n] for n in names])
    dst = np.stack([np.asarray(user_marks[n], dtype=np.float64) for n in names])
    sim = umeyama(src, dst)
    residual = np.linalg.norm(sim.apply(src) - dst, axis=1)
    face_height = float(np.ptp(_template().vertices[:, 2])) * sim.scale
    worst = int(np.argmax(residual))
    if residual[worst] > MAX_LANDMARK_RESIDUAL * face_height:
        raise RetargetError(
            f"the landmarks do not fit a face together: {names[worst]!r} is off by "
            f"{residual[worst] / face_height:.0%} of the face height; check that left and right "
            "are not swapped and that each point sits on its feature"
        )
    return sim


def fit_head(
    vertices: np.ndarray,
    faces: np.ndarray,
    landmarks: Mapping[str, object] | None = None,
    *,
    forward=(0.0, -1.0, 0.0),
    up=(0.0, 0.0, 1.0),
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    fit_settings: FitSettings | None = None,
    transfer_settings: TransferSettings | None = None,
) -> Correspondence:
    """The correspondence of a head mesh (vertices [N,3] in its own units, triangles [F,3]).

    ``landmarks`` are optional user picks (name -> [x,y,z] or vertex index, names from
    ``engine.retarget.FIT_LANDMARKS``); with all of them given, any head orientation works.
    Raises RetargetError with the fix when the mesh or the landmarks are unusable.
    """
    vertices, faces = check_mesh(vertices, faces, "head mesh")
    fit_settings = fit_settings or FitSettings()
    transfer_settings = transfer_settings or TransferSettings()
    picked = {
        k: (int(v) if isinstance(v, int | np.integer) else np.asarray(v, dtype=float).tolist())
        for k, v in (landmarks or {}).items()
    }
    settings_key = json.dumps(
        {
            "v": FORMAT_VERSION,
            "landmarks": picked,
            "forward": list(map(float, forward)),
            "up": list(map(float, up)),
            "fit": asdict(fit_settings),
            "transfer": asdict(transfer_settings),
        },
        sort_keys=True,
    )
    key = mesh_hash(vertices, faces, settings_key)
    cache_path = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
    if use_cache and cache_path.is_file():
        try:
            cached = Correspondence.load(cache_path)
            if cached.n_vertices == len(vertices) and cached.mesh_key == key:
                return cached
        except RetargetError:
            pass  # stale or damaged: fit again and overwrite

    user_marks = find_landmarks(vertices, faces, landmarks, forward=forward, up=up)
    sim = align_landmarks(user_marks)
    tpl = _template()
    picked_names = set(landmarks or {})
    if len(picked_names) < len(FIT_LANDMARKS):
        # Some landmarks were guessed: let the whole face surface settle the pose, then place the
        # guessed ones where the settled template puts them.
        sim = similarity_icp(sim, tpl.vertices, tpl.faces, vertices, faces)
        tpl_marks = template_landmarks()
        for name in FIT_LANDMARKS:
            if name not in picked_names:
                user_marks[name] = sim.apply(tpl_marks[name])
    to_template = sim.inverse()
    user_t = to_template.apply(vertices)
    # Only the user's own picks pin the fit: guessed landmarks are no better than the surface match
    # that placed them, and pinning them would stop the fit from following the user's proportions.
    pinned = [n for n in PINNED if n in picked_names]
    lm_idx = np.array([tpl.landmarks[n] for n in pinned], dtype=np.int64)
    lm_pos = to_template.apply(np.stack([user_marks[n] for n in pinned])) if pinned else np.zeros((0, 3))
    fitted = nonrigid_fit(tpl.vertices, tpl.faces, user_t, faces, lm_idx, lm_pos, fit_settings)
    matrix, lip_class = _correspond(user_t, faces, fitted, transfer_settings)
    if matrix.nnz == 0:
        raise RetargetError(
            "no vertex of the mesh lies on the fitted face; the landmarks are probably on another "
            "part of the mesh -- pick them on the face"
        )
    corr = Correspondence(
        matrix=matrix,
        similarity=sim,
        fitted_template=fitted,
        lip_class=lip_class,
        landmarks={k: np.asarray(v, dtype=np.float64) for k, v in user_marks.items()},
        mesh_key=key,
    )
    if use_cache:
        try:
            corr.save(cache_path)
        except OSError:
            pass  # a read-only cache only costs speed next time
    return corr


def attach_mesh(
    head: Correspondence,
    vertices: np.ndarray,
    faces: np.ndarray,
    transfer_settings: TransferSettings | None = None,
) -> Correspondence:
    """Correspondence for a separate skin-like mesh (brows, lashes, beard) on an already fitted head."""
    vertices, faces = check_mesh(vertices, faces, "attached mesh", min_vertices=3)
    user_t = head.similarity.inverse().apply(vertices)
    matrix, lip_class = _correspond(user_t, faces, head.fitted_template, transfer_settings)
    return Correspondence(
        matrix=matrix,
        similarity=head.similarity,
        fitted_template=head.fitted_template,
        lip_class=lip_class,
        landmarks=head.landmarks,
        mesh_key=mesh_hash(vertices, faces, head.mesh_key),
    )
