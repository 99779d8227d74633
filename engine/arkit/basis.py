"""A procedural ARKit blendshape rig for the template face.

Each of the 52 shapes is a smooth displacement field in metres at weight 1. A shape is written as
a few anatomical handle moves (the lid margin closes onto the lower lid, the lip rows roll, ...)
whose surroundings follow by bi-Laplacian smoothing over the mesh (`engine.face.deform`), or as a
Gaussian falloff around a muscle's point of action (mouth corners, cheeks). The jaw rotates about
a pivot low on the ramus, weighted by the template's smooth ``jaw_weight``. Only the subject's
Left shapes are authored: every Right shape is the exact mirror, so the rig cannot be lopsided.

Downstream contracts this rig keeps (tests check them):
- zero weights = the template, whose lips are together (inner-lip gap 0);
- ``jawOpen = w`` plus ``mouthClose = w`` puts the inner lips back together (ARKit semantics);
- ``eyeBlink = 1`` closes the lid margins exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES
from engine.face import landmarks as lm
from engine.face.deform import adjacency, grow, smooth_deform, uniform_laplacian
from engine.face.template import JAW_PIVOT, MM, FaceTemplate, jaw_follow_weight, load_template

JAW_OPEN_DEGREES = 22.0  # weight 1: inner lips 18 mm apart on average, 24 mm at the centre
JAW_OPEN_GLIDE_MM = 8.0  # forward glide of the condyles that goes with a full opening
LIPS_SEALED = 0.35  # jawOpen + mouthClose: the closed lips travel this fraction of the jaw's motion
BLINK_MEET = 0.72  # closed lids meet this far down from the upper lid margin
_FLIP_X = np.array([-1.0, 1.0, 1.0])


class _Rig:
    """Geometry shared by the shape builders (float64 for the solves)."""

    def __init__(self, template: FaceTemplate) -> None:
        self.t = template
        self.v = template.vertices.astype(np.float64)
        self.n = len(self.v)
        self.rings = adjacency(template.faces, self.n)
        lap = uniform_laplacian(template.faces, self.n)
        self.bilap = lap.T @ lap
        self.x = self.v[:, 0]
        self.mouth_half_width = float(self.v[lm.MOUTH_CORNER_LEFT[0], 0])
        self.normals = self._vertex_normals()

    def _vertex_normals(self) -> np.ndarray:
        tri = self.v[self.t.faces]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = np.zeros_like(self.v)
        for k in range(3):
            np.add.at(normals, self.t.faces[:, k], face_n)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        if normals[lm.NOSE_TIP, 1] > 0:  # make them point out of the face (toward -y at the nose)
            normals = -normals
        return normals

    def region(self, name: str) -> np.ndarray:
        return self.t.regions[name]

    def deform(
        self,
        moves: tuple[np.ndarray, np.ndarray],
        rings: int = 2,
        pinned: Iterable[int] = (),
        free_extra: Iterable[int] = (),
    ) -> np.ndarray:
        """Smooth field through ``moves`` (indices, offsets), fading out ``rings`` edges beyond them.

        ``pinned`` vertices are held at zero (e.g. the other eye's lid, the far mouth corner);
        ``free_extra`` vertices may move even if they are not near a handle.
        """
        idx, off = np.asarray(moves[0], dtype=np.int64), np.asarray(moves[1], dtype=np.float64)
        pinned = np.setdiff1d(np.asarray(list(pinned), dtype=np.int64), idx)
        handles = np.concatenate([idx, pinned])
        offsets = np.concatenate([off, np.zeros((len(pinned), 3))])
        free = grow(self.rings, set(idx.tolist()) | set(int(i) for i in free_extra), rings)
        free_idx = np.setdiff1d(np.asarray(sorted(free), dtype=np.int64), handles)
        return smooth_deform(self.bilap, handles, offsets, free_idx)

    # --- profiles ---------------------------------------------------------------------------

    def gaussian(self, centre: np.ndarray, reach: float | tuple[float, float]) -> np.ndarray:
        """Smooth 0..1 falloff around a point of the face seen from the front.

        Depth (y) is ignored, so a spot on the skin is named by its (x, z) alone; the template
        is a single-layer mask, so each (x, z) names one spot. ``reach`` is one radius or an
        (x, z) pair for an elliptical falloff.
        """
        rx, rz = (reach, reach) if isinstance(reach, float) else reach
        delta = self.v - np.asarray(centre, dtype=np.float64)
        return np.exp(-((delta[:, 0] / rx) ** 2) - (delta[:, 2] / rz) ** 2)

    def left_weight(self, idx: np.ndarray, width: float = 0.008) -> np.ndarray:
        """Smooth 0..1 ramp across the midline; left + mirrored right sums to exactly 1."""
        return 0.5 * (1.0 + np.tanh(self.x[idx] / width))

    def lip_taper(self, idx: np.ndarray, corner_keep: float = 0.0) -> np.ndarray:
        """1 at the lip centre, ``corner_keep`` at the mouth corners, smooth in between."""
        r = np.clip(np.abs(self.x[idx]) / self.mouth_half_width, 0.0, 1.0)
        return corner_keep + (1.0 - corner_keep) * np.cos(0.5 * np.pi * r) ** 1.5

    def eye_profile(self, idx: np.ndarray, outer: int, inner: int) -> np.ndarray:
        """0 at the eye corners, 1 over the pupil: how far a lid point travels."""
        xo, xi = self.v[outer, 0], self.v[inner, 0]
        t = np.clip((self.x[idx] - xo) / (xi - xo), 0.0, 1.0)
        return np.sin(np.pi * t) ** 0.6

    def mirror(self, delta: np.ndarray) -> np.ndarray:
        return delta[self.t.mirror] * _FLIP_X

    def symmetric(self, delta: np.ndarray) -> np.ndarray:
        return 0.5 * (delta + self.mirror(delta))


def _rows(*rows: Iterable[int]) -> np.ndarray:
    return np.asarray([i for row in rows for i in row], dtype=np.int64)


def _vec(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    """Offset in millimetres (x = subject's left, y = backward into the head, z = up) -> metres."""
    return np.array([x, y, z]) * MM


# ------------------------------------------------------------------------------------------------
# Eyes (authored for the subject's left eye; x toward the nose is negative there).


def _eye_blink(r: _Rig) -> np.ndarray:
    upper = np.asarray(lm.EYELID_UPPER_LEFT_0)
    lower = np.asarray(lm.EYELID_LOWER_LEFT_0)
    meet = r.v[upper] + BLINK_MEET * (r.v[lower] - r.v[upper])
    bulge = r.eye_profile(upper, *lm.EYE_CORNERS_LEFT)[:, None] * _vec(y=-1.2)  # lid rides over the cornea
    meet = meet + bulge
    fold = np.asarray(lm.EYELID_UPPER_LEFT_1)
    fold_drop = 0.45 * (meet - r.v[upper])
    moves = (
        np.concatenate([upper, lower, fold, np.asarray(lm.EYE_CORNERS_LEFT)]),
        np.concatenate([meet - r.v[upper], meet - r.v[lower], fold_drop, np.zeros((2, 3))]),
    )
    return r.deform(moves, rings=1)


def _lid_move(
    r: _Rig, upper0: np.ndarray, upper1: np.ndarray, lower0: np.ndarray, lower1: np.ndarray, rings=1
):
    """Lid-margin moves (offsets at the pupil, tapered to the corners) for the left eye."""
    rows = [
        (lm.EYELID_UPPER_LEFT_0, upper0),
        (lm.EYELID_UPPER_LEFT_1, upper1),
        (lm.EYELID_LOWER_LEFT_0, lower0),
        (lm.EYELID_LOWER_LEFT_1, lower1),
    ]
    idx_all, off_all = [], []
    for row, offset in rows:
        idx = np.asarray(row)
        prof = r.eye_profile(idx, *lm.EYE_CORNERS_LEFT)
        idx_all.append(idx)
        off_all.append(prof[:, None] * offset[None, :])
    idx_all.append(np.asarray(lm.EYE_CORNERS_LEFT))
    off_all.append(np.zeros((2, 3)))
    return r.deform((np.concatenate(idx_all), np.concatenate(off_all)), rings=rings)


def _eye_shapes(r: _Rig) -> dict[str, np.ndarray]:
    out = {"eyeBlinkLeft": _eye_blink(r)}
    out["eyeLookDownLeft"] = _lid_move(r, _vec(z=-2.2, y=-0.3), _vec(z=-1.2), _vec(z=-0.8), _vec(z=-0.4))
    out["eyeLookUpLeft"] = _lid_move(r, _vec(z=1.6), _vec(z=1.0), _vec(z=0.8), _vec(z=0.4))
    out["eyeLookInLeft"] = _lid_move(r, _vec(x=-1.0), _vec(x=-0.5), _vec(x=-1.0), _vec(x=-0.5))
    out["eyeLookOutLeft"] = _lid_move(r, _vec(x=1.0), _vec(x=0.5), _vec(x=1.0), _vec(x=0.5))
    out["eyeWideLeft"] = _lid_move(r, _vec(z=2.4, y=-0.3), _vec(z=1.5), _vec(z=-0.6), _vec(z=-0.3))
    squint = _lid_move(r, _vec(z=-0.7), _vec(z=-0.4), _vec(z=1.8, y=-0.3), _vec(z=1.6, y=-0.4), rings=2)
    out["eyeSquintLeft"] = squint
    return out


# ------------------------------------------------------------------------------------------------
# Brows, cheeks, nose.


def _brow_shapes(r: _Rig) -> dict[str, np.ndarray]:
    brow = _rows(lm.BROW_UPPER_LEFT, lm.BROW_LOWER_LEFT)
    lids = _rows(lm.EYELID_UPPER_LEFT_0, lm.EYELID_LOWER_LEFT_0, lm.EYE_CORNERS_LEFT)
    lids_both = np.concatenate([lids, r.t.mirror[lids]])
    x = r.x[brow]
    inner_x, outer_x = r.v[lm.BROW_UPPER_LEFT[-2], 0], r.v[lm.BROW_UPPER_LEFT[0], 0]
    t = np.clip((x - inner_x) / (outer_x - inner_x), 0.0, 1.0)  # 0 inner .. 1 outer
    out = {}
    down = (0.7 + 0.3 * (1 - t))[:, None] * _vec(z=-7.0, y=-1.0) + (1 - t)[:, None] * _vec(x=-2.5)
    fold = _rows(lm.EYELID_UPPER_LEFT_1)
    moves_idx = np.concatenate([brow, fold])
    moves_off = np.concatenate([down, np.tile(_vec(z=-1.2), (len(fold), 1))])
    out["browDownLeft"] = r.deform((moves_idx, moves_off), rings=2, pinned=lids_both)
    outer_up = (np.clip((t - 0.3) / 0.7, 0, 1) ** 1.2)[:, None] * _vec(z=8.5)
    out["browOuterUpLeft"] = r.deform((brow, outer_up), rings=3, pinned=lids_both)
    inner_up_left = (np.clip(1.0 - t / 0.6, 0, 1) ** 1.2)[:, None] * _vec(z=9.5, y=-0.8)
    both = np.concatenate([brow, r.t.mirror[brow]])
    both_off = np.concatenate([inner_up_left, inner_up_left * _FLIP_X])
    out["browInnerUp"] = r.symmetric(r.deform((both, both_off), rings=3, pinned=lids_both))
    return out


def _cheek_nose_shapes(r: _Rig) -> dict[str, np.ndarray]:
    out = {}
    # Puff: air inflates each cheek outward (along the surface normal) around the buccinator,
    # halfway between the nostril and the mouth corner; the closed lips bulge forward a little.
    corner = r.v[lm.MOUTH_CORNER_LEFT[0]]
    centre = np.array([corner[0] + 0.018, 0.0, 0.5 * (corner[2] + r.v[lm.NOSE_TIP, 2])])
    puff = r.gaussian(centre, 0.018)[:, None] * r.normals * 7.0 * MM
    lips = r.region("lips")
    lip_push = np.zeros_like(puff)
    lip_push[lips] = r.lip_taper(lips, 0.5)[:, None] * _vec(y=-1.5)
    out["cheekPuff"] = r.symmetric(puff + r.mirror(puff) + lip_push)

    # Cheek squint: the cheek under the outer eye rises and pushes the lower lid up.
    eye_outer = r.v[lm.EYE_CORNERS_LEFT[0]]
    centre = eye_outer + np.array([-0.004, 0.0, -0.014])
    below_eye = 1.0 / (1.0 + np.exp((r.v[:, 2] - eye_outer[2]) / 0.002))  # the upper lid barely moves
    lift = (r.gaussian(centre, 0.016) * below_eye)[:, None] * _vec(z=3.0, y=-1.0)
    out["cheekSquintLeft"] = lift

    nose = r.region("nose")
    nose_side = nose[
        (r.x[nose] > 0.006) & (r.v[nose, 2] < r.v[lm.NOSE_TIP, 2] + 0.012)
    ]  # left ala and lower side wall
    lift = np.clip(r.x[nose_side] / 0.014, 0, 1)[:, None]
    upper_lip_l = r.region("lip_upper_outer")
    lip_lift = (r.left_weight(upper_lip_l) * r.lip_taper(upper_lip_l, 0.3))[:, None] * _vec(z=1.2)
    out["noseSneerLeft"] = r.deform(
        (
            np.concatenate([nose_side, upper_lip_l]),
            np.concatenate([lift * _vec(x=0.8, z=3.0, y=-0.3), lip_lift]),
        ),
        rings=2,
        pinned=_rows(lm.EYELID_LOWER_LEFT_0, lm.EYELID_UPPER_LEFT_0),
    )
    return out


# ------------------------------------------------------------------------------------------------
# Jaw.


def _jaw_motion(r: _Rig) -> np.ndarray:
    """Where each vertex would go if it were rigidly fixed to the mandible at jawOpen = 1."""
    a = np.deg2rad(JAW_OPEN_DEGREES)
    rel = r.v - JAW_PIVOT.astype(np.float64)
    y = rel[:, 1] * np.cos(a) - rel[:, 2] * np.sin(a)
    z = rel[:, 1] * np.sin(a) + rel[:, 2] * np.cos(a)
    rotated = np.stack([rel[:, 0], y, z], axis=1)
    return rotated - rel + _vec(y=-JAW_OPEN_GLIDE_MM)


def _jaw_shapes(r: _Rig) -> dict[str, np.ndarray]:
    w = r.t.jaw_weight[:, None].astype(np.float64)
    motion = _jaw_motion(r)
    # Lips kept together while the jaw is open: both lips travel LIPS_SEALED of the way with it.
    sealed = jaw_follow_weight(
        r.v, r.t.faces, set(r.region("lip_upper").tolist()), set(r.region("lip_lower").tolist()), LIPS_SEALED
    )[:, None].astype(np.float64)
    return {
        "jawOpen": w * motion,
        "mouthClose": (sealed - w) * motion,
        "jawForward": w * _vec(y=-6.0),
        "jawLeft": w * _vec(x=6.0),
    }


# ------------------------------------------------------------------------------------------------
# Mouth.


def _round_lips(r: _Rig, squeeze: float, protrude: float, open_up: float, open_down: float) -> np.ndarray:
    """Funnel/pucker: the mouth narrows toward the centre, pushes forward, and optionally opens (mm).

    Narrowing and protrusion are broad smooth fields centred on the mouth (orbicularis oris
    drags the surrounding skin along); the opening is a lip-local move of the inner contours.
    """
    centre = r.v[r.region("lips")].mean(axis=0)
    half = r.mouth_half_width
    around = r.gaussian(centre, (1.5 * half, 0.018))
    field = np.zeros((r.n, 3))
    field[:, 0] = -np.clip(r.x / half, -1.0, 1.0) * squeeze * MM * r.gaussian(centre, (2.0 * half, 0.02))
    field[:, 1] = -protrude * MM * around
    if open_up or open_down:
        idx, off = [], []
        for name, dz in (
            ("lip_upper_inner", open_up),
            ("lip_lower_inner", -open_down),
            ("lip_upper_outer", 0.6 * open_up),
            ("lip_lower_outer", -0.6 * open_down),
        ):
            rows = r.region(name)
            idx.append(rows)
            off.append(r.lip_taper(rows)[:, None] * _vec(z=dz))
        corners = _rows(lm.MOUTH_CORNER_LEFT, lm.MOUTH_CORNER_RIGHT)
        field += r.deform(
            (np.concatenate(idx), np.concatenate(off)), rings=2, pinned=corners, free_extra=r.region("lips")
        )
    return r.symmetric(field)


def _corner_pull(r: _Rig, offset: np.ndarray, reach: float = 0.013) -> np.ndarray:
    """Pull the subject's left mouth corner by ``offset``; skin follows with a Gaussian falloff.

    Both lips, the cheek and the nasolabial fold move together near the corner, as when the
    zygomaticus or depressor muscles act on the modiolus. ``reach`` is the falloff radius (m).
    """
    distance = np.linalg.norm(r.v - r.v[lm.MOUTH_CORNER_LEFT[0]], axis=1)
    return np.exp(-((distance / reach) ** 2))[:, None] * offset[None, :]


def _lip_half(
    r: _Rig, region: str, offset: np.ndarray, corner_keep: float = 0.2, rings: int = 2
) -> np.ndarray:
    """Move the left half of one lip by ``offset`` (tapering to the corner and across the midline)."""
    lip = r.region(region)
    w = r.left_weight(lip) * r.lip_taper(lip, corner_keep) ** 0.5
    return r.deform(
        (lip, w[:, None] * offset[None, :]), rings=rings, pinned=np.asarray(lm.MOUTH_CORNER_RIGHT)
    )


def _roll(r: _Rig, outer: str, inner: str, lip: str, sign: float) -> np.ndarray:
    """Roll a lip in over the teeth: the vermilion border tucks back toward the contact line.

    ``sign`` is +1 for the lower lip (its border moves up) and -1 for the upper lip.
    """
    out_idx = r.region(outer)
    in_idx = r.region(inner)
    to = r.lip_taper(out_idx)[:, None] * _vec(y=4.0, z=3.0 * sign)
    ti = r.lip_taper(in_idx)[:, None] * _vec(y=3.0, z=-0.6 * sign)
    corners = _rows(lm.MOUTH_CORNER_LEFT, lm.MOUTH_CORNER_RIGHT)
    return r.symmetric(
        r.deform(
            (np.concatenate([out_idx, in_idx]), np.concatenate([to, ti])),
            rings=2,
            pinned=corners,
            free_extra=r.region(lip),
        )
    )


def _mouth_shapes(r: _Rig, jaw_open: np.ndarray) -> dict[str, np.ndarray]:
    out = {"mouthFunnel": _round_lips(r, squeeze=8.0, protrude=4.5, open_up=2.5, open_down=3.5)}
    out["mouthPucker"] = _round_lips(r, squeeze=12.0, protrude=6.0, open_up=0.0, open_down=0.0)

    lips = r.region("lips")
    out["mouthLeft"] = r.deform((lips, np.tile(_vec(x=5.0, y=0.5), (len(lips), 1))), rings=3)

    out["mouthSmileLeft"] = _corner_pull(r, _vec(x=5.0, y=4.0, z=8.0), reach=0.015)
    out["mouthFrownLeft"] = _corner_pull(r, _vec(x=2.0, y=0.5, z=-8.0))
    out["mouthDimpleLeft"] = _corner_pull(r, _vec(x=3.0, y=4.0, z=0.5))
    out["mouthStretchLeft"] = _corner_pull(r, _vec(x=7.0, y=1.5, z=-3.0))

    out["mouthRollLower"] = _roll(r, "lip_lower_outer", "lip_lower_inner", "lip_lower", +1.0)
    out["mouthRollUpper"] = _roll(r, "lip_upper_outer", "lip_upper_inner", "lip_upper", -1.0)

    lower = r.region("lip_lower")
    upper = r.region("lip_upper")
    chin = r.region("chin")
    shrug_lower = r.deform(
        (
            np.concatenate([lower, upper, chin]),
            np.concatenate(
                [
                    r.lip_taper(lower, 0.3)[:, None] * _vec(y=-2.0, z=2.5),
                    r.lip_taper(upper, 0.3)[:, None] * _vec(y=-0.5, z=1.8),
                    np.tile(_vec(y=-1.0, z=2.0), (len(chin), 1)),
                ]
            ),
        ),
        rings=2,
        pinned=_rows(lm.MOUTH_CORNER_LEFT[:1], lm.MOUTH_CORNER_RIGHT[:1]),
    )
    out["mouthShrugLower"] = r.symmetric(shrug_lower)
    out["mouthShrugUpper"] = r.symmetric(
        r.deform((upper, r.lip_taper(upper, 0.3)[:, None] * _vec(y=-1.5, z=2.0)), rings=2)
    )

    # Press: the lips thin against each other (borders move toward the contact line), pushed back a little.
    press_idx, press_off = [], []
    for name, offset in (
        ("lip_upper_outer", _vec(z=-1.8, y=0.8)),
        ("lip_lower_outer", _vec(z=1.8, y=0.8)),
        ("lip_upper_inner", _vec(y=0.8)),
        ("lip_lower_inner", _vec(y=0.8)),
    ):
        idx = r.region(name)
        w = r.left_weight(idx) * r.lip_taper(idx, 0.1)
        press_idx.append(idx)
        press_off.append(w[:, None] * offset[None, :])
    press_idx.append(np.asarray(lm.MOUTH_CORNER_LEFT))
    press_off.append(np.zeros((len(lm.MOUTH_CORNER_LEFT), 3)))
    press_idx, press_off = np.concatenate(press_idx), np.concatenate(press_off)
    # the pressed lips widen a little toward the corner
    spread = r.left_weight(press_idx) * np.clip(r.x[press_idx] / r.mouth_half_width, 0.0, 1.0) ** 2
    press_off[:, 0] += spread * 1.0 * MM
    out["mouthPressLeft"] = r.deform(
        (press_idx, press_off), rings=2, pinned=np.asarray(lm.MOUTH_CORNER_RIGHT)
    )

    out["mouthLowerDownLeft"] = _lip_half(r, "lip_lower", _vec(z=-5.0, y=-0.5))
    out["mouthUpperUpLeft"] = _lip_half(r, "lip_upper", _vec(z=5.0, y=-1.0))

    tongue = r.deform((lower, r.lip_taper(lower, 0.2)[:, None] * _vec(y=-3.0, z=-4.0)), rings=2)
    out["tongueOut"] = r.symmetric(tongue + 0.15 * jaw_open)
    return out


# ------------------------------------------------------------------------------------------------


def _build(template: FaceTemplate) -> np.ndarray:
    r = _Rig(template)
    shapes: dict[str, np.ndarray] = {}
    shapes.update(_eye_shapes(r))
    shapes.update(_brow_shapes(r))
    shapes.update(_cheek_nose_shapes(r))
    jaw = _jaw_shapes(r)
    shapes.update(jaw)
    shapes.update(_mouth_shapes(r, jaw["jawOpen"]))
    basis = np.zeros((len(ARKIT_NAMES), r.n, 3))
    for name in ARKIT_NAMES:
        if name.endswith("Right"):
            continue
        basis[ARKIT_INDEX[name]] = shapes[name]
    for name in ARKIT_NAMES:
        if name.endswith("Right"):
            basis[ARKIT_INDEX[name]] = r.mirror(basis[ARKIT_INDEX[name[: -len("Right")] + "Left"]])
    return basis.astype(np.float32)


@lru_cache(maxsize=1)
def _cached_basis() -> np.ndarray:
    basis = _build(load_template())
    basis.setflags(write=False)
    return basis


def arkit_basis() -> np.ndarray:
    """``[52, 468, 3]`` float32 vertex offsets (metres) of each ARKit shape at weight 1 (cached, read-only)."""
    return _cached_basis()


def apply_arkit(weights: np.ndarray) -> np.ndarray:
    """Offsets from the template for ARKit ``weights`` ``[T, 52]`` (-> ``[T, 468, 3]``) or ``[52]`` (-> ``[468, 3]``)."""
    w = np.asarray(weights, dtype=np.float32)
    if w.shape[-1:] != (len(ARKIT_NAMES),) or w.ndim not in (1, 2):
        raise ValueError(f"ARKit weights must have shape [T, 52] or [52], got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("ARKit weights contain NaN or inf; clean the input before applying the rig")
    return np.tensordot(w, arkit_basis(), axes=([-1], [0])).astype(np.float32)


def inner_lip_gap(vertices: np.ndarray, template: FaceTemplate | None = None) -> np.ndarray:
    """Mean vertical opening (metres) between facing inner-lip vertices, per frame; 0 when closed.

    Overlap (lips pressed past each other) counts as closed, not as a negative gap.
    """
    v = np.asarray(vertices)
    single = v.ndim == 2
    if single:
        v = v[None]
    t = template or load_template()
    if v.ndim != 3 or v.shape[1:] != (t.n_vertices, 3):
        raise ValueError(
            f"vertices must be [T, {t.n_vertices}, 3] absolute positions, got {np.shape(vertices)}"
        )
    upper, lower = t.inner_lip_pairs[:, 0], t.inner_lip_pairs[:, 1]
    gap = np.clip(v[:, upper, 2] - v[:, lower, 2], 0.0, None).mean(axis=1)
    return gap[0] if single else gap


def eyelid_gap(vertices: np.ndarray, side: str, template: FaceTemplate | None = None) -> np.ndarray:
    """Mean vertical opening (metres) between the upper and lower lid margins of one eye; 0 when shut."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    v = np.asarray(vertices)
    single = v.ndim == 2
    if single:
        v = v[None]
    t = template or load_template()
    upper = np.asarray(lm.EYELID_UPPER_LEFT_0)
    lower = np.asarray(lm.EYELID_LOWER_LEFT_0)
    if side == "right":
        upper, lower = t.mirror[upper], t.mirror[lower]
    gap = np.clip(v[:, upper, 2] - v[:, lower, 2], 0.0, None).mean(axis=1)
    return gap[0] if single else gap
