"""The template face: MediaPipe's canonical mesh with named regions and landmarks.

Every part of DualFace (motion synthesis, model, metrics, Blender) animates this one mesh, so the
anatomy lives here once: which vertices are the lips, eyelids, jaw, ... and which upper/lower
inner-lip vertices face each other (used to measure mouth closure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.face import landmarks as lm
from engine.face.deform import adjacency, smooth_deform, uniform_laplacian

ASSET = Path(__file__).resolve().parent / "assets" / "canonical_face.npz"
N_VERTICES = 468  # the MediaPipe face mesh the model animates
MM = 0.001  # one millimetre in the template's units (metres)

# Jaw rotation pivot (metres, Blender axes). The mandible opens about an instantaneous centre that
# lies low on the ramus (below and in front of the ears) because the condyles glide forward while
# the jaw rotates; a fixed pivot there gives the chin its down-and-slightly-back path.
JAW_PIVOT = np.array([0.0, 0.015, -0.025], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class FaceTemplate:
    vertices: np.ndarray  # [468, 3] float32, metres, Blender axes
    faces: np.ndarray  # [F, 3] int32, no triangle bridges the inner lips
    uvs: np.ndarray  # [468, 2] float32
    regions: dict[str, np.ndarray]  # name -> sorted int64 vertex indices
    landmarks: dict[str, int]
    inner_lip_pairs: np.ndarray  # [K, 2] int64: (upper, lower) inner-lip vertices facing each other
    mirror: np.ndarray  # [468] int64: index of each vertex's left/right twin
    jaw_weight: np.ndarray = field(repr=False)  # [468] float32 in 0..1: how much a vertex follows the jaw

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])


def _flood(rings: list[set[int]], seed, stop, block) -> set[int]:
    """Vertices reachable from ``seed`` without passing ``block`` or going beyond ``stop``."""
    out = set(seed)
    frontier = set(seed)
    while frontier:
        nxt = set()
        for i in frontier:
            if i in stop:
                continue
            nxt |= {j for j in rings[i] if j not in block and j not in out}
        out |= nxt
        frontier = nxt
    return out


def jaw_follow_weight(
    vertices: np.ndarray,
    faces: np.ndarray,
    upper_lip: set[int],
    lower_lip: set[int],
    sealed: float | None = None,
) -> np.ndarray:
    """Smooth 0..1 field: how much each vertex follows the mandible when the jaw opens.

    Open lips (``sealed=None``): 1 on the lower lip and mandible, 0 on the upper lip, nose and
    above. Sealed lips (``sealed=s``): both lips follow by ``s`` so they stay together while the
    skin between lower lip and chin stretches -- ARKit's jawOpen + mouthClose. The cheeks and
    the chin fold are solved with the bi-Laplacian so the skin stretches smoothly instead of
    tearing at a hard boundary.
    """
    x, z = vertices[:, 0], vertices[:, 2]
    corner_x = vertices[lm.MOUTH_CORNER_LEFT[0], 0]
    corner_z = vertices[lm.MOUTH_CORNER_LEFT[0], 2]
    nose_bottom_z = vertices[lm.NOSE_BOTTOM, 2]
    corners = set(lm.MOUTH_CORNER_LEFT) | set(lm.MOUTH_CORNER_RIGHT)
    if sealed is None:
        # Each lip moves as a unit across its thickness (no rolling); toward the corners the lower
        # lip follows the jaw less and the upper lip a little, meeting at one half at the corners.
        ramp = np.clip((np.abs(x) - 0.4 * corner_x) / (0.6 * corner_x), 0.0, 1.0)
        toward_corner = 0.5 * ramp**2 * (3.0 - 2.0 * ramp)  # smoothstep, 0 .. 0.5
        prescribed = {i: 1.0 - toward_corner[i] for i in lower_lip}
        prescribed |= {i: toward_corner[i] for i in upper_lip}
        prescribed |= {i: 0.5 for i in corners}
        chin_below = 0.010
    else:
        prescribed = {i: float(sealed) for i in set(upper_lip) | set(lower_lip) | corners}
        chin_below = 0.018
    prescribed |= {int(i): 1.0 for i in np.nonzero(z < corner_z - chin_below)[0] if int(i) not in prescribed}
    prescribed |= {int(i): 0.0 for i in np.nonzero(z > nose_bottom_z)[0]}
    handles = np.asarray(sorted(prescribed))
    values = np.array([[prescribed[int(i)], 0.0, 0.0] for i in handles])
    free = np.setdiff1d(np.arange(len(vertices)), handles)
    lap = uniform_laplacian(faces, len(vertices))
    field_ = smooth_deform(lap.T @ lap, handles, values, free)[:, 0]
    return np.clip(field_, 0.0, 1.0).astype(np.float32)


def _regions(vertices: np.ndarray, faces: np.ndarray, mirror: np.ndarray) -> tuple[dict, np.ndarray]:
    rings = adjacency(faces, len(vertices))
    x, z = vertices[:, 0], vertices[:, 2]
    corners = set(lm.MOUTH_CORNER_LEFT) | set(lm.MOUTH_CORNER_RIGHT)
    lip_upper = _flood(rings, lm.LIP_UPPER_INNER, set(lm.LIP_UPPER_OUTER), corners)
    lip_lower = _flood(rings, lm.LIP_LOWER_INNER, set(lm.LIP_LOWER_OUTER), corners)
    lips = lip_upper | lip_lower | corners

    def side(indices: set[int], left: bool) -> set[int]:
        return {i for i in indices if (x[i] > 0) == left}

    regions: dict[str, set[int]] = {
        "lip_upper_outer": set(lm.LIP_UPPER_OUTER),
        "lip_upper_inner": set(lm.LIP_UPPER_INNER),
        "lip_lower_outer": set(lm.LIP_LOWER_OUTER),
        "lip_lower_inner": set(lm.LIP_LOWER_INNER),
        "lip_upper": lip_upper,
        "lip_lower": lip_lower,
        "lips": lips,
        "eyelid_upper_left": set(lm.EYELID_UPPER_LEFT_0) | set(lm.EYELID_UPPER_LEFT_1),
        "eyelid_upper_right": set(lm.EYELID_UPPER_RIGHT_0) | set(lm.EYELID_UPPER_RIGHT_1),
        "eyelid_lower_left": set(lm.EYELID_LOWER_LEFT_0) | set(lm.EYELID_LOWER_LEFT_1),
        "eyelid_lower_right": set(lm.EYELID_LOWER_RIGHT_0) | set(lm.EYELID_LOWER_RIGHT_1),
        "brow_left": set(lm.BROW_UPPER_LEFT) | set(lm.BROW_LOWER_LEFT),
        "brow_right": set(lm.BROW_UPPER_RIGHT) | set(lm.BROW_LOWER_RIGHT),
    }
    for s in ("left", "right"):
        corners_eye = lm.EYE_CORNERS_LEFT if s == "left" else lm.EYE_CORNERS_RIGHT
        regions[f"eye_{s}"] = regions[f"eyelid_upper_{s}"] | regions[f"eyelid_lower_{s}"] | set(corners_eye)

    # Nose: between the alae, from below the nostrils up to the bridge between the eyes.
    ala_x = abs(vertices[lm.NOSE_ALA_LEFT, 0]) + 0.004
    nose_z = (vertices[lm.NOSE_BOTTOM, 2] - 0.002, vertices[lm.NOSE_BRIDGE, 2])
    inner_eye_x = abs(vertices[lm.EYE_CORNERS_LEFT[1], 0])
    nose = set()
    for i in range(len(vertices)):
        # the bridge narrows towards the eyes: allowed half-width shrinks linearly with height
        t = np.clip((z[i] - nose_z[0]) / (nose_z[1] - nose_z[0]), 0.0, 1.0)
        half_width = ala_x + t * (0.6 * inner_eye_x - ala_x)
        if nose_z[0] <= z[i] <= nose_z[1] and abs(x[i]) <= half_width:
            nose.add(i)
    nose -= lips
    regions["nose"] = nose

    brows = regions["brow_left"] | regions["brow_right"]
    # Forehead: everything above the upper brow line (interpolated across x), plus the glabella.
    brow_line = sorted((abs(x[i]), z[i]) for i in lm.BROW_UPPER_LEFT)
    brow_x, brow_z = np.array(brow_line).T
    above_brow = z > np.interp(np.abs(x), brow_x, brow_z) + 0.002
    glabella_z = vertices[lm.NOSE_BRIDGE, 2]
    glabella = (np.abs(x) < inner_eye_x) & (z > glabella_z + 0.004)
    forehead = set(np.nonzero(above_brow | glabella)[0].tolist())
    regions["forehead"] = forehead - brows

    eye_any = regions["eye_left"] | regions["eye_right"]
    eye_ring = set(lm.EYE_RING_LOWER_LEFT_2) | set(lm.EYE_RING_LOWER_RIGHT_2)
    cheek_top = min(z[i] for i in eye_ring)
    cheek_bottom = vertices[lm.MOUTH_CORNER_LEFT[0], 2] - 0.006
    oval_x = 0.85 * abs(vertices[454, 0])
    cheeks = (
        {
            i
            for i in range(len(vertices))
            if cheek_bottom <= z[i] <= cheek_top + 0.004 and ala_x <= abs(x[i]) <= oval_x
        }
        - nose
        - lips
        - eye_any
    )
    regions["cheek_left"] = side(cheeks, True)
    regions["cheek_right"] = side(cheeks, False)

    jaw_weight = jaw_follow_weight(vertices, faces, lip_upper, lip_lower)
    jaw = set(np.nonzero(jaw_weight > 0.5)[0].tolist())
    regions["jaw"] = jaw
    chin_z = vertices[lm.LOWER_LIP_BOTTOM, 2] - 0.003
    regions["chin"] = {i for i in jaw if z[i] < chin_z and abs(x[i]) < 0.025}

    nose_tip_z = vertices[lm.NOSE_TIP, 2]
    regions["upper_face"] = set(np.nonzero(z > nose_tip_z)[0].tolist())
    # EVE mask: the whole band from the lower lids up, eyes, brows and forehead (not the nose)
    lower_lid_z = min(z[i] for i in lm.EYELID_LOWER_LEFT_1)
    band = set(np.nonzero(z >= lower_lid_z)[0].tolist()) - nose
    regions["eyes_forehead"] = band | eye_any | brows | regions["forehead"]
    out = {name: np.asarray(sorted(idx), dtype=np.int64) for name, idx in regions.items()}
    return out, jaw_weight


@lru_cache(maxsize=1)
def load_template() -> FaceTemplate:
    """The canonical face (cached; treat the arrays as read-only)."""
    if not ASSET.is_file():
        raise FileNotFoundError(
            f"{ASSET} is missing; regenerate it with `python -m engine.face.extract --npm-tgz PATH`"
        )
    with np.load(ASSET) as data:
        vertices = data["vertices"].astype(np.float32)
        faces = data["faces"].astype(np.int32)
        uvs = data["uvs"].astype(np.float32)
        mirror = data["mirror"].astype(np.int64)
    if vertices.shape != (N_VERTICES, 3):
        raise ValueError(
            f"{ASSET} holds {vertices.shape} vertices, expected ({N_VERTICES}, 3); re-extract it"
        )
    regions, jaw_weight = _regions(vertices, faces, mirror)
    landmarks = {
        "nose_tip": lm.NOSE_TIP,
        "nose_bottom": lm.NOSE_BOTTOM,
        "nose_bridge": lm.NOSE_BRIDGE,
        "chin": lm.CHIN,
        "mouth_corner_left": lm.MOUTH_CORNER_LEFT[0],
        "mouth_corner_right": lm.MOUTH_CORNER_RIGHT[0],
        "eye_outer_left": lm.EYE_CORNERS_LEFT[0],
        "eye_inner_left": lm.EYE_CORNERS_LEFT[1],
        "eye_outer_right": lm.EYE_CORNERS_RIGHT[0],
        "eye_inner_right": lm.EYE_CORNERS_RIGHT[1],
        "upper_lip_center": lm.LIP_UPPER_INNER[4],
        "lower_lip_center": lm.LIP_LOWER_INNER[4],
        "upper_lip_top": lm.UPPER_LIP_TOP,
        "lower_lip_bottom": lm.LOWER_LIP_BOTTOM,
        "forehead_center": lm.FOREHEAD_CENTER,
        "cheek_left": lm.CHEEK_LEFT,
        "cheek_right": lm.CHEEK_RIGHT,
    }
    pairs = np.stack([np.asarray(lm.LIP_UPPER_INNER), np.asarray(lm.LIP_LOWER_INNER)], axis=1).astype(
        np.int64
    )
    for arr in (vertices, faces, uvs, mirror, jaw_weight, pairs, *regions.values()):
        arr.setflags(write=False)
    return FaceTemplate(
        vertices=vertices,
        faces=faces,
        uvs=uvs,
        regions=regions,
        landmarks=landmarks,
        inner_lip_pairs=pairs,
        mirror=mirror,
        jaw_weight=jaw_weight,
    )
