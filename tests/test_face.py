"""Template face and ARKit rig: geometry, regions, and the behaviour downstream code relies on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES, mirror_name
from engine.arkit.basis import apply_arkit, arkit_basis, eyelid_gap, inner_lip_gap
from engine.face import landmarks as lm
from engine.face import template as template_module
from engine.face.deform import adjacency
from engine.face.extract import NPM_VERSION, ExtractError, extract, npm_pack
from engine.face.template import load_template

MM = 0.001
TGZ_CANDIDATES = (
    Path("/tmp/mp/mediapipe-face_mesh-0.4.1657299874.tgz"),
    Path(__file__).resolve().parents[1] / "out" / f"mediapipe-face_mesh-{NPM_VERSION}.tgz",
)


def pose(**weights: float) -> np.ndarray:
    w = np.zeros(len(ARKIT_NAMES), dtype=np.float32)
    for name, value in weights.items():
        w[ARKIT_INDEX[name]] = value
    return load_template().vertices + apply_arkit(w)


def edges(faces: np.ndarray) -> np.ndarray:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


# --- template -----------------------------------------------------------------------------------


def test_mesh_sizes_and_uvs():
    t = load_template()
    assert t.vertices.shape == (468, 3) and t.vertices.dtype == np.float32
    assert t.faces.ndim == 2 and t.faces.shape[1] == 3 and t.faces.dtype == np.int32
    assert 850 <= len(t.faces) < 898  # the 898 canonical triangles minus the ones filling the mouth
    assert t.faces.min() >= 0 and t.faces.max() < 468
    assert np.unique(t.faces).size == 468  # no orphan vertex
    assert t.uvs.shape == (468, 2) and t.uvs.min() >= 0.0 and t.uvs.max() <= 1.0
    # metres, human sized: about 15 cm ear to ear and 17 cm forehead to chin
    size = np.ptp(t.vertices, axis=0)
    assert 0.13 < size[0] < 0.18 and 0.15 < size[2] < 0.20


def test_axes_and_left_right():
    t = load_template()
    v, L = t.vertices, t.landmarks
    assert v[L["nose_tip"], 1] < v[L["eye_outer_left"], 1]  # the face looks toward -y
    assert v[L["forehead_center"], 2] > v[L["nose_tip"], 2] > v[L["chin"], 2]  # z up
    # the subject's left is +x
    for name in ("eye_outer_left", "eye_inner_left", "mouth_corner_left", "cheek_left"):
        assert v[L[name], 0] > 0.005, name
        assert v[L[name.replace("left", "right")], 0] < -0.005
    assert np.all(v[t.regions["eye_left"], 0] > 0) and np.all(v[t.regions["brow_right"], 0] < 0)
    assert abs(v[L["eye_outer_left"], 0]) > abs(v[L["eye_inner_left"], 0])
    # triangles wind consistently (every shared edge is walked both ways) and face out of the head
    directed = np.concatenate([t.faces[:, [0, 1]], t.faces[:, [1, 2]], t.faces[:, [2, 0]]])
    assert len({tuple(e) for e in directed.tolist()}) == len(directed)
    a, b, c = (v[t.faces[:, k]].astype(np.float64) for k in range(3))
    assert np.cross(b - a, c - a).sum(axis=0)[1] < 0


def test_mirror_map_is_an_involution_matching_geometry():
    t = load_template()
    assert np.array_equal(t.mirror[t.mirror], np.arange(468))
    np.testing.assert_allclose(t.vertices[t.mirror] * [-1, 1, 1], t.vertices, atol=1e-6)


def test_no_triangle_bridges_the_inner_lips():
    t = load_template()
    upper, lower = set(lm.LIP_UPPER_INNER), set(lm.LIP_LOWER_INNER)
    for a, b in edges(t.faces):
        assert not ({int(a), int(b)} & upper and {int(a), int(b)} & lower), (a, b)
    # and the upper lip is not reachable from the lower lip without passing a mouth corner
    rings = adjacency(t.faces, 468)
    corners = set(lm.MOUTH_CORNER_LEFT) | set(lm.MOUTH_CORNER_RIGHT)
    seen, todo = set(lm.LIP_UPPER_INNER), list(lm.LIP_UPPER_INNER)
    while todo:
        for j in rings[todo.pop()]:
            if j not in seen and j not in corners and j in set(t.regions["lips"]):
                seen.add(j)
                todo.append(j)
    assert not seen & set(t.regions["lip_lower"])


def test_regions_cover_the_contract():
    t = load_template()
    names = (
        "lip_upper_outer lip_upper_inner lip_lower_outer lip_lower_inner lip_upper lip_lower lips jaw chin "
        "cheek_left cheek_right nose eye_left eye_right eyelid_upper_left eyelid_upper_right "
        "eyelid_lower_left eyelid_lower_right brow_left brow_right forehead upper_face eyes_forehead"
    ).split()
    for name in names:
        idx = t.regions[name]
        assert idx.size > 0 and idx.min() >= 0 and idx.max() < 468, name
        assert np.array_equal(idx, np.unique(idx)), name
    r = {k: set(v.tolist()) for k, v in t.regions.items()}
    assert not r["lip_upper"] & r["lip_lower"]
    assert r["lip_upper_inner"] | r["lip_upper_outer"] <= r["lip_upper"] <= r["lips"]
    assert r["lip_lower_inner"] | r["lip_lower_outer"] <= r["lip_lower"] <= r["lips"]
    assert not r["eyelid_upper_left"] & r["eyelid_lower_left"]
    assert r["chin"] <= r["jaw"] and not r["jaw"] & r["lip_upper"]
    assert not r["lips"] & r["eyes_forehead"] and not r["lips"] & r["nose"]
    assert r["eye_left"] | r["brow_left"] <= r["eyes_forehead"] <= r["upper_face"] | r["eyes_forehead"]
    # every left region mirrors its right twin
    for name in r:
        if name.endswith("_left"):
            twin = name[: -len("_left")] + "_right"
            assert set(t.mirror[t.regions[name]].tolist()) == r[twin], name
    # upper face sits above the mouth, the jaw below the nose
    v = t.vertices
    assert v[t.regions["upper_face"], 2].min() > v[t.regions["lips"], 2].max()
    assert v[t.regions["jaw"], 2].max() < v[t.landmarks["nose_bottom"], 2]


def test_missing_asset_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(template_module, "ASSET", tmp_path / "canonical_face.npz")
    with pytest.raises(FileNotFoundError, match="engine.face.extract"):
        template_module.load_template.__wrapped__()
    assert load_template() is load_template()  # the cached template is untouched


def test_inner_lip_pairs_face_each_other():
    t = load_template()
    v = t.vertices
    up, lo = t.inner_lip_pairs[:, 0], t.inner_lip_pairs[:, 1]
    assert set(up.tolist()) == set(t.regions["lip_upper_inner"].tolist())
    assert set(lo.tolist()) == set(t.regions["lip_lower_inner"].tolist())
    assert np.abs(v[up, 0] - v[lo, 0]).max() < 2 * MM


# --- rig ----------------------------------------------------------------------------------------


def test_basis_shape_finite_and_cached():
    b = arkit_basis()
    assert b.shape == (52, 468, 3) and b.dtype == np.float32
    assert np.all(np.isfinite(b))
    assert arkit_basis() is b
    magnitude = np.linalg.norm(b, axis=2).max(axis=1)
    for name, m in zip(ARKIT_NAMES, magnitude):
        assert 0.8 * MM < m < 40 * MM, f"{name} moves {m * 1000:.2f} mm at most"


def test_apply_arkit_shapes_and_linearity():
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (4, 52)).astype(np.float32)
    out = apply_arkit(w)
    assert out.shape == (4, 468, 3) and out.dtype == np.float32
    np.testing.assert_allclose(apply_arkit(w[1]), out[1], atol=1e-6)
    np.testing.assert_allclose(apply_arkit(w[0] + w[1]), out[0] + out[1], atol=1e-5)
    np.testing.assert_array_equal(apply_arkit(np.zeros(52)), 0.0)
    with pytest.raises(ValueError, match="52"):
        apply_arkit(np.zeros((3, 51)))
    with pytest.raises(ValueError, match="NaN"):
        apply_arkit(np.full(52, np.nan))


def test_left_right_shapes_are_exact_mirrors():
    t = load_template()
    b = arkit_basis()
    for i, name in enumerate(ARKIT_NAMES):
        twin = ARKIT_INDEX[mirror_name(name)]
        mirrored = b[twin][t.mirror] * np.array([-1, 1, 1], dtype=np.float32)
        np.testing.assert_allclose(b[i], mirrored, atol=1e-7, err_msg=name)


def test_left_shapes_act_on_the_left():
    t = load_template()
    b = arkit_basis()
    x = t.vertices[:, 0]
    for i, name in enumerate(ARKIT_NAMES):
        if name.endswith("Left") and name not in ("mouthLeft", "jawLeft"):
            moved = np.linalg.norm(b[i], axis=1)
            assert moved[x > 0.002].sum() > 3 * moved[x < -0.002].sum(), name
    eye = np.linalg.norm(b[ARKIT_INDEX["eyeBlinkLeft"]], axis=1)
    assert eye[t.regions["eye_right"]].max() < 1e-6


def test_basis_is_smooth_along_edges():
    """Neighbouring vertices move alike: no shape tears or spikes the surface."""
    t = load_template()
    b = arkit_basis()
    e = edges(t.faces)
    # the skin that covers each eye opening folds away when the lids close: skip edges across it
    upper = set(lm.EYELID_UPPER_LEFT_0) | set(lm.EYELID_UPPER_RIGHT_0)
    lower = set(lm.EYELID_LOWER_LEFT_0) | set(lm.EYELID_LOWER_RIGHT_0)
    across = np.array([(a in upper and b in lower) or (a in lower and b in upper) for a, b in e.tolist()])
    assert 10 < across.sum() < 40
    e = e[~across]
    length = np.linalg.norm(t.vertices[e[:, 0]] - t.vertices[e[:, 1]], axis=1)
    for i, name in enumerate(ARKIT_NAMES):
        diff = np.linalg.norm(b[i][e[:, 0]] - b[i][e[:, 1]], axis=1)
        peak = np.linalg.norm(b[i], axis=1).max()
        assert diff.max() < 0.75 * peak + 1e-9, name  # no edge carries most of the movement alone
        strain = diff / length
        assert strain.max() < 1.5, f"{name}: an edge stretches by {strain.max():.2f} of its length"


def test_rest_lips_closed_and_jaw_opens_them():
    assert inner_lip_gap(pose()) < 0.2 * MM
    gaps = [float(inner_lip_gap(pose(jawOpen=w))) for w in (0.1, 0.3, 0.6, 1.0)]
    assert all(b > a for a, b in zip(gaps, gaps[1:]))
    assert gaps[0] > 1.0 * MM and 12 * MM < gaps[-1] < 40 * MM


def test_mouth_close_cancels_jaw_open():
    for w in (0.1, 0.2, 0.5, 1.0):
        assert inner_lip_gap(pose(jawOpen=w)) > 1.5 * MM * w
        assert inner_lip_gap(pose(jawOpen=w, mouthClose=w)) < 0.3 * MM
    # bilabial recipe of the motion synthesis: modest jaw, lips sealed
    assert (
        inner_lip_gap(pose(jawOpen=0.15, mouthClose=0.15, mouthPressLeft=0.3, mouthPressRight=0.3)) < 0.3 * MM
    )
    # mouthClose keeps the jaw where jawOpen put it
    t = load_template()
    chin = t.landmarks["chin"]
    np.testing.assert_allclose(
        pose(jawOpen=0.5, mouthClose=0.5)[chin], pose(jawOpen=0.5)[chin], atol=0.5 * MM
    )


def test_inner_lip_gap_batches_and_validates():
    frames = np.stack([pose(), pose(jawOpen=0.5), pose(mouthFunnel=1.0)])
    gap = inner_lip_gap(frames)
    assert gap.shape == (3,) and gap[0] < gap[1] and gap[2] > 1 * MM
    with pytest.raises(ValueError, match="468"):
        inner_lip_gap(np.zeros((2, 100, 3)))


def test_blink_closes_each_eye_only():
    open_left = float(eyelid_gap(pose(), "left"))
    assert open_left > 3 * MM
    assert float(eyelid_gap(pose(eyeBlinkLeft=1.0), "left")) < 0.1 * MM
    assert float(eyelid_gap(pose(eyeBlinkLeft=0.5), "left")) == pytest.approx(0.5 * open_left, rel=0.05)
    assert float(eyelid_gap(pose(eyeBlinkLeft=1.0), "right")) == pytest.approx(open_left, abs=1e-6)
    assert float(eyelid_gap(pose(eyeBlinkRight=1.0), "right")) < 0.1 * MM
    assert float(eyelid_gap(pose(eyeWideLeft=1.0), "left")) > open_left + 1 * MM
    assert float(eyelid_gap(pose(eyeSquintLeft=1.0), "left")) < open_left - 1 * MM


def test_shapes_move_the_expected_way():
    t = load_template()
    v0, L = t.vertices, t.landmarks
    corner = L["mouth_corner_left"]
    assert pose(mouthSmileLeft=1)[corner, 2] > v0[corner, 2] + 3 * MM
    assert pose(mouthFrownLeft=1)[corner, 2] < v0[corner, 2] - 3 * MM
    assert pose(mouthStretchLeft=1)[corner, 0] > v0[corner, 0] + 3 * MM
    width = v0[L["mouth_corner_left"], 0] - v0[L["mouth_corner_right"], 0]
    for shape in ("mouthPucker", "mouthFunnel"):
        p = pose(**{shape: 1})
        assert p[L["mouth_corner_left"], 0] - p[L["mouth_corner_right"], 0] < width - 8 * MM, shape
        assert p[lm.UPPER_LIP_TOP, 1] < v0[lm.UPPER_LIP_TOP, 1] - 3 * MM, shape  # lips protrude (-y)
    assert inner_lip_gap(pose(mouthPucker=1)) < 0.5 * MM < 2 * MM < inner_lip_gap(pose(mouthFunnel=1))
    # rolls tuck the vermilion border back toward the teeth
    assert pose(mouthRollLower=1)[lm.LOWER_LIP_BOTTOM, 1] > v0[lm.LOWER_LIP_BOTTOM, 1] + 2 * MM
    assert pose(mouthRollUpper=1)[lm.UPPER_LIP_TOP, 1] > v0[lm.UPPER_LIP_TOP, 1] + 2 * MM
    # jaw: chin goes down and back for jawOpen, sideways toward the subject's left for jawLeft
    chin = L["chin"]
    assert pose(jawOpen=1)[chin, 2] < v0[chin, 2] - 15 * MM
    assert pose(jawOpen=1)[chin, 1] > v0[chin, 1]
    assert pose(jawLeft=1)[chin, 0] > 4 * MM
    assert pose(jawForward=1)[chin, 1] < v0[chin, 1] - 4 * MM
    # brows and cheeks
    brow = lm.BROW_UPPER_LEFT[3]
    assert pose(browDownLeft=1)[brow, 2] < v0[brow, 2] - 2 * MM
    assert pose(browOuterUpLeft=1)[lm.BROW_UPPER_LEFT[1], 2] > v0[lm.BROW_UPPER_LEFT[1], 2] + 2 * MM
    inner_brow = lm.BROW_UPPER_LEFT[-3]
    assert pose(browInnerUp=1)[inner_brow, 2] > v0[inner_brow, 2] + 3 * MM
    assert pose(noseSneerLeft=1)[lm.NOSE_ALA_LEFT, 2] > v0[lm.NOSE_ALA_LEFT, 2] + 1 * MM
    cheek = L["cheek_left"]
    puffed = pose(cheekPuff=1)
    assert np.linalg.norm(puffed[cheek] - v0[cheek]) > 2 * MM and puffed[cheek, 0] > v0[cheek, 0]
    # mouthUpperUp/LowerDown open the lips on their own side
    assert inner_lip_gap(pose(mouthUpperUpLeft=1, mouthUpperUpRight=1)) > 2 * MM
    assert inner_lip_gap(pose(mouthLowerDownLeft=1, mouthLowerDownRight=1)) > 2 * MM


# --- extraction ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mediapipe_tgz(tmp_path_factory) -> Path:
    """The pinned npm tarball: a local copy if there is one, else `npm pack` (skip if offline)."""
    for path in TGZ_CANDIDATES:
        if path.is_file():
            return path
    try:
        return npm_pack(tmp_path_factory.mktemp("npm"))
    except (ExtractError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(
            f"@mediapipe/face_mesh@{NPM_VERSION} tarball not found locally and npm pack failed: {exc}"
        )


def test_extraction_round_trip_matches_shipped_asset(mediapipe_tgz):
    mesh = extract(mediapipe_tgz)
    t = load_template()
    np.testing.assert_array_equal(mesh["faces"], t.faces)
    np.testing.assert_allclose(mesh["vertices"], t.vertices, atol=1e-7)
    np.testing.assert_allclose(mesh["uvs"], t.uvs, atol=1e-7)
    np.testing.assert_array_equal(mesh["mirror"], t.mirror)


def test_extraction_rejects_a_bad_tarball(tmp_path):
    import io
    import tarfile

    bogus = tmp_path / "bogus.tgz"
    with tarfile.open(bogus, "w:gz") as tar:
        info = tarfile.TarInfo("package/package.json")
        data = b'{"name": "@mediapipe/face_mesh", "version": "0.0.1"}'
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ExtractError, match="pinned"):
        extract(bogus)
    with pytest.raises(ExtractError, match="npm pack"):
        extract(tmp_path / "missing.tgz")


# --- Blender contact sheet -------------------------------------------------------------------------


@pytest.mark.blender
def test_contact_sheet_renders_distinct_tiles(tmp_path):
    pytest.importorskip("bpy")
    import importlib.util

    import bpy

    spec = importlib.util.spec_from_file_location(
        "contact_sheet", Path(__file__).resolve().parents[1] / "scripts" / "contact_sheet.py"
    )
    sheet_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sheet_module)
    poses = [p for p in sheet_module.shape_poses() if p[0] in ("rest", "jawOpen")]
    out = sheet_module.render_sheet(tmp_path / "sheet.png", poses, zoom="mouth", columns=2)
    image = bpy.data.images.load(str(out))
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height, width, 4)[..., :3]
    rest, jaw = pixels[:, : width // 2], pixels[:, width // 2 :]
    assert (width, height) == (2 * sheet_module.ZOOMS["mouth"][0], sheet_module.ZOOMS["mouth"][1])
    assert rest.std() > 0.02  # something was drawn
    assert np.abs(rest - jaw).mean() > 0.005  # the open jaw shows
