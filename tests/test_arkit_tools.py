"""ARKit tooling: shape-key name matching, bounded weight solve, Live Link Face CSV / JSON export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from engine.arkit import ARKIT_NAMES
from engine.arkit.export import (
    LIVE_LINK_FACE_ORDER,
    ExportError,
    arkit_json,
    read_arkit_csv,
    timecode,
    write_arkit_csv,
    write_arkit_json,
)
from engine.arkit.matching import arkit_name_for, canonical_key, map_shape_keys
from engine.arkit.solve import ArkitSolver, SolveError, box_qp, objective_rows, solve_arkit

# ---------------------------------------------------------------------------------------------
# Name matching


@pytest.mark.parametrize("name", ["jawOpen", "JawOpen", "jaw_open", "JAW_OPEN", "jaw-open", "Jaw Open"])
def test_jaw_open_spellings(name):
    assert arkit_name_for(name) == "jawOpen"


@pytest.mark.parametrize(
    "name",
    [
        "eyeBlink_L",
        "eyeBlinkLeft",
        "EyeBlink_Left",
        "eye_blink_left",
        "eyeBlinkL",
        "EYE_BLINK_L",
        "Eye_Blink_L",
    ],
)
def test_eye_blink_left_spellings(name):
    assert arkit_name_for(name) == "eyeBlinkLeft"


@pytest.mark.parametrize(
    "name",
    [
        "Face.jawOpen",
        "A01_JawOpen",
        "blendShape1.jawOpen",
        "AK_25_JawOpen",
        "Genesis8:jawOpen",
        "jawOpen.001",
    ],
)
def test_export_prefixes_and_suffixes(name):
    assert arkit_name_for(name) == "jawOpen"


@pytest.mark.parametrize(
    ("vendor", "arkit"),
    [
        ("Brow_Drop_L", "browDownLeft"),
        ("Brow_Raise_Outer_R", "browOuterUpRight"),
        ("Cheek_Raise_R", "cheekSquintRight"),
        ("Mouth_Roll_In_Upper", "mouthRollUpper"),
        ("Mouth_Down_Lower_L", "mouthLowerDownLeft"),
        ("Mouth_Up_Upper_R", "mouthUpperUpRight"),
        ("Eye_L_Look_L", "eyeLookOutLeft"),
        ("Eye_L_Look_R", "eyeLookInLeft"),
        ("Eye_R_Look_R", "eyeLookOutRight"),
        ("Eye_R_Look_Down", "eyeLookDownRight"),
        ("Mouth_L", "mouthLeft"),
        ("Jaw_R", "jawRight"),
        ("Fcl_EYE_Close_R", "eyeBlinkRight"),  # VRoid
        ("mouthSmileLeft", "mouthSmileLeft"),  # Ready Player Me uses Apple's names
    ],
)
def test_vendor_aliases(vendor, arkit):
    assert arkit_name_for(vendor) == arkit


@pytest.mark.parametrize(
    ("name", "arkit"),
    [
        ("eyeblinkleft", "eyeBlinkLeft"),
        ("EYEBLINKLEFT", "eyeBlinkLeft"),
        ("eyeBlinkleft", "eyeBlinkLeft"),
        ("EYEBLINKRIGHT", "eyeBlinkRight"),
        ("JAWOPEN", "jawOpen"),
        ("jawopen", "jawOpen"),
        ("mouthsmile_l", "mouthSmileLeft"),
        ("MOUTHSMILE_R", "mouthSmileRight"),
        ("mouthleft", "mouthLeft"),
        ("tongueout", "tongueOut"),
        ("ARKit_eyeBlinkLeft", "eyeBlinkLeft"),
        ("bsjawopen", "jawOpen"),
        ("blendShape1.EYELOOKUPRIGHT", "eyeLookUpRight"),
    ],
)
def test_names_without_word_breaks(name, arkit):
    assert arkit_name_for(name) == arkit


def test_squashed_names_keep_their_side_and_never_invent_one():
    assert arkit_name_for("mouthsmileright") == "mouthSmileRight"
    assert arkit_name_for("eyeblinkright") != arkit_name_for("eyeblinkleft")
    for name in ("mouthsmile", "eyeblink", "jawopenwide", "bsbasis", "keyjaw", "arkit"):
        assert arkit_name_for(name) is None, name


def test_a_squashed_rig_maps_completely_and_exact_spelling_still_wins():
    mapping = map_shape_keys([name.upper() for name in ARKIT_NAMES])
    assert mapping.complete and mapping.matched["eyeBlinkLeft"] == "EYEBLINKLEFT"
    mapping = map_shape_keys(["eyeblinkleft", "EyeBlink_L", "eyeBlinkLeft"])
    assert mapping.matched["eyeBlinkLeft"] == "eyeBlinkLeft"
    # Apple's name in another case beats a spelling with other word breaks ...
    mapping = map_shape_keys(["eye_blink_left", "eyeblinkleft"])
    assert mapping.matched["eyeBlinkLeft"] == "eyeblinkleft" and not mapping.ambiguous
    # ... which beats a name whose side is only found by squashing: never a tie.
    mapping = map_shape_keys(["Eye_Blinkleft", "eye_blink_left"])
    assert mapping.matched["eyeBlinkLeft"] == "eye_blink_left" and not mapping.ambiguous


def test_left_and_right_never_swap_and_non_arkit_names_are_ignored():
    assert canonical_key("mouthSmile_R") == ("mouthsmile", "right")
    assert arkit_name_for("mouthSmile_R") == "mouthSmileRight"
    for name in ("Basis", "mouthOpen", "mouthSmile", "viseme_aa", "Key 1", ""):
        assert arkit_name_for(name) is None


def test_full_underscore_rig_maps_completely():
    names = ["Basis"]
    for arkit in ARKIT_NAMES:
        body = arkit.replace("Left", "_L").replace("Right", "_R")
        names.append("Face." + body[0].upper() + body[1:])
    mapping = map_shape_keys(names)
    assert mapping.complete
    assert len(mapping.matched) == 52
    assert mapping.matched["eyeBlinkLeft"] == "Face.EyeBlink_L"
    assert mapping.matched["mouthLeft"] == "Face.Mouth_L"


def test_missing_and_ambiguous_are_reported_not_raised():
    mapping = map_shape_keys(["Basis", "jawOpen", "EyeBlink_L", "eye_blink_left", "mouthSmile"])
    assert mapping.matched == {"jawOpen": "jawOpen"}
    assert mapping.ambiguous == {"eyeBlinkLeft": ["EyeBlink_L", "eye_blink_left"]}
    assert len(mapping.missing) == 50 and "mouthSmileLeft" in mapping.missing
    assert map_shape_keys([]).missing == list(ARKIT_NAMES)


def test_exact_spelling_beats_variants():
    mapping = map_shape_keys(["EyeBlink_L", "eyeBlinkLeft", "eyeblinkleft"])
    assert mapping.matched["eyeBlinkLeft"] == "eyeBlinkLeft"
    assert "eyeBlinkLeft" not in mapping.ambiguous


def test_user_overrides():
    names = ["Blink_Custom", "jawOpen", "JawOpen_old"]
    mapping = map_shape_keys(
        names,
        overrides={"eyeBlinkLeft": "Blink_Custom", "jawOpen": "", "mouthClose": "no_such_key", "bogus": "x"},
    )
    assert mapping.matched["eyeBlinkLeft"] == "Blink_Custom"
    assert "jawOpen" in mapping.missing and "jawOpen" not in mapping.matched  # explicitly unmapped
    assert mapping.invalid_overrides == {"mouthClose": "no_such_key", "bogus": "x"}
    assert "mouthClose" in mapping.missing


# ---------------------------------------------------------------------------------------------
# Bounded least squares


def _random_basis(rng, shapes=52, vertices=200):
    basis = rng.normal(size=(shapes, vertices, 3)) * 0.003
    basis[1::2] += 0.7 * basis[0:-1:2]  # correlated pairs, like left/right shapes
    return basis


def test_solver_recovers_known_weights_on_the_template_basis():
    from engine.arkit.basis import apply_arkit, arkit_basis

    rng = np.random.default_rng(0)
    weights = np.clip(rng.uniform(-0.4, 1.2, size=(40, 52)), 0, 1).astype(np.float32)
    offsets = apply_arkit(weights)
    solved = ArkitSolver(arkit_basis(), ridge=1e-7).solve(offsets)
    # The template's shapes are not all linearly independent of each other (e.g. a jaw shape and a
    # lip shape can share motion), so compare the motion they produce, and the weights where the basis
    # pins them down.
    recon = apply_arkit(solved)
    assert np.abs(recon - offsets).max() < 2e-5  # metres: 0.02 mm
    assert solved.min() >= 0.0 and solved.max() <= 1.0


def test_solver_round_trip_exact_weights_on_independent_basis():
    rng = np.random.default_rng(1)
    basis = _random_basis(rng)
    weights = np.clip(rng.uniform(-0.5, 1.5, size=(300, 52)), 0, 1)
    offsets = np.einsum("tk,kvc->tvc", weights, basis)
    solved = solve_arkit(offsets, basis=basis, ridge=1e-9)
    assert np.abs(solved - weights).max() < 1e-4
    single = ArkitSolver(basis, ridge=1e-9).solve(offsets[3])
    assert single.shape == (52,) and np.abs(single - weights[3]).max() < 1e-4


def test_solver_matches_scipy_lsq_linear_with_noise_and_out_of_range_motion():
    rng = np.random.default_rng(2)
    basis = _random_basis(rng, vertices=80)
    weights = rng.uniform(-0.8, 1.8, size=(12, 52))  # far outside the box: many bounds active
    offsets = np.einsum("tk,kvc->tvc", weights, basis) + rng.normal(size=(12, 80, 3)) * 5e-4
    solver = ArkitSolver(basis, ridge=1e-3)
    ours = solver.solve(offsets).astype(np.float64)
    design = solver._design
    ridge_rows = np.sqrt(solver.gram[0, 0] - design[:, 0] @ design[:, 0]) * np.eye(52)
    for t in range(len(offsets)):
        ref = lsq_linear(
            np.vstack([design, ridge_rows]),
            np.r_[offsets[t].ravel(), np.zeros(52)],
            bounds=(0, 1),
            tol=1e-12,
        ).x
        rhs = (offsets[t].ravel() @ design)[None]
        f_ours = objective_rows(ours[t][None], rhs, solver.gram)[0]
        f_ref = objective_rows(ref[None], rhs, solver.gram)[0]
        assert f_ours <= f_ref + 1e-9 * abs(f_ref)
        assert np.abs(ours[t] - ref).max() < 2e-3


def test_box_qp_satisfies_kkt():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 10))
    gram = a.T @ a + 0.1 * np.eye(10)
    rhs = rng.normal(size=(50, 10)) * 5
    w = box_qp(gram, rhs)
    grad = w @ gram - rhs
    interior = (w > 1e-9) & (w < 1 - 1e-9)
    assert np.abs(grad[interior]).max() < 1e-6
    assert np.all(grad[w <= 1e-9] >= -1e-6) and np.all(grad[w >= 1 - 1e-9] <= 1e-6)


def test_solver_bad_input():
    rng = np.random.default_rng(4)
    basis = _random_basis(rng, vertices=10)
    with pytest.raises(SolveError, match="offsets must be"):
        ArkitSolver(basis).solve(np.zeros((5, 11, 3)))
    with pytest.raises(SolveError, match="NaN"):
        ArkitSolver(basis).solve(np.full((2, 10, 3), np.nan))
    with pytest.raises(SolveError, match="basis must be"):
        ArkitSolver(np.zeros((52, 10)))
    with pytest.raises(SolveError, match="vertex_weights"):
        ArkitSolver(basis, vertex_weights=-np.ones(10))


# ---------------------------------------------------------------------------------------------
# Export


def test_live_link_face_csv(tmp_path):
    rng = np.random.default_rng(5)
    weights = rng.uniform(0, 1, size=(65, 52))
    path = write_arkit_csv(tmp_path / "take.csv", weights, fps=30)
    with path.open() as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    assert header[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert header[-1] == "TongueOut" and len(header) == 54
    # Apple's order: right before left for the jaw and mouth sideways shapes.
    assert header.index("JawRight") < header.index("JawLeft")
    assert header.index("MouthRight") < header.index("MouthLeft")
    assert len(rows) == 66
    assert rows[1][:2] == ["00:00:00:00.000", "52"]
    assert rows[31][0] == "00:00:01:00.000" and rows[32][0] == "00:00:01:01.000"
    col = header.index("JawOpen")
    assert float(rows[10][col]) == pytest.approx(weights[9, ARKIT_NAMES.index("jawOpen")], abs=1e-6)
    np.testing.assert_allclose(read_arkit_csv(path), weights, atol=1e-6)
    assert not list(tmp_path.glob("*.partial"))


def test_csv_with_head_and_eye_columns_and_clipping(tmp_path):
    weights = np.full((3, 52), 1.7)
    weights[:, 0] = -0.2
    path = write_arkit_csv(tmp_path / "t.csv", weights, fps=60, include_head_eye=True)
    rows = list(csv.reader(path.open()))
    assert len(rows[0]) == 2 + 61 and rows[0][-1] == "RightEyeRoll" and rows[1][1] == "61"
    back = read_arkit_csv(path)
    assert back.max() == 1.0 and back.min() == 0.0


def test_timecode_carries_seconds():
    assert timecode(59, 60) == "00:00:00:59.000"
    assert timecode(60, 60) == "00:00:01:00.000"
    assert timecode(3600 * 25 + 61 * 25 + 3, 25) == "01:01:01:03.000"


def test_json_export(tmp_path):
    weights = np.linspace(0, 1, 4 * 52).reshape(4, 52)
    path = write_arkit_json(tmp_path / "take.json", weights, fps=25)
    data = json.loads(path.read_text())
    assert data["fps"] == 25.0 and data["names"] == list(ARKIT_NAMES)
    assert len(data["frames"]) == 4 and len(data["frames"][0]) == 52
    assert data["frames"][3][51] == pytest.approx(1.0)
    assert arkit_json(weights, 25) == data
    assert set(LIVE_LINK_FACE_ORDER) == set(ARKIT_NAMES)


@pytest.mark.parametrize(
    ("weights", "fps", "message"),
    [
        (np.zeros((3, 51)), 30, "frames, 52"),
        (np.full((3, 52), np.nan), 30, "NaN"),
        (np.zeros((3, 52)), 0, "fps"),
    ],
)
def test_export_bad_input_writes_nothing(tmp_path, weights, fps, message):
    with pytest.raises(ExportError, match=message):
        write_arkit_csv(tmp_path / "x.csv", weights, fps)
    with pytest.raises(ExportError, match=message):
        write_arkit_json(tmp_path / "x.json", weights, fps)
    assert list(tmp_path.iterdir()) == []
