"""Retargeting to arbitrary heads: alignment maths, the fit, motion transfer, parts, cache, bad input.

Error bounds. "Lip error" is the largest distance, over lip vertices and frames, between the motion
carried through the correspondence and the motion computed directly on the same vertices, divided
by the largest lip motion in the take (jaw fully open moves the lower lip about 30 mm). Measured
when the bounds were set: 0.00 % / 1.5 % / 0.03 % / 1.2 % for the four cases below.

- template onto itself in any pose (picked landmarks): every user vertex lies on the fitted
  template, so the transfer is exact up to float error and smoothing, which only reaches
  neighbours closer than a third of the local template edge (< 1 %).
- template onto itself, automatic landmarks, head turned by a few degrees: the surface ICP
  recovers the pose to ~0.1 degrees and ~1 % in scale; the remaining error is that misfit (< 3 %).
- subdivided copy: midpoints lie on template edges, so barycentric transfer reproduces the direct
  (midpoint) motion exactly; smoothing is the only loss (< 1 %).
- decimated copy: the template is fitted to a coarser surface, so fitted vertices sit up to ~1.5 mm
  off their rest positions and the lips near the corners are decided from a coarser slit (< 3 %).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES
from engine.arkit.basis import apply_arkit, arkit_basis
from engine.face.template import load_template
from engine.retarget import (
    FIT_LANDMARKS,
    Part,
    RetargetError,
    TransferSettings,
    classify_part,
    find_landmarks,
    fit_head,
    jaw_motion,
    nonrigid_fit,
    part_from_name,
    part_offsets,
    umeyama,
)
from engine.retarget.correspondence import LIP_LOWER, LIP_UPPER, Correspondence
from engine.retarget.landmarks import template_landmarks
from engine.retarget.mesh import SurfaceQuery, closest_on_triangles, edges

TPL = load_template()
LIPS = TPL.regions["lips"]


def _take(n_frames=12, seed=0):
    rng = np.random.default_rng(seed)
    w = np.clip(rng.uniform(-0.4, 1.0, size=(n_frames, 52)), 0, 1).astype(np.float32)
    w[0] = 0
    w[1, ARKIT_INDEX["jawOpen"]] = 1.0
    return apply_arkit(w)


def _lip_error(corr: Correspondence, offsets, direct, lip_vertices, scale):
    moved = corr.transfer(offsets)
    err = np.linalg.norm(moved[:, lip_vertices] - direct[:, lip_vertices], axis=-1).max()
    return err / (scale * np.linalg.norm(offsets[:, LIPS], axis=-1).max())


def subdivide(vertices, faces):
    """Midpoint subdivision (each triangle -> 4); returns the new mesh and the edge each midpoint halves."""
    e = edges(faces)
    index = {tuple(pair): len(vertices) + k for k, pair in enumerate(e)}
    mids = 0.5 * (vertices[e[:, 0]] + vertices[e[:, 1]])
    out = []
    for a, b, c in faces:
        ab, bc, ca = (index[tuple(sorted(p))] for p in ((a, b), (b, c), (c, a)))
        out += [(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)]
    return np.vstack([vertices, mids]), np.asarray(out), e


def decimate(vertices, faces, keep_every=2):
    """Collapse an independent set of interior vertices into a neighbour; kept vertices keep positions."""
    n = len(vertices)
    e = edges(faces)
    boundary = set()
    ekeys, counts = np.unique(
        np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1),
        axis=0,
        return_counts=True,
    )
    for i, j in ekeys[counts == 1]:
        boundary.update((i, j))
    rings = [set() for _ in range(n)]
    for i, j in e:
        rings[i].add(j)
        rings[j].add(i)
    target = np.arange(n)
    blocked = set(boundary) | set(TPL.landmarks.values())
    removed = 0
    for v in range(0, n, keep_every):
        if v in blocked:
            continue
        keep = min(rings[v] - blocked, key=lambda u: np.linalg.norm(vertices[u] - vertices[v]), default=None)
        if keep is None:
            continue
        target[v] = keep
        blocked |= {v} | rings[v]
        removed += 1
    f = target[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    kept = np.setdiff1d(np.arange(n), np.flatnonzero(target != np.arange(n)))
    remap = -np.ones(n, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return vertices[kept], remap[f], kept


# ---------------------------------------------------------------------------------------------
# Maths on synthetic point sets


def test_umeyama_recovers_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    rot = Rotation.random(random_state=3).as_matrix()
    dst = 2.7 * src @ rot.T + np.array([1.0, -2.0, 0.5])
    sim = umeyama(src, dst)
    np.testing.assert_allclose(sim.rotation, rot, atol=1e-10)
    assert sim.scale == pytest.approx(2.7)
    np.testing.assert_allclose(sim.inverse().apply(dst), src, atol=1e-10)


def test_umeyama_never_reflects_and_rejects_degenerate_sets():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    sim = umeyama(src, src * np.array([-1.0, 1.0, 1.0]))  # a mirror image
    assert np.linalg.det(sim.rotation) == pytest.approx(1.0)
    with pytest.raises(RetargetError, match="degenerate"):
        umeyama(np.outer(np.arange(5.0), [1, 2, 3]), rng.normal(size=(5, 3)))
    with pytest.raises(RetargetError, match="at least 3"):
        umeyama(src[:2], src[:2])


def test_closest_point_on_triangles_beats_sampling():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(3, 500, 3))
    p = rng.normal(size=(500, 3)) * 2
    bary = closest_on_triangles(p, a, b, c)
    assert np.all(bary >= -1e-12) and np.allclose(bary.sum(1), 1)
    q = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
    d = np.linalg.norm(p - q, axis=1)
    uv = rng.uniform(size=(3000, 2))
    uv[uv.sum(1) > 1] = 1 - uv[uv.sum(1) > 1]
    samples = a[None] + uv[:, :1, None] * (b - a)[None] + uv[:, 1:, None] * (c - a)[None]
    sampled = np.linalg.norm(samples - p[None], axis=-1).min(axis=0)
    assert np.all(d <= sampled + 1e-12)


def test_nonrigid_fit_follows_a_smooth_warp():
    v = TPL.vertices.astype(np.float64)
    warped = v.copy()
    warped[:, 0] *= 1.12  # wider face
    warped[:, 2] += 0.004 * np.sin(v[:, 0] / 0.03)  # wavy
    idx = np.array(
        [TPL.landmarks[n] for n in ("nose_tip", "chin", "mouth_corner_left", "mouth_corner_right")]
    )
    fitted = nonrigid_fit(v, TPL.faces, warped, TPL.faces, idx, warped[idx])
    # The fit lands on the surface (what the correspondence needs) and vertices end up near their
    # own warped positions, although nothing but stiffness stops them from sliding along it.
    surface = SurfaceQuery(warped, TPL.faces)
    assert surface.query(fitted)[2].mean() < 0.1 * surface.query(v)[2].mean()
    assert np.linalg.norm(fitted - warped, axis=1).mean() < 0.25 * np.linalg.norm(v - warped, axis=1).mean()


# ---------------------------------------------------------------------------------------------
# Whole pipeline on known meshes


@pytest.fixture(scope="module")
def take():
    return _take()


@pytest.mark.parametrize("seed", [0, 1])
def test_template_onto_itself_any_pose_with_picked_landmarks(take, seed, tmp_path):
    rng = np.random.default_rng(seed)
    rot = Rotation.random(random_state=seed).as_matrix()
    scale = float(rng.uniform(0.5, 30.0))  # metres or centimetres, big or small
    shift = rng.normal(size=3) * 5
    user = scale * TPL.vertices.astype(np.float64) @ rot.T + shift
    picked = {n: int(TPL.landmarks[n]) for n in FIT_LANDMARKS if n != "stomion"}
    corr = fit_head(user, TPL.faces, picked, cache_dir=tmp_path)
    assert corr.similarity.scale == pytest.approx(scale, rel=1e-3)
    direct = scale * take @ rot.T
    assert _lip_error(corr, take, direct, LIPS, scale) < 0.01


def test_automatic_landmarks_on_an_upright_head():
    scale, shift = 1.9, np.array([0.4, -0.1, 1.6])
    marks = find_landmarks(scale * TPL.vertices.astype(np.float64) + shift, TPL.faces)
    expected = template_landmarks()
    for name in FIT_LANDMARKS:
        err = np.linalg.norm(marks[name] - (scale * expected[name] + shift)) / scale
        assert err < 0.001, (name, err)  # within 1 mm on the template's scale


def test_automatic_fit_on_a_slightly_turned_head(take, tmp_path):
    # Landmark search assumes an upright head; the surface ICP absorbs a few degrees of tilt/turn.
    rot = Rotation.from_euler("xz", [6, -8], degrees=True).as_matrix()
    scale, shift = 1.9, np.array([0.4, -0.1, 1.6])
    user = scale * TPL.vertices.astype(np.float64) @ rot.T + shift
    corr = fit_head(user, TPL.faces, cache_dir=tmp_path)
    np.testing.assert_allclose(corr.similarity.rotation, rot, atol=0.01)
    assert _lip_error(corr, take, scale * take @ rot.T, LIPS, scale) < 0.03


@pytest.fixture(scope="module")
def subdivided(tmp_path_factory):
    v, f, e = subdivide(TPL.vertices.astype(np.float64), TPL.faces.astype(np.int64))
    corr = fit_head(v, f, cache_dir=tmp_path_factory.mktemp("cache"))
    return v, f, e, corr


def test_subdivided_copy(take, subdivided):
    v, f, e, corr = subdivided
    direct = np.concatenate([take, 0.5 * (take[:, e[:, 0]] + take[:, e[:, 1]])], axis=1)
    lip_mask = np.zeros(TPL.n_vertices, dtype=bool)
    lip_mask[LIPS] = True
    lip_vertices = np.r_[LIPS, TPL.n_vertices + np.flatnonzero(lip_mask[e[:, 0]] & lip_mask[e[:, 1]])]
    assert _lip_error(corr, take, direct, lip_vertices, 1.0) < 0.01


def test_decimated_copy(take, tmp_path):
    v, f, kept = decimate(TPL.vertices.astype(np.float64), TPL.faces.astype(np.int64))
    assert len(v) < 0.85 * TPL.n_vertices
    corr = fit_head(v, f, cache_dir=tmp_path)
    lips_kept = np.flatnonzero(np.isin(kept, LIPS))
    assert _lip_error(corr, take, take[:, kept], lips_kept, 1.0) < 0.03


def test_lips_stay_apart_and_never_bleed(subdivided):
    v, f, e, corr = subdivided
    upper = corr.lip_class == LIP_UPPER
    lower = corr.lip_class == LIP_LOWER
    w = corr.matrix.toarray()
    assert abs(w[upper][:, TPL.regions["lip_lower"]]).sum() == 0
    assert abs(w[lower][:, TPL.regions["lip_upper"]]).sum() == 0
    # Jaw open: the transferred inner lips open exactly as wide as the template's.
    offsets = apply_arkit(np.eye(52, dtype=np.float32)[[ARKIT_INDEX["jawOpen"]]])
    moved = v + corr.transfer(offsets)[0]
    pairs = TPL.inner_lip_pairs
    gap_user = np.linalg.norm(moved[pairs[:, 0]] - moved[pairs[:, 1]], axis=1)
    tpl_moved = TPL.vertices + offsets[0]
    gap_tpl = np.linalg.norm(tpl_moved[pairs[:, 0]] - tpl_moved[pairs[:, 1]], axis=1)
    assert gap_tpl.max() > 0.02
    np.testing.assert_allclose(gap_user, gap_tpl, atol=0.05 * gap_tpl.max())


def test_mirrored_shapes_stay_mirrored(subdivided):
    v, f, e, corr = subdivided
    # Mirror map of the subdivided mesh from the template's (closed lips put two vertices on one
    # spot, so a nearest-point search could not tell an upper-lip vertex from its lower twin).
    edge_index = {tuple(pair): k for k, pair in enumerate(e.tolist())}
    mirrored_edges = np.sort(TPL.mirror[e], axis=1)
    mirror = np.r_[
        TPL.mirror, TPL.n_vertices + np.array([edge_index[tuple(p)] for p in mirrored_edges.tolist()])
    ]
    assert np.abs(v[mirror] * [-1, 1, 1] - v).max() < 1e-9  # the mesh is symmetric
    shapes = corr.arkit_shapes()
    flip = np.array([-1.0, 1.0, 1.0])
    worst = 0.0
    for name in ("eyeBlinkLeft", "mouthSmileLeft", "browDownLeft", "mouthLowerDownLeft"):
        left = shapes[ARKIT_NAMES.index(name)]
        right = shapes[ARKIT_NAMES.index(name.replace("Left", "Right"))]
        mag = np.linalg.norm(left, axis=1).max()
        assert mag > 1e-4
        worst = max(worst, np.abs(left[mirror] * flip - right).max() / mag)
    assert worst < 0.02


def test_arkit_shapes_for_any_mesh(subdivided):
    v, f, e, corr = subdivided
    shapes = corr.arkit_shapes()
    assert shapes.shape == (52, len(v), 3) and shapes.dtype == np.float32
    basis = arkit_basis()
    err = np.abs(shapes[:, : TPL.n_vertices] - basis).max()
    assert err < 0.05 * np.abs(basis).max()


def test_far_vertices_fade_out(tmp_path):
    v = TPL.vertices.astype(np.float64)
    # A detached "back of head" patch 10 cm behind the face.
    patch = np.array([[0, 0.1, 0], [0.02, 0.1, 0], [0, 0.1, 0.02]])
    user_v = np.vstack([v, patch])
    user_f = np.vstack([TPL.faces, [[468, 469, 470]]])
    corr = fit_head(user_v, user_f, cache_dir=tmp_path)
    moved = corr.transfer(_take(4))
    assert np.abs(moved[:, 468:]).max() == 0.0
    assert np.abs(moved[:, :468]).max() > 0.01


# ---------------------------------------------------------------------------------------------
# Teeth, tongue, eyes


def _box(centre, size):
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])  # fmt: skip
    return centre + 0.5 * np.asarray(size) * corners, faces


def test_part_names():
    assert part_from_name("Teeth_Lower") is Part.LOWER_TEETH
    assert part_from_name("upper_teeth") is Part.UPPER_TEETH
    assert part_from_name("CC_Base_Teeth") is Part.TEETH
    assert part_from_name("Tongue") is Part.TONGUE
    assert part_from_name("Eye_L") is Part.EYE
    assert part_from_name("Eyelashes") is Part.SKIN
    assert part_from_name("Mesh.003") is None


def test_lower_teeth_follow_the_jaw_rigidly(subdivided):
    v, f, e, corr = subdivided
    offsets = apply_arkit(np.eye(52, dtype=np.float32)[[ARKIT_INDEX["jawOpen"], ARKIT_INDEX["eyeBlinkLeft"]]])
    rot, trans = jaw_motion(offsets)
    assert np.degrees(np.arccos((np.trace(rot[0]) - 1) / 2)) > 5  # the jaw turns
    np.testing.assert_allclose(rot[1], np.eye(3), atol=1e-6)  # a blink leaves it alone
    chin = TPL.vertices[TPL.landmarks["chin"]]
    lower, lf = _box(chin + [0, 0.03, 0.03], [0.04, 0.01, 0.01])
    upper, uf = _box(chin + [0, 0.03, 0.06], [0.04, 0.01, 0.01])
    both = np.vstack([lower, upper])
    both_f = np.vstack([lf, uf + 8])
    assert classify_part("Object", both, corr) is Part.TEETH  # found by position
    moved = part_offsets(Part.TEETH, both, both_f, corr, offsets)
    assert np.abs(moved[0, :8]).max() > 0.005 and np.abs(moved[0, 8:]).max() == 0
    # Rigid: distances within the lower row are preserved.
    d0 = np.linalg.norm(lower[:, None] - lower[None], axis=-1)
    d1 = np.linalg.norm((lower + moved[0, :8])[:, None] - (lower + moved[0, :8])[None], axis=-1)
    np.testing.assert_allclose(d0, d1, atol=1e-9)
    eye = TPL.vertices[[TPL.landmarks["eye_outer_left"], TPL.landmarks["eye_inner_left"]]].mean(0)
    ball, bf = _box(eye + [0, 0.012, 0], [0.02, 0.02, 0.02])
    assert classify_part("Object.001", ball, corr) is Part.EYE
    assert np.abs(part_offsets(Part.EYE, ball, bf, corr, offsets)).max() == 0


# ---------------------------------------------------------------------------------------------
# Cache


def test_correspondence_cache(tmp_path):
    v = TPL.vertices.astype(np.float64) * 2.0
    t0 = time.process_time()  # CPU time: a busy machine slows the wall clock, not the work done
    first = fit_head(v, TPL.faces, cache_dir=tmp_path)
    t_first = time.process_time() - t0
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    t0 = time.process_time()
    second = fit_head(v, TPL.faces, cache_dir=tmp_path)
    t_second = time.process_time() - t0
    assert t_second < t_first
    assert np.array_equal(first.matrix.toarray(), second.matrix.toarray())
    # Another shape is another entry.
    fit_head(v * 1.01, TPL.faces, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    # A damaged entry is refitted, not trusted.
    files[0].write_bytes(b"garbage")
    third = fit_head(v, TPL.faces, cache_dir=tmp_path)
    assert np.array_equal(third.matrix.toarray(), first.matrix.toarray())


# ---------------------------------------------------------------------------------------------
# Bad input


def test_too_few_vertices():
    with pytest.raises(RetargetError, match="only 4 vertices"):
        fit_head(np.eye(4, 3), np.array([[0, 1, 2], [0, 2, 3]]), use_cache=False)


def test_no_face_on_a_sphere():
    u, w = np.meshgrid(
        np.linspace(0.05, np.pi - 0.05, 30), np.linspace(0, 2 * np.pi, 40, endpoint=False), indexing="ij"
    )
    pts = 0.1 * np.stack([np.sin(u) * np.cos(w), np.sin(u) * np.sin(w), np.cos(u)], -1).reshape(-1, 3)
    idx = np.arange(30 * 40).reshape(30, 40)
    a, b, c, d = idx[:-1], np.roll(idx[:-1], -1, 1), idx[1:], np.roll(idx[1:], -1, 1)
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    with pytest.raises(RetargetError, match="no face-like region"):
        fit_head(pts, faces, use_cache=False)


def test_face_seen_from_behind_is_rejected():
    flipped = TPL.vertices.astype(np.float64) * np.array([-1.0, -1.0, 1.0])  # looks toward +y
    with pytest.raises(RetargetError, match="no face-like region"):
        find_landmarks(flipped, TPL.faces)


def test_bad_landmarks():
    v = TPL.vertices.astype(np.float64)
    with pytest.raises(RetargetError, match="unknown landmark"):
        fit_head(v, TPL.faces, {"nose": 1}, use_cache=False)
    same = {n: [0.0, 0.0, 0.0] for n in FIT_LANDMARKS}
    with pytest.raises(RetargetError, match="degenerate"):
        fit_head(v, TPL.faces, same, use_cache=False)
    swapped = {n: int(TPL.landmarks[n]) for n in FIT_LANDMARKS if n != "stomion"}
    swapped["mouth_corner_left"], swapped["eye_outer_right"] = (
        swapped["eye_outer_right"],
        swapped["mouth_corner_left"],
    )
    with pytest.raises(RetargetError, match="do not fit a face"):
        fit_head(v, TPL.faces, swapped, use_cache=False)
    with pytest.raises(RetargetError, match="vertex 9999"):
        fit_head(v, TPL.faces, {"nose_tip": 9999}, use_cache=False)


def test_bad_meshes():
    v = TPL.vertices.astype(np.float64)
    with pytest.raises(RetargetError, match="NaN"):
        fit_head(np.where(np.arange(468)[:, None] == 5, np.nan, v), TPL.faces, use_cache=False)
    with pytest.raises(RetargetError, match="does not exist"):
        fit_head(v, TPL.faces + 1000, use_cache=False)
    with pytest.raises(RetargetError, match="triangles"):
        fit_head(v, np.zeros((0, 3), dtype=int), use_cache=False)
    flat = v.copy()
    flat[:, 1] = 0
    flat[:, 2] = 0
    with pytest.raises(RetargetError, match="flat"):
        fit_head(flat, TPL.faces, use_cache=False)


def test_transfer_rejects_wrong_offsets(subdivided):
    corr = subdivided[3]
    with pytest.raises(RetargetError, match="template offsets"):
        corr.transfer(np.zeros((3, 100, 3)))
    assert TransferSettings().smooth_radius > 0
