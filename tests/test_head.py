"""The default head's parts: closed where they should be, inside the face, and moving like a head."""

from __future__ import annotations

import numpy as np
import pytest

from engine.arkit import ARKIT_INDEX
from engine.arkit.basis import apply_arkit
from engine.face import landmarks as lm
from engine.face.head import (
    EYE_RADIUS,
    alveolar_ridge,
    default_head,
    eye_centre,
    tongue_tip_index,
    tongue_tip_raise,
)
from engine.face.template import load_template
from engine.retarget.attachments import jaw_motion

MM = 1e-3


def front_of_face(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Frontmost y where a ray along y through each point's (x, z) meets the face; inf where none does."""
    faces = load_template().faces
    a, b, c = (vertices[faces[:, k]].astype(np.float64) for k in range(3))
    px, pz = points[:, 0][:, None], points[:, 2][:, None]
    det = (b[:, 2] - c[:, 2]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 2] - c[:, 2])
    det = np.where(np.abs(det) < 1e-14, np.nan, det)  # triangles seen edge-on are never hit
    l1 = ((b[:, 2] - c[:, 2]) * (px - c[:, 0]) + (c[:, 0] - b[:, 0]) * (pz - c[:, 2])) / det
    l2 = ((c[:, 2] - a[:, 2]) * (px - c[:, 0]) + (a[:, 0] - c[:, 0]) * (pz - c[:, 2])) / det
    l3 = 1.0 - l1 - l2
    y = l1 * a[:, 1] + l2 * b[:, 1] + l3 * c[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (l1 >= 0) & (l2 >= 0) & (l3 >= 0)
    return np.where(inside, y, np.inf).min(axis=1)


def pose(**weights: float) -> np.ndarray:
    w = np.zeros(52, np.float32)
    for name, value in weights.items():
        w[ARKIT_INDEX[name]] = value
    return load_template().vertices + apply_arkit(w)


def jaw_riders(face: np.ndarray) -> dict[str, np.ndarray]:
    """Parts where they are when the face is ``face``: lower teeth and tongue ride the jaw."""
    rot, trans = jaw_motion((face - load_template().vertices)[None])
    out = {}
    for name, part in default_head().items():
        v = part.vertices.astype(np.float64)
        out[name] = v @ rot[0].T + trans[0] if part.role in ("lower_teeth", "tongue") else v
    return out


def test_every_part_is_a_valid_mesh():
    parts = default_head()
    assert set(parts) == {
        "skull",
        "neck",
        "eye_left",
        "eye_right",
        "upper_teeth",
        "lower_teeth",
        "tongue",
        "mouth",
    }
    for part in parts.values():
        assert part.faces.min() >= 0 and part.faces.max() < len(part.vertices)
        assert np.all(np.isfinite(part.vertices))
        assert part.uvs.shape == (len(part.faces), 3, 2)
        assert part.material.shape == (len(part.faces),) and part.material.max() < len(part.materials)
        tri = part.vertices[part.faces]
        area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        assert area.min() > 1e-12, part.name  # no degenerate triangles


@pytest.mark.parametrize("name", ["eye_left", "eye_right", "upper_teeth", "lower_teeth", "tongue"])
def test_closed_parts_are_watertight_and_face_outward(name):
    part = default_head()[name]
    edges = np.sort(part.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2), f"{name} has open or non-manifold edges"
    tri = part.vertices[part.faces].astype(np.float64)
    volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    assert volume > 0, f"{name} normals point inward"


def test_skull_closes_the_head_behind_the_face_outline():
    t = load_template()
    skull = default_head()["skull"]
    oval = t.vertices[list(lm.FACE_OVAL)]
    rim = skull.vertices[: len(oval)]
    assert np.linalg.norm(rim - oval, axis=1).max() < 2 * MM  # tucked just behind the face's edge
    assert skull.follow[: len(oval)].min() == 1.0 and skull.follow[-1] == 0.0
    depth = skull.vertices[:, 1].max() - t.vertices[:, 1].min()
    assert 0.18 < depth < 0.23  # nose tip to the back of the head, an adult's head length
    edges = np.sort(skull.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    open_vertices = set(unique[counts == 1].ravel().tolist())
    assert open_vertices == set(range(len(oval)))  # the only opening is the face's outline


def test_mouth_cavity_starts_on_the_inner_lip_ring():
    t = load_template()
    mouth = default_head()["mouth"]
    ring = t.vertices[
        [lm.MOUTH_CORNER_RIGHT[-1], *lm.LIP_UPPER_INNER, lm.MOUTH_CORNER_LEFT[-1], *lm.LIP_LOWER_INNER[::-1]]
    ]
    assert np.allclose(mouth.vertices[: len(ring)], ring, atol=1e-7)
    assert mouth.follow[: len(ring)].min() == 1.0
    assert mouth.materials == ("mouth",)


def test_eyes_sit_in_the_openings_behind_the_lids():
    t = load_template()
    for side, corners in (("left", lm.EYE_CORNERS_LEFT), ("right", lm.EYE_CORNERS_RIGHT)):
        centre = eye_centre(t, side)
        mid = t.vertices[list(corners)].mean(axis=0)
        assert abs(centre[0] - mid[0]) < 2 * MM and abs(centre[2] - mid[2]) < 4 * MM
        front = centre[1] - EYE_RADIUS
        lids = t.vertices[list(lm.EYELID_UPPER_LEFT_0 if side == "left" else lm.EYELID_UPPER_RIGHT_0)]
        assert lids[:, 1].min() < front < lids[:, 1].min() + 3 * MM  # fills the opening, just behind the lids
    eye = default_head()["eye_left"]
    assert set(eye.materials) == {"sclera", "iris", "pupil"}
    front_faces = eye.vertices[eye.faces].mean(axis=1)[:, 1] < eye.pivot[1] - 0.99 * EYE_RADIUS
    assert set(eye.material[front_faces].tolist()) == {2}  # the pupil looks forward


@pytest.mark.parametrize(
    "weights",
    [{}, {"jawOpen": 0.6}, {"jawOpen": 1.0}, {"mouthRollLower": 1.0, "jawOpen": 0.1}, {"mouthPucker": 1.0},
     {"mouthFunnel": 1.0, "jawOpen": 0.3}, {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0}, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}],
)  # fmt: skip
def test_no_part_pokes_through_the_face(weights):
    face = pose(**weights)
    for name, vertices in jaw_riders(face).items():
        if name in ("skull", "neck", "mouth"):
            continue
        hit = front_of_face(vertices, face)
        seen = np.isfinite(hit)  # through the eye and mouth openings nothing covers a part
        worst = float((hit - vertices[:, 1])[seen].max(initial=-1.0))
        assert worst < 0.3 * MM, f"{name} is {worst / MM:.2f} mm in front of the skin with {weights}"


def test_open_mouth_shows_teeth_and_the_lower_row_rides_the_jaw():
    rest, opened = jaw_riders(pose()), jaw_riders(pose(jawOpen=0.6))
    assert np.allclose(rest["upper_teeth"], opened["upper_teeth"])
    drop = rest["lower_teeth"][:, 2].mean() - opened["lower_teeth"][:, 2].mean()
    assert drop > 4 * MM
    chin = load_template().landmarks["chin"]
    chin_drop = pose()[chin, 2] - pose(jawOpen=0.6)[chin, 2]
    assert abs(drop - chin_drop) < 0.6 * chin_drop  # same rigid motion as the chin, scaled by distance


def test_tongue_tip_raise_reaches_the_alveolar_ridge():
    parts = default_head()
    tongue, ridge = parts["tongue"], alveolar_ridge(parts["upper_teeth"])
    tip = tongue_tip_index(tongue)
    raised = tongue.vertices + tongue_tip_raise(tongue, ridge)
    assert np.linalg.norm(raised[tip] - ridge) < 0.5 * MM
    assert np.linalg.norm(tongue.vertices[tip] - ridge) > 8 * MM  # at rest it lies low
    back = tongue.vertices[:, 1] > tongue.vertices[:, 1].min() + 0.6 * np.ptp(tongue.vertices[:, 1])
    assert np.abs(raised[back] - tongue.vertices[back]).max() == 0.0  # only the front curls up
