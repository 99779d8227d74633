"""Separate meshes on a head: lower teeth and tongue ride the jaw rigidly, upper teeth and eyes stay.

Skin follows the template through the dense correspondence, but teeth must not stretch: they get
the rigid motion of the template's jaw, found per frame by a weighted Kabsch fit of the vertices
that follow the jaw fully, and carried into the user's frame by the landmark alignment.
"""

from __future__ import annotations

import re
from enum import StrEnum

import numpy as np

from engine.retarget.correspondence import Correspondence, mouth_line
from engine.retarget.errors import RetargetError
from engine.retarget.mesh import check_mesh, edges
from engine.retarget.numeric import connected_components


class Part(StrEnum):
    SKIN = "skin"  # brows, lashes, beard: follow the surface like the head
    TEETH = "teeth"  # one mesh with both rows: split by position
    UPPER_TEETH = "upper_teeth"
    LOWER_TEETH = "lower_teeth"
    TONGUE = "tongue"
    EYE = "eye"


_NAME_RULES: tuple[tuple[re.Pattern, Part], ...] = (
    (re.compile(r"lash|brow|lid|beard|mustache|moustache|stubble|hair", re.I), Part.SKIN),
    (re.compile(r"tongue", re.I), Part.TONGUE),
    (
        re.compile(r"(upper|top|up)[\W_]*(teeth|tooth|gum)|(teeth|tooth|gum)[\W_]*(upper|top|up)\b", re.I),
        Part.UPPER_TEETH,
    ),
    (
        re.compile(
            r"(lower|bottom|low|down)[\W_]*(teeth|tooth|gum)|(teeth|tooth|gum)[\W_]*(lower|bottom|low|down)\b",
            re.I,
        ),
        Part.LOWER_TEETH,
    ),
    (re.compile(r"teeth|tooth|gum|denture|mouth[\W_]*(interior|bag|inside)", re.I), Part.TEETH),
    (re.compile(r"eye|cornea|iris|pupil|sclera", re.I), Part.EYE),
)


def part_from_name(name: str) -> Part | None:
    """The part a mesh name says it is, or None when the name does not tell."""
    for pattern, part in _NAME_RULES:
        if pattern.search(name or ""):
            return part
    return None


def classify_part(name: str, vertices: np.ndarray, head: Correspondence) -> Part:
    """Part of a separate mesh from its name, else from where it sits relative to the fitted face."""
    by_name = part_from_name(name)
    if by_name is not None:
        return by_name
    from engine.face.template import load_template

    tpl = load_template()
    centre = head.similarity.inverse().apply(np.asarray(vertices, dtype=np.float64)).mean(axis=0)
    fitted = head.fitted_template
    for side in ("left", "right"):
        eye = fitted[[tpl.landmarks[f"eye_outer_{side}"], tpl.landmarks[f"eye_inner_{side}"]]]
        width = np.linalg.norm(eye[0] - eye[1])
        if np.linalg.norm(centre - eye.mean(axis=0) - np.array([0.0, 0.5 * width, 0.0])) < 0.8 * width:
            return Part.EYE
    corners = fitted[[tpl.landmarks["mouth_corner_right"], tpl.landmarks["mouth_corner_left"]]]
    nose_bottom = fitted[tpl.landmarks["nose_bottom"], 2]
    chin = fitted[tpl.landmarks["chin"], 2]
    lips_front = fitted[tpl.landmarks["upper_lip_center"], 1]
    if (
        corners[0, 0] <= centre[0] <= corners[1, 0]
        and chin < centre[2] < nose_bottom
        and centre[1] > lips_front
    ):
        return Part.TEETH
    return Part.SKIN


def jaw_motion(offsets: np.ndarray, threshold: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame rigid jaw motion in the template frame: rotations [T,3,3] and translations [T,3].

    Fitted (Kabsch) to the template vertices that follow the jaw fully, so the lower teeth move with
    the chin whatever mixture of shapes opened the mouth.
    """
    from engine.face.template import load_template

    tpl = load_template()
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.ndim != 3 or offsets.shape[1:] != tpl.vertices.shape:
        raise RetargetError(f"template offsets must be [frames, {tpl.n_vertices}, 3], got {offsets.shape}")
    idx = np.flatnonzero(tpl.jaw_weight >= threshold)
    rest = tpl.vertices[idx].astype(np.float64)
    moved = rest[None] + offsets[:, idx]
    mu_r = rest.mean(axis=0)
    mu_m = moved.mean(axis=1)
    cov = np.einsum("tvi,vj->tij", moved - mu_m[:, None], rest - mu_r)
    u, _, vt = np.linalg.svd(cov)
    fix = np.ones((len(offsets), 3))
    fix[:, 2] = np.sign(np.linalg.det(u @ vt))
    rot = np.einsum("tij,tj,tjk->tik", u, fix, vt)
    trans = mu_m - np.einsum("tij,j->ti", rot, mu_r)
    return rot, trans


def _rows_follow_jaw(vertices_t: np.ndarray, faces: np.ndarray, head: Correspondence) -> np.ndarray:
    """For a both-rows teeth mesh: True for the pieces (connected parts) below the mouth line."""
    from engine.face import landmarks as lm

    line = mouth_line(
        head.fitted_template,
        np.stack([np.asarray(lm.LIP_UPPER_INNER), np.asarray(lm.LIP_LOWER_INNER)], axis=1),
        (lm.MOUTH_CORNER_RIGHT[-1], lm.MOUTH_CORNER_LEFT[-1]),
    )
    n = len(vertices_t)
    labels = connected_components(n, edges(faces))
    mouth_z = float(np.mean(line[:, 1]))
    follow = np.zeros(n, dtype=bool)
    for lab in np.unique(labels):
        part = labels == lab
        follow[part] = vertices_t[part, 2].mean() < mouth_z
    return follow


def part_offsets(
    part: Part,
    vertices: np.ndarray,
    faces: np.ndarray,
    head: Correspondence,
    offsets: np.ndarray,
) -> np.ndarray:
    """Offsets [T, V, 3] (user frame) of a rigid part for template offsets [T, 468, 3].

    SKIN parts need a correspondence of their own: use :func:`engine.retarget.attach_mesh`.
    """
    if part is Part.SKIN:
        raise RetargetError(
            "skin-like meshes follow the surface; build their correspondence with attach_mesh"
        )
    vertices, faces = check_mesh(vertices, faces, f"{part.value} mesh", min_vertices=3)
    frames = np.asarray(offsets).shape[0]
    out = np.zeros((frames, len(vertices), 3), dtype=np.float32)
    if part in (Part.EYE, Part.UPPER_TEETH):
        return out
    sim = head.similarity
    local = sim.inverse().apply(vertices)  # template frame
    follow = np.ones(len(vertices), dtype=bool)
    if part is Part.TEETH:
        follow = _rows_follow_jaw(local, faces, head)
    rot, trans = jaw_motion(offsets)
    pts = local[follow]
    moved = np.einsum("tij,vj->tvi", rot, pts) + trans[:, None]
    out[:, follow] = sim.apply_vectors(moved - pts[None]).astype(np.float32)
    return out
