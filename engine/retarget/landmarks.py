"""Find the face on an arbitrary head mesh: landmark positions the template can be aligned to.

Heads in Blender look toward -y with z up (``forward``/``up`` override that). The search:

1. The nose tip is the most forward point of the upper-middle of the mesh.
2. The midline profile (a slice through the nose tip, front-most surface per height) is compared
   with the template's own profile over a range of scales; the best scale is the face size, and a
   poor best match means there is no face there (a sphere, a box, a head seen from behind).
3. The mouth line (stomion) is the deepest point of the profile between the lips.
4. Mouth and eye corners come from the template scaled onto the profile and snapped to the surface;
   where the mesh has holes there (eye sockets, an open mouth) the hole rims give them exactly.

Users can pass their own picks; they replace the automatic ones name by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.retarget.errors import RetargetError
from engine.retarget.mesh import SurfaceQuery, boundary_edges, check_mesh, edges
from engine.retarget.numeric import connected_components

# Landmarks the fit uses (template landmark names, plus the mouth centre between the inner lips).
FIT_LANDMARKS: tuple[str, ...] = (
    "nose_tip",
    "nose_bridge",
    "chin",
    "stomion",
    "mouth_corner_left",
    "mouth_corner_right",
    "eye_outer_left",
    "eye_inner_left",
    "eye_outer_right",
    "eye_inner_right",
)
MIDLINE = ("nose_tip", "nose_bridge", "chin", "stomion")
# Worst acceptable profile mismatch, as RMS distance over the face height.
MAX_PROFILE_ERROR = 0.06
# Minimum nose protrusion relative to the template's (a smooth blob has none).
MIN_NOSE_PROMINENCE = 0.35


# With this many picks the others are placed from the template instead of searched for, so a head in
# any orientation works.
MIN_PICKS_TO_PLACE_REST = 4


@dataclass(frozen=True)
class HeadFrame:
    """Axes of the user's head: ``left`` (subject's left), ``back`` (away from the face), ``up``."""

    left: np.ndarray
    back: np.ndarray
    up: np.ndarray

    @classmethod
    def from_axes(cls, forward, up) -> HeadFrame:
        f = np.asarray(forward, dtype=np.float64)
        u = np.asarray(up, dtype=np.float64)
        if f.shape != (3,) or u.shape != (3,) or np.linalg.norm(f) == 0 or np.linalg.norm(u) == 0:
            raise RetargetError("forward and up must be non-zero 3-vectors, e.g. (0, -1, 0) and (0, 0, 1)")
        f = f / np.linalg.norm(f)
        u = u - f * (u @ f)
        if np.linalg.norm(u) < 1e-6:
            raise RetargetError("forward and up point the same way; give two perpendicular axes")
        u = u / np.linalg.norm(u)
        return cls(left=np.cross(u, f), back=-f, up=u)

    @property
    def matrix(self) -> np.ndarray:
        """Columns left/back/up: world -> canonical coordinates is ``p @ matrix``."""
        return np.stack([self.left, self.back, self.up], axis=1)


def slice_points(vertices: np.ndarray, edge_list: np.ndarray, axis: int, value: float) -> np.ndarray:
    """Points where mesh edges [E,2] cross the plane ``coord[axis] == value`` [M,3]."""
    e = edge_list
    d0 = vertices[e[:, 0], axis] - value
    d1 = vertices[e[:, 1], axis] - value
    cross = d0 * d1 <= 0
    e, d0, d1 = e[cross], d0[cross], d1[cross]
    denom = d0 - d1
    t = np.divide(d0, denom, out=np.zeros_like(d0), where=denom != 0)
    p0, p1 = vertices[e[:, 0]], vertices[e[:, 1]]
    return p0 + t[:, None] * (p1 - p0)


def front_profile(points: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(height z [B], front-most depth y [B]) of slice points [M,3] in canonical coordinates."""
    z, y = points[:, 2], points[:, 1]
    idx = np.floor((z - z.min()) / bin_size).astype(np.int64)
    n_bins = int(idx.max()) + 1
    front = np.full(n_bins, np.inf)
    np.minimum.at(front, idx, y)
    valid = np.isfinite(front)
    centres = z.min() + (np.arange(n_bins) + 0.5) * bin_size
    return centres[valid], front[valid]


@dataclass(frozen=True)
class _TemplateProfile:
    dz: np.ndarray  # heights relative to the nose tip
    dy: np.ndarray  # depth behind the nose tip
    width_at_nose: float
    face_height: float
    reference: np.ndarray  # most forward midline point, template frame
    mouth_corner_shift: np.ndarray  # [2,3] outer minus inner mouth corner (right, left)
    landmarks: dict[str, np.ndarray]  # FIT_LANDMARKS positions, template frame


@lru_cache(maxsize=1)
def _template_profile() -> _TemplateProfile:
    from engine.face import landmarks as lm
    from engine.face.template import load_template

    tpl = load_template()
    v = tpl.vertices.astype(np.float64)
    f = tpl.faces.astype(np.int64)
    marks = template_landmarks()
    # Reference point: the same "most forward midline point" the search finds on a user head (the
    # template's named nose tip sits a little lower).
    e = edges(f)
    z, y = front_profile(slice_points(v, e, 0, 0.0), 0.001)
    upper = z > v[:, 2].min() + 0.3 * np.ptp(v[:, 2])
    k = int(np.flatnonzero(upper)[np.argmin(y[upper])])
    nose = np.array([0.0, y[k], z[k]])
    horizontal = slice_points(v, e, 2, nose[2])
    return _TemplateProfile(
        dz=z - nose[2],
        dy=y - nose[1],
        width_at_nose=float(np.ptp(horizontal[:, 0])),
        face_height=float(np.ptp(v[:, 2])),
        reference=nose,
        mouth_corner_shift=np.stack(
            [
                v[lm.MOUTH_CORNER_RIGHT[0]] - v[lm.MOUTH_CORNER_RIGHT[-1]],
                v[lm.MOUTH_CORNER_LEFT[0]] - v[lm.MOUTH_CORNER_LEFT[-1]],
            ]
        ),
        landmarks=marks,
    )


@lru_cache(maxsize=1)
def _template_landmark_array() -> np.ndarray:
    """[L, 3] positions of FIT_LANDMARKS in order (read-only, cached)."""
    from engine.face.template import load_template

    tpl = load_template()
    v = tpl.vertices.astype(np.float64)
    rows = []
    for name in FIT_LANDMARKS:
        if name == "stomion":
            rows.append(0.5 * (v[tpl.landmarks["upper_lip_center"]] + v[tpl.landmarks["lower_lip_center"]]))
        else:
            rows.append(v[tpl.landmarks[name]])
    out = np.stack(rows)
    out.setflags(write=False)
    return out


def template_landmarks() -> dict[str, np.ndarray]:
    """Positions of :data:`FIT_LANDMARKS` on the template (metres, template frame); fresh copies."""
    return {name: row.copy() for name, row in zip(FIT_LANDMARKS, _template_landmark_array(), strict=True)}


def check_landmarks(
    picked: Mapping[str, object], vertices: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """User picks as positions; values may be [x, y, z] or a vertex index into ``vertices``."""
    out: dict[str, np.ndarray] = {}
    unknown = sorted(set(picked) - set(FIT_LANDMARKS))
    if unknown:
        raise RetargetError(f"unknown landmark name(s) {unknown}; use any of {list(FIT_LANDMARKS)}")
    for name, value in picked.items():
        if isinstance(value, int | np.integer):
            if vertices is None or not 0 <= int(value) < len(vertices):
                raise RetargetError(
                    f"landmark {name!r} refers to vertex {value}, which the mesh does not have"
                )
            out[name] = np.asarray(vertices[int(value)], dtype=np.float64)
            continue
        pos = np.asarray(value, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise RetargetError(
                f"landmark {name!r} must be a vertex index or a finite [x, y, z], got {value!r}"
            )
        out[name] = pos
    return out


def _rims(vertices: np.ndarray, faces: np.ndarray) -> list[np.ndarray]:
    """Vertex sets of the mesh's hole rims (boundary loops)."""
    b = boundary_edges(faces)
    if len(b) == 0:
        return []
    labels = connected_components(len(vertices), b)
    on_rim = np.unique(b)
    return [on_rim[labels[on_rim] == lab] for lab in np.unique(labels[on_rim])]


def _refine_from_rims(
    canon: np.ndarray, rims: list[np.ndarray], marks: dict[str, np.ndarray], scale: float
) -> dict[str, np.ndarray]:
    """Corner landmarks from hole rims whose size and place agree with the prediction."""
    outer_from_inner = scale * _template_profile().mouth_corner_shift
    refined = dict(marks)
    groups = (
        ("mouth_corner_right", "mouth_corner_left"),
        ("eye_outer_right", "eye_inner_right"),
        ("eye_inner_left", "eye_outer_left"),
    )
    for a, b in groups:
        centre = 0.5 * (marks[a] + marks[b])
        width = abs(marks[b][0] - marks[a][0])
        for rim in rims:
            pts = canon[rim]
            rim_width = np.ptp(pts[:, 0])
            if not 0.6 * width <= rim_width <= 1.5 * width:
                continue
            if np.linalg.norm(pts.mean(axis=0) - centre) > 0.5 * width:
                continue
            refined[a] = pts[np.argmin(pts[:, 0])]
            refined[b] = pts[np.argmax(pts[:, 0])]
            if a.startswith("mouth"):
                # The rim ends at the inner corners; the landmark is the outer corner beside it.
                refined[a] = refined[a] + outer_from_inner[0]
                refined[b] = refined[b] + outer_from_inner[1]
                mid = np.abs(pts[:, 0] - 0.5 * (refined[a][0] + refined[b][0])) < 0.15 * rim_width
                if mid.any():
                    refined["stomion"] = pts[mid].mean(axis=0)
            break
    return refined


def _complete_from_picks(
    vertices: np.ndarray, faces: np.ndarray, user: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Missing landmarks from the template aligned to the picked ones, snapped onto the surface."""
    from engine.retarget.align import umeyama

    tpl = template_landmarks()
    names = sorted(user)
    sim = umeyama(np.stack([tpl[n] for n in names]), np.stack([user[n] for n in names]))
    missing = [n for n in FIT_LANDMARKS if n not in user]
    out = dict(user)
    if missing:
        predicted = sim.apply(np.stack([tpl[n] for n in missing]))
        tri, bary, _ = SurfaceQuery(vertices, faces).query(predicted)
        snapped = np.einsum("pk,pkc->pc", bary, vertices[faces[tri]])
        for n, p, q in zip(missing, snapped, predicted, strict=True):
            out[n] = q if n == "stomion" else p  # the mouth centre may be in an open mouth
    return out


def _profile_scale(canon: np.ndarray, faces: np.ndarray, nose: np.ndarray, tp):
    """The head's size relative to the template, from its midline profile through the nose tip,
    and that profile (z, y); RetargetError when nothing there is shaped like a face."""
    edge_list = edges(faces)
    horizontal = slice_points(canon, edge_list, 2, nose[2])
    near = horizontal[horizontal[:, 1] < nose[1] + 2.0 * np.ptp(horizontal[:, 0])]
    guess = float(np.ptp(near[:, 0])) / tp.width_at_nose if len(near) else 1.0
    if not guess > 0:
        raise RetargetError(
            "no face-like region found: the mesh has no width at nose height; "
            "check the head faces -y with z up, or pick landmarks by hand"
        )
    midline = slice_points(canon, edge_list, 0, nose[0])
    z_u, y_u = front_profile(midline, 0.001 * guess)
    if len(z_u) < 10:
        raise RetargetError(
            "no face-like region found: the midline through the nose is too short; "
            "check the head faces -y with z up, or pick landmarks by hand"
        )

    def profile_error(s: float) -> float:
        zq = nose[2] + s * tp.dz
        inside = (zq >= z_u.min()) & (zq <= z_u.max())
        if inside.mean() < 0.8:
            return np.inf
        dy = np.interp(zq[inside], z_u, y_u) - nose[1]
        return float(np.sqrt(np.mean((dy / s - tp.dy[inside]) ** 2)) / tp.face_height)

    scales = guess * np.exp(np.linspace(np.log(0.5), np.log(2.0), 61))
    errors = np.array([profile_error(s) for s in scales])
    best = int(np.argmin(errors))
    fine = scales[best] * np.exp(np.linspace(-0.03, 0.03, 13))
    fine_err = np.array([profile_error(s) for s in fine])
    scale = float(fine[np.argmin(fine_err)])
    err = float(fine_err.min())
    if best in (0, len(scales) - 1):
        # The best size is at the end of the plausible range: nothing there is shaped like a face.
        err = max(err, np.inf)
    if not err <= MAX_PROFILE_ERROR:
        raise RetargetError(
            "no face-like region found (the midline profile through the most forward point does not "
            f"match a face{'' if np.isinf(err) else f': off by {err:.0%} of its height'}); check the head "
            "faces -y with z up, or pick the landmarks by hand"
        )
    # A nose stands out from the face below and above it.
    probe_dz = np.array([-0.012, 0.02])  # below the nose (upper lip) and at the nose bridge, template metres
    tpl_depth = np.interp(probe_dz, tp.dz, tp.dy)
    usr_depth = (np.interp(nose[2] + scale * probe_dz, z_u, y_u) - nose[1]) / scale
    if np.any(usr_depth < MIN_NOSE_PROMINENCE * tpl_depth):
        raise RetargetError(
            "no face-like region found: nothing nose-like stands out at the front of the mesh; "
            "check the head faces -y with z up, or pick the landmarks by hand"
        )
    return scale, z_u, y_u


def find_landmarks(
    vertices: np.ndarray,
    faces: np.ndarray,
    picked: Mapping[str, object] | None = None,
    forward=(0.0, -1.0, 0.0),
    up=(0.0, 0.0, 1.0),
) -> dict[str, np.ndarray]:
    """Positions [3] of :data:`FIT_LANDMARKS` on a head mesh, in the mesh's own coordinates.

    ``picked`` (name -> position or vertex index) overrides automatic ones; from four picks on, the
    rest are placed from the template instead of searched for, so any orientation works.
    """
    vertices, faces = check_mesh(vertices, faces, "head mesh")
    user = check_landmarks(picked or {}, vertices)
    if all(name in user for name in FIT_LANDMARKS):
        return user
    if len(user) >= MIN_PICKS_TO_PLACE_REST:
        return _complete_from_picks(vertices, faces, user)
    frame = HeadFrame.from_axes(forward, up)
    canon = vertices @ frame.matrix  # x: left, y: back, z: up
    tp = _template_profile()

    # 1. Nose tip: most forward point of the upper-middle part.
    z_lo, z_hi = canon[:, 2].min(), canon[:, 2].max()
    upper = canon[:, 2] > z_lo + 0.3 * (z_hi - z_lo)
    xs = canon[upper, 0]
    centre_x = 0.5 * (xs.min() + xs.max())
    band = upper & (np.abs(canon[:, 0] - centre_x) < 0.12 * np.ptp(xs))
    if "nose_tip" in user:
        nose = user["nose_tip"] @ frame.matrix
    else:
        nose = canon[np.flatnonzero(band)[np.argmin(canon[band, 1])]]

    # 2. Scale from the midline profile.
    scale, z_u, y_u = _profile_scale(canon, faces, nose, tp)

    # 3. Template landmarks placed by the profile scale, midline ones snapped onto the profile.
    offset = nose - scale * tp.reference
    marks = {name: scale * pos + offset for name, pos in tp.landmarks.items()}
    for name in MIDLINE:
        marks[name][0] = nose[0]
        marks[name][1] = np.interp(marks[name][2], z_u, y_u)
    lip_window = np.abs(z_u - marks["stomion"][2]) < 0.004 * scale
    if lip_window.any():
        k = np.flatnonzero(lip_window)[np.argmax(y_u[lip_window])]
        marks["stomion"] = np.array([nose[0], y_u[k], z_u[k]])

    # 4. Lateral landmarks: onto the surface, then from hole rims where there are some.
    query = SurfaceQuery(canon, faces)
    lateral = [n for n in FIT_LANDMARKS if n not in MIDLINE]
    pts = np.stack([marks[n] for n in lateral])
    tri, bary, _ = query.query(pts)
    snapped = np.einsum("pk,pkc->pc", bary, canon[faces[tri]])
    for n, p in zip(lateral, snapped, strict=True):
        marks[n] = p
    marks = _refine_from_rims(canon, _rims(canon, faces), marks, scale)

    world = {name: pos @ frame.matrix.T for name, pos in marks.items()}
    world.update(user)
    return world
