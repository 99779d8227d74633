"""The default head around the template face: skull and neck, eyeballs, teeth, tongue, mouth cavity.

The 468-vertex MediaPipe face is a mask; on its own an open mouth shows the backdrop and the eye
openings show nothing. This module builds, in the template's frame (metres, x = subject's left,
y = into the head, z = up) and without Blender, the parts that make it a head. Every part is a
separate mesh so the face keeps its exact topology, and each says how it moves (``role``):

- ``skin``: skull, neck and mouth cavity follow the face surface near their rim (``follow``
  weights: 1 where they meet the face, fading to 0), so no seam opens when the jaw drops;
- the ``engine.retarget.Part`` values ``lower_teeth`` / ``tongue`` (ride the jaw),
  ``upper_teeth`` (still) and ``eye`` (rotates about ``pivot`` for gaze).

Sizes follow adult anthropometry (eyeball 24 mm, incisors 10 mm, head length 19 cm); the parts are
placed relative to the template's landmarks, and tests check that none pokes through the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.face import landmarks as lm
from engine.face.template import MM, FaceTemplate, load_template

EYE_RADIUS = 12.0 * MM
IRIS_DEGREES = 32.0  # angular radius of the iris cap (about 12 mm across)
PUPIL_DEGREES = 11.0
# Cranium as an ellipsoid: centre and semi-axes (x, y, z), metres.
CRANIUM_CENTRE = np.array([0.0, 0.035, 0.025])
CRANIUM_AXES = np.array([0.077, 0.098, 0.108])
CRANIUM_ROUNDNESS = 2.5  # superellipsoid exponent
NECK_Y = 0.036  # the neck's axis runs vertically through (0, NECK_Y)
NECK_RADII = np.array([0.057, 0.058])  # x, y
NECK_Z = (-0.19, -0.045)
# Teeth: the upper incisors' facial surface and edge, relative to the upper inner lip's centre.
UPPER_FRONT_BEHIND_LIP = 2.6 * MM
UPPER_EDGE_BELOW_LIP = 1.3 * MM
OVERJET, OVERBITE = 2.0 * MM, 2.0 * MM  # lower incisors sit this far behind and above the upper edge
TOOTH_HEIGHT, TOOTH_DEPTH = 10.0 * MM, 6.5 * MM
ARCH_CURVE = 51.7  # 1/m: arch depth y = ARCH_CURVE * x^2 behind the incisors
TOOTH_WIDTHS_MM = (8.5, 6.5, 7.5, 7.0, 7.0, 10.0)  # incisor to first molar, one side
# Tongue: an ellipsoid resting on the floor of the mouth, its tip behind the lower incisors.
TONGUE_AXES = np.array([0.0165, 0.026, 0.0085])
ALVEOLAR_RIDGE_ABOVE_EDGE = 6.0 * MM  # where the tip touches for t/d/n/l, above the upper edge

MATERIALS: dict[str, tuple[float, float, float, float]] = {  # linear albedo, read by Workbench and EEVEE
    "skin": (0.68, 0.40, 0.29, 1.0),
    "sclera": (0.80, 0.78, 0.74, 1.0),
    "iris": (0.16, 0.09, 0.04, 1.0),
    "pupil": (0.005, 0.005, 0.005, 1.0),
    "teeth": (0.78, 0.74, 0.62, 1.0),
    "gum": (0.55, 0.16, 0.16, 1.0),
    "tongue": (0.55, 0.17, 0.17, 1.0),
    "mouth": (0.06, 0.01, 0.01, 1.0),
}


@dataclass(frozen=True, eq=False)
class HeadPart:
    """One separate mesh of the default head, in the template's frame."""

    name: str
    role: str  # "skin" or an engine.retarget.Part value
    vertices: np.ndarray  # [V, 3] float32
    faces: np.ndarray  # [F, 3] int32, counter-clockwise seen from outside
    uvs: np.ndarray  # [F, 3, 2] float32, per face corner
    material: np.ndarray  # [F] int32 index into ``materials``
    materials: tuple[str, ...]  # keys of MATERIALS
    pivot: np.ndarray  # [3] float32: rotation centre (eyes) or the part's centre
    follow: np.ndarray  # [V] float32 in 0..1: how closely a skin part follows the face surface


# ---- small mesh builders ------------------------------------------------------------------------


def _grid_faces(rows: int, cols: int, closed: bool) -> np.ndarray:
    """Triangles of a rows x cols vertex grid (row-major); ``closed`` wraps the columns."""
    out = []
    span = cols if closed else cols - 1
    for r in range(rows - 1):
        for c in range(span):
            a, b = r * cols + c, r * cols + (c + 1) % cols
            d, e = a + cols, b + cols
            out += [(a, b, e), (a, e, d)]
    return np.asarray(out, dtype=np.int32).reshape(-1, 3)


def _fan(centre: int, ring: np.ndarray, reverse: bool = False) -> np.ndarray:
    nxt = np.roll(ring, -1)
    tris = np.stack(
        [np.full(len(ring), centre), nxt, ring] if reverse else [np.full(len(ring), centre), ring, nxt], 1
    )
    return tris.astype(np.int32)


def _grid_uvs(faces: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([u[faces], v[faces]], axis=-1).astype(np.float32)


def _outward(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Flip triangles whose normal points toward ``centre`` (closed, roughly convex parts)."""
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("fi,fi->f", normal, tri.mean(axis=1) - centre) < 0
    faces = faces.copy()
    faces[inward] = faces[inward][:, ::-1]
    return faces


def _capped_tube(
    name: str,
    material: str,
    rings: list[np.ndarray],
    cap: np.ndarray,
    ring_v: np.ndarray,
    inside: np.ndarray,
    follow: np.ndarray,
) -> HeadPart:
    """A skin part made of closed rings of equal size, shut at the last ring by one cap vertex: triangles
    face away from ``inside`` (also the pivot), u runs round each ring, v along them (1 at the cap)."""
    n = len(rings[0])
    vertices = np.concatenate([*rings, cap[None]])
    faces = np.concatenate(
        [
            _grid_faces(len(rings), n, closed=True),
            _fan(len(vertices) - 1, np.arange(n) + (len(rings) - 1) * n),
        ]
    )
    faces = _outward(vertices, faces, inside)
    u = np.concatenate([np.tile(np.arange(n) / n, len(rings)), [0.5]])
    v = np.concatenate([np.repeat(ring_v, n), [1.0]])
    uvs = _grid_uvs(faces, u, v)
    return _part(name, "skin", vertices, faces, uvs, np.zeros(len(faces)), [material], inside, follow)


def _part(name, role, vertices, faces, uvs, material, materials, pivot, follow=None) -> HeadPart:
    v = np.asarray(vertices, dtype=np.float32)
    return HeadPart(
        name=name,
        role=role,
        vertices=v,
        faces=np.asarray(faces, dtype=np.int32),
        uvs=np.asarray(uvs, dtype=np.float32),
        material=np.asarray(material, dtype=np.int32),
        materials=tuple(materials),
        pivot=np.asarray(pivot, dtype=np.float32),
        follow=np.zeros(len(v), np.float32) if follow is None else np.asarray(follow, np.float32),
    )


# ---- skull and neck -----------------------------------------------------------------------------


def _on_cranium(direction: np.ndarray) -> np.ndarray:
    """Points of the cranium (a superellipsoid: fuller than an ellipsoid, like a skull) along unit
    ``direction`` rows from its centre."""
    radius = (np.abs(direction / CRANIUM_AXES) ** CRANIUM_ROUNDNESS).sum(axis=1) ** (-1.0 / CRANIUM_ROUNDNESS)
    return CRANIUM_CENTRE + direction * radius[:, None]


def _border_tangents(t: FaceTemplate, ring: list[int]) -> np.ndarray:
    """Unit directions in which the face surface leaves its outline (away from its inner neighbours)."""
    inner: list[set[int]] = [set() for _ in ring]
    on_ring = set(ring)
    index = {v: i for i, v in enumerate(ring)}
    for tri in t.faces:
        for v in tri:
            if int(v) in index:
                inner[index[int(v)]] |= {int(w) for w in tri if int(w) not in on_ring}
    out = np.stack([t.vertices[v] - t.vertices[sorted(n)].mean(axis=0) for v, n in zip(ring, inner)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _skull(t: FaceTemplate, rings: int = 22) -> HeadPart:
    """Loft from just behind the face's outline round the cranium to the back pole; near the outline
    it leaves in the face's own direction so the seam does not crease."""
    oval = t.vertices[list(lm.FACE_OVAL)].astype(np.float64)
    tangent = _border_tangents(t, list(lm.FACE_OVAL))
    inset = oval + 0.0008 * (CRANIUM_CENTRE - oval) / np.linalg.norm(CRANIUM_CENTRE - oval, axis=1)[:, None]
    start = inset - CRANIUM_CENTRE
    start_len = np.linalg.norm(start, axis=1)
    u0 = start / start_len[:, None]
    back = np.array([0.0, 1.0, 0.0])
    angle = np.arccos(np.clip(u0 @ back, -1.0, 1.0))
    points = []
    s_values = np.linspace(0.0, 1.0, rings + 1)[:-1] ** 1.4  # denser near the face
    for s in s_values:
        a = s * angle
        w0 = np.sin(angle - a) / np.sin(angle)
        w1 = np.sin(a) / np.sin(angle)
        d = w0[:, None] * u0 + w1[:, None] * back
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        blend = np.clip(s / 0.3, 0.0, 1.0)
        blend = blend * blend * (3 - 2 * blend)
        surface = _on_cranium(d) - CRANIUM_CENTRE
        radius = (1 - blend) * start_len + blend * np.linalg.norm(surface, axis=1)
        loft = CRANIUM_CENTRE + d * radius[:, None]
        arc = a * start_len
        along = inset + tangent * arc[:, None]  # the face surface carried on, for the first centimetre
        carry = np.clip(arc / 0.012, 0.0, 1.0)
        carry = (carry * carry * (3 - 2 * carry))[:, None]
        points.append(carry * loft + (1 - carry) * along)
    n = len(oval)
    follow = np.concatenate([np.clip(1.0 - np.repeat(s_values, n) / 0.12, 0.0, 1.0), [0.0]])
    return _capped_tube("skull", "skin", points, _on_cranium(back[None])[0], s_values, CRANIUM_CENTRE, follow)


def _neck(segments: int = 32, rings: int = 6) -> HeadPart:
    """An open cylinder from the shoulders up into the skull (its top is hidden inside)."""
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    z = np.linspace(NECK_Z[0], NECK_Z[1], rings)
    flare = 1.0 + 0.25 * np.clip((NECK_Z[0] + 0.04 - z) / 0.04, 0.0, 1.0)  # widens toward the shoulders
    x = NECK_RADII[0] * np.cos(phi)[None] * flare[:, None]
    y = NECK_Y + NECK_RADII[1] * np.sin(phi)[None] * flare[:, None]
    vertices = np.stack([x, y, np.repeat(z[:, None], segments, 1)], axis=-1).reshape(-1, 3)
    faces = _grid_faces(rings, segments, closed=True)
    axis_points = np.stack([np.zeros(len(vertices)), np.full(len(vertices), NECK_Y), vertices[:, 2]], 1)
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("fi,fi->f", normal, tri.mean(axis=1) - axis_points[faces].mean(axis=1)) < 0
    faces[inward] = faces[inward][:, ::-1]
    u = np.tile(phi / (2 * np.pi), rings)
    v = np.repeat(np.linspace(0.0, 1.0, rings), segments)
    pivot = np.array([0.0, NECK_Y, NECK_Z[1]])
    return _part(
        "neck", "skin", vertices, faces, _grid_uvs(faces, u, v), np.zeros(len(faces)), ["skin"], pivot
    )


# ---- eyes ---------------------------------------------------------------------------------------


def eye_centre(t: FaceTemplate, side: str) -> np.ndarray:
    """Centre of an eyeball: under the middle of the eye opening, as far forward as the lids allow.

    The skin round the eye (open, and shut as ``eyeBlink`` shuts it) stays 0.4 mm outside the ball.
    """
    from engine.arkit import ARKIT_INDEX
    from engine.arkit.basis import arkit_basis

    blink = arkit_basis()[ARKIT_INDEX["eyeBlinkLeft" if side == "left" else "eyeBlinkRight"]]
    if side == "left":
        upper, lower = np.asarray(lm.EYELID_UPPER_LEFT_0), np.asarray(lm.EYELID_LOWER_LEFT_0)
    else:
        upper, lower = np.asarray(lm.EYELID_UPPER_RIGHT_0), np.asarray(lm.EYELID_LOWER_RIGHT_0)
    margin = t.vertices[np.concatenate([upper, lower])].astype(np.float64)
    centre = np.array(
        [margin[:, 0].mean(), margin[:, 1].min(), 0.5 * (margin[:, 2].max() + margin[:, 2].min())]
    )
    skin = np.concatenate([t.vertices, t.vertices + blink]).astype(np.float64)
    lids = skin[np.linalg.norm(skin - centre, axis=1) < 0.03]  # the skin around this eye, open and shut
    for _ in range(200):  # step back until every lid point clears the ball
        if np.linalg.norm(lids - centre, axis=1).min() >= EYE_RADIUS + 0.0004:
            break
        centre[1] += 0.0001
    return centre


def _eye(t: FaceTemplate, side: str, rings: int = 24, segments: int = 32) -> HeadPart:
    """A ball looking along -y: white sclera, a brown iris cap and a black pupil."""
    polar = np.concatenate(
        [np.linspace(0.0, PUPIL_DEGREES, 4)[1:], np.linspace(PUPIL_DEGREES, IRIS_DEGREES, 5)[1:],
         np.linspace(IRIS_DEGREES, 180.0, rings)[1:-1]]
    )  # fmt: skip
    theta = np.deg2rad(polar)
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring_pts = np.stack(
        [np.sin(theta)[:, None] * np.cos(phi)[None], -np.cos(theta)[:, None].repeat(segments, 1),
         np.sin(theta)[:, None] * np.sin(phi)[None]], axis=-1
    ).reshape(-1, 3)  # fmt: skip
    unit = np.concatenate([ring_pts, [[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]])
    n_rings = len(polar)
    front, back = len(unit) - 2, len(unit) - 1
    faces = np.concatenate([
        _fan(front, np.arange(segments)),
        _grid_faces(n_rings, segments, closed=True),
        _fan(back, np.arange(segments) + (n_rings - 1) * segments),
    ])  # fmt: skip
    faces = _outward(unit, faces, np.zeros(3))
    centre = eye_centre(t, side)
    angle = np.degrees(np.arccos(np.clip(-unit[:, 1], -1.0, 1.0)))
    face_angle = angle[faces].max(axis=1)
    material = np.where(
        face_angle <= PUPIL_DEGREES + 1e-6, 2, np.where(face_angle <= IRIS_DEGREES + 1e-6, 1, 0)
    )
    u = 0.5 + 0.5 * unit[:, 0]
    v = 0.5 + 0.5 * unit[:, 2]
    return _part(
        f"eye_{side}",
        "eye",
        centre + EYE_RADIUS * unit,
        faces,
        _grid_uvs(faces, u, v),
        material,
        ["sclera", "iris", "pupil"],
        centre,
    )


# ---- teeth, tongue, mouth -----------------------------------------------------------------------


def _arch_line(front_y: float, steps: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of a dental arch (x, y), unit inward normals, and each point's tooth phase."""
    widths = np.asarray(TOOTH_WIDTHS_MM) * MM
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    s = np.linspace(-edges[-1], edges[-1], 2 * steps + 1)  # arc length from the midline
    # invert arc length of y = c x^2 numerically
    xs = np.linspace(0.0, 0.05, 2000)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ARCH_CURVE * xs**2)))])
    x = np.sign(s) * np.interp(np.abs(s), arc, xs)
    y = front_y + ARCH_CURVE * x**2
    tangent = np.stack([np.ones_like(x), 2 * ARCH_CURVE * x], 1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    inward = np.stack([-tangent[:, 1], tangent[:, 0]], 1)  # toward +y at the front
    phase = np.interp(np.abs(s), edges, np.arange(len(edges)))
    return np.stack([x, y], 1), inward, phase


def _teeth(t: FaceTemplate, upper: bool) -> HeadPart:
    """One row of teeth on its gum: a closed band along the arch, notched between the teeth."""
    lip = t.vertices[lm.LIP_UPPER_INNER[4]].astype(np.float64)
    front = lip[1] + UPPER_FRONT_BEHIND_LIP + (0.0 if upper else OVERJET)
    edge = lip[2] - UPPER_EDGE_BELOW_LIP + (0.0 if upper else OVERBITE)
    line, inward, phase = _arch_line(front)
    up = 1.0 if upper else -1.0
    notch = 0.6 * MM * 0.5 * (1.0 + np.cos(2 * np.pi * phase))  # the edge dips where two teeth meet
    section = ((0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0))  # (depth, height): edge out, root out, ...
    n = len(line)
    points = np.empty((n, len(section), 3))
    for k, (depth, height) in enumerate(section):
        points[:, k, :2] = line + inward * depth * TOOTH_DEPTH * (0.55 if height == 0.0 else 1.0)
        points[:, k, 2] = edge + up * (height * TOOTH_HEIGHT + (notch if height == 0.0 else 0.0))
    cols = len(section)
    vertices = np.concatenate(
        [points.reshape(-1, 3), points[0].mean(axis=0)[None], points[-1].mean(axis=0)[None]]
    )
    first, last = n * cols, n * cols + 1
    faces = np.concatenate(
        [
            _grid_faces(n, cols, closed=True),
            _fan(first, np.arange(cols)),
            _fan(last, (n - 1) * cols + np.arange(cols)),
        ]
    )
    core = points.mean(axis=1)
    vertex_core = np.concatenate([np.repeat(core, cols, axis=0), core[1][None], core[n - 2][None]])
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("fi,fi->f", normal, tri.mean(axis=1) - vertex_core[faces].mean(axis=1)) < 0
    faces[flip] = faces[flip][:, ::-1]
    height_of = np.concatenate([np.tile([h for _, h in section], n), [0.5, 0.5]])
    material = (height_of[faces].mean(axis=1) > 0.6).astype(np.int32)
    u = np.concatenate([np.repeat(np.linspace(0.0, 1.0, n), cols), [0.0, 1.0]])
    v = np.concatenate([np.tile(np.linspace(0.0, 1.0, cols), n), [0.5, 0.5]])
    centre = np.array([0.0, front + 0.012, edge + up * 0.5 * TOOTH_HEIGHT])
    name = "upper_teeth" if upper else "lower_teeth"
    return _part(name, name, vertices, faces, _grid_uvs(faces, u, v), material, ["teeth", "gum"], centre)


def _tongue(t: FaceTemplate, lower: HeadPart, rings: int = 14, segments: int = 24) -> HeadPart:
    """A flattened ellipsoid on the floor of the mouth, its tip just behind the lower incisors."""
    lingual = lower.vertices[:, 1][np.abs(lower.vertices[:, 0]) < 0.002].max()  # inner face of the incisors
    edge = lower.vertices[:, 2][np.abs(lower.vertices[:, 0]) < 0.002].max()
    centre = np.array([0.0, lingual + 0.0005 + TONGUE_AXES[1], edge + 0.5 * MM - TONGUE_AXES[2]])
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]  # from the tip (-y) to the back (+y)
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    unit = np.stack(
        [np.sin(theta)[:, None] * np.cos(phi)[None], -np.cos(theta)[:, None].repeat(segments, 1),
         np.sin(theta)[:, None] * np.sin(phi)[None]], axis=-1
    ).reshape(-1, 3)  # fmt: skip
    unit = np.concatenate([unit, [[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]])
    shape = unit * TONGUE_AXES
    shape[:, 2] -= 0.35 * TONGUE_AXES[2] * np.clip(-unit[:, 2], 0, 1)  # flatter underside
    n_rings = len(theta)
    tip, back = len(unit) - 2, len(unit) - 1
    faces = np.concatenate([
        _fan(tip, np.arange(segments)), _grid_faces(n_rings, segments, closed=True),
        _fan(back, np.arange(segments) + (n_rings - 1) * segments),
    ])  # fmt: skip
    faces = _outward(shape, faces, np.zeros(3))
    u = 0.5 + 0.5 * unit[:, 0]
    v = 0.5 + 0.5 * unit[:, 1]
    return _part(
        "tongue",
        "tongue",
        centre + shape,
        faces,
        _grid_uvs(faces, u, v),
        np.zeros(len(faces)),
        ["tongue"],
        centre,
    )


def tongue_tip_index(tongue: HeadPart) -> int:
    """The tongue's most forward vertex (its tip)."""
    return int(np.argmin(tongue.vertices[:, 1]))


def alveolar_ridge(upper: HeadPart) -> np.ndarray:
    """The point behind the upper incisors where the tongue tip touches for t, d, n, l, th."""
    front = np.abs(upper.vertices[:, 0]) < 0.002
    lingual = upper.vertices[front, 1].max()
    edge = upper.vertices[front, 2].min()
    return np.array([0.0, lingual + 0.5 * MM, edge + ALVEOLAR_RIDGE_ABOVE_EDGE], dtype=np.float32)


def tongue_tip_raise(tongue: HeadPart, ridge: np.ndarray) -> np.ndarray:
    """[V, 3] offsets that curl the tongue's front up so the tip meets ``ridge`` (a shape key)."""
    tip = tongue.vertices[tongue_tip_index(tongue)]
    length = 2 * TONGUE_AXES[1]
    along = np.clip((tongue.vertices[:, 1] - tip[1]) / (0.55 * length), 0.0, 1.0)
    weight = (1.0 - along) ** 2
    return (weight[:, None] * (ridge - tip)[None]).astype(np.float32)


def _inner_lip_ring(t: FaceTemplate) -> np.ndarray:
    """Inner lip contour as one closed loop: upper lip right to left, left corner, lower lip back."""
    upper = list(lm.LIP_UPPER_INNER)
    lower = list(lm.LIP_LOWER_INNER)[::-1]
    return np.asarray([lm.MOUTH_CORNER_RIGHT[-1], *upper, lm.MOUTH_CORNER_LEFT[-1], *lower], dtype=np.int64)


def _mouth(t: FaceTemplate) -> HeadPart:
    """A dark bag from the inner lip ring back to the throat; it holds the teeth and the tongue."""
    ring = t.vertices[_inner_lip_ring(t)].astype(np.float64)
    n = len(ring)
    centre = ring.mean(axis=0)
    angle = np.arctan2(ring[:, 2] - centre[2], ring[:, 0] - centre[0])
    ellipse = np.stack([np.cos(angle), np.sin(angle)], 1)
    # (depth behind the lips, half width, half height, height offset) per ring, in metres
    profile = [(0.0015, None, None, 0.0), (0.006, 0.021, 0.012, -0.002), (0.014, 0.028, 0.018, -0.004),
               (0.030, 0.033, 0.022, -0.004), (0.050, 0.032, 0.022, 0.000), (0.066, 0.020, 0.015, 0.000)]  # fmt: skip
    rings = [ring]
    for depth, half_w, half_h, dz in profile:
        if half_w is None:
            rings.append(ring + np.array([0.0, depth, 0.0]))
            continue
        pts = np.column_stack(
            [
                centre[0] + half_w * ellipse[:, 0],
                np.full(n, ring[:, 1].max() + depth),
                centre[2] + dz + half_h * ellipse[:, 1],
            ]
        )
        rings.append(pts)
    cap = np.array([centre[0], ring[:, 1].max() + profile[-1][0] + 0.01, centre[2]])
    inside = np.array([0.0, ring[:, 1].max() + 0.03, centre[2]])  # normals face away; shown from within
    follow = np.concatenate([np.repeat([1.0, 0.9, 0.6, 0.3, 0.0, 0.0, 0.0], n), [0.0]])
    return _capped_tube("mouth", "mouth", rings, cap, np.linspace(0, 1, len(rings)), inside, follow)


def eye_cover_faces(t: FaceTemplate | None = None) -> np.ndarray:
    """Indices of the template triangles that span the eye openings (MediaPipe's mesh closes them).

    The complete head leaves them out of the face's polygons so the eyeballs show; the vertices,
    and so every take, stay the same.
    """
    t = t or load_template()
    covered = []
    for upper, lower, corners in (
        (lm.EYELID_UPPER_LEFT_0, lm.EYELID_LOWER_LEFT_0, lm.EYE_CORNERS_LEFT),
        (lm.EYELID_UPPER_RIGHT_0, lm.EYELID_LOWER_RIGHT_0, lm.EYE_CORNERS_RIGHT),
    ):
        ring = np.asarray([*upper, *lower, *corners])
        covered.append(np.flatnonzero(np.isin(t.faces, ring).all(axis=1)))
    return np.concatenate(covered)


@lru_cache(maxsize=1)
def default_head() -> dict[str, HeadPart]:
    """Every separate part of the default head by name (cached; arrays are read-only)."""
    t = load_template()
    upper, lower = _teeth(t, upper=True), _teeth(t, upper=False)
    parts = [
        _skull(t),
        _neck(),
        _eye(t, "left"),
        _eye(t, "right"),
        upper,
        lower,
        _tongue(t, lower),
        _mouth(t),
    ]
    for part in parts:
        for array in (part.vertices, part.faces, part.uvs, part.material, part.pivot, part.follow):
            array.setflags(write=False)
    return {part.name: part for part in parts}
