"""The closure detector and the step that closes the lips on p, b and m."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.closure import close as closing
from engine.closure.close import close_lips, closure_weights, mouth_mask, recording_closure_weights
from engine.closure.detector import (
    SHIPPED_WEIGHTS,
    ClosureDetector,
    ClosureDetectorError,
    load_detector,
    read_detector,
    save_detector,
)
from engine.closure.features import detector_input
from engine.closure.frames import closure_runs, frame_probabilities
from engine.closure.network import ClosureNetwork
from engine.metrics import contact_counts, lip_gap_mm

SR = 16000


def random_network(seed: int = 0) -> ClosureNetwork:
    torch.manual_seed(seed)
    return ClosureNetwork().eval()


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts and pauses: enough structure for the detector's input normalisation to matter."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.05
    envelope = (np.sin(np.arange(len(audio)) / SR * 2 * np.pi * 3.0) > 0).astype(np.float32)
    return audio * envelope


def test_numpy_detector_equals_the_torch_network():
    from engine.audio.features import log_mel

    network = random_network()
    detector = ClosureDetector(network.numpy_weights())
    mel = log_mel(speech_like(3.0))
    from engine.phonemes import BILABIALS, PHONES

    with torch.no_grad():
        shares = torch.softmax(network(torch.from_numpy(detector_input(mel))[None])[0], dim=0).numpy()
    expected = sum(shares[PHONES.index(p)] for p in sorted(BILABIALS))
    np.testing.assert_allclose(detector.probabilities(mel), expected, atol=1e-5)


def test_input_ignores_the_channel_level_and_colour():
    from engine.audio.features import log_mel

    mel = log_mel(speech_like(4.0))
    coloured = np.maximum(mel + np.linspace(-0.3, 0.3, mel.shape[1])[None] * (mel > 0), 0.0)
    a, b = detector_input(mel), detector_input(coloured)
    speech = mel.mean(axis=1) > 0.5
    change = np.abs(a[speech] - b[speech])
    assert np.median(change) < 0.01 and change.max() < 0.1  # a fixed equaliser curve is taken out
    assert np.abs(mel[speech] - coloured[speech]).max() > 0.25
    assert np.abs(detector_input(np.zeros((50, 80)))).max() == 0.0  # silence stays silence


def test_the_envelope_input_does_not_hear_a_voices_harmonics():
    """A high voice's harmonics ripple across the low mel bands; the envelope input smooths them
    away while keeping the broad shape (a formant) that tells phones apart."""
    from engine.audio.features import log_mel

    mel = log_mel(speech_like(4.0, seed=9))
    bands = np.arange(mel.shape[1])
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (len(mel), 1))  # the pitch moves every frame
    ripple = 0.4 * np.cos(2 * np.pi * bands[None] / 3.0 + phase) * (bands < 30)  # harmonics 3 bands apart
    rippled = np.maximum(mel + ripple * (mel > 0), 0.0)
    speech = mel.mean(axis=1) > 0.5
    for kind, most in (("normalised", None), ("envelope", 0.02)):
        change = np.abs(detector_input(mel, kind)[speech] - detector_input(rippled, kind)[speech])
        if most is None:
            assert np.median(change[:, :30]) > 0.2  # the plain input hears the ripple
        else:
            assert np.median(change[:, :30]) < most
    formant = np.exp(-0.5 * ((bands - 20) / 4.0) ** 2) * np.random.default_rng(1).uniform(0, 1, (len(mel), 1))
    shaped = np.maximum(mel + formant * (mel > 0), 0.0)
    moved = np.abs(detector_input(shaped, "envelope")[speech] - detector_input(mel, "envelope")[speech])
    assert moved[:, 20].mean() > 0.15  # a formant coming and going still shows
    with pytest.raises(ValueError, match="not one of"):
        detector_input(mel, "cepstra")


def test_pieces_give_the_numbers_of_the_whole(monkeypatch):
    from engine.phonemes import BILABIALS, PHONES

    weights = random_network(1).numpy_weights()
    for phone in BILABIALS:  # a random network that hears p/b/m near the threshold
        weights["out.bias"][PHONES.index(phone)] += 2.0
    detector = ClosureDetector(weights)
    audio = speech_like(9.0, seed=3)
    whole = recording_closure_weights(lambda a, b: audio[a:b], len(audio), 30.0, 270, detector)
    monkeypatch.setattr(closing, "PIECE_FRAMES", 250)  # 2.5 s pieces
    pieces = recording_closure_weights(lambda a, b: audio[a:b], len(audio), 30.0, 270, detector)
    np.testing.assert_array_equal(whole, pieces)
    assert 0.05 < np.mean(whole == 1.0) < 0.95  # closed in some frames, not all: not a comparison of zeros
    assert not recording_closure_weights(lambda a, b: audio[a:b], len(audio), 30.0, 270, None).any()


def test_frame_probabilities_catch_a_closure_between_frames():
    p = np.zeros(200, np.float32)
    p[51:54] = 0.9  # 30 ms, between 30 fps frames 15 (0.5 s) and 16 (0.533 s)
    frame_p = frame_probabilities(p, 30.0, 60)
    assert frame_p.max() == pytest.approx(0.9)
    assert closure_runs(frame_p, 0.5) == [(15, 16)] or closure_runs(frame_p, 0.5) == [(16, 16)]


def test_weights_ramp_around_a_closure():
    frame_p = np.zeros(30, np.float32)
    frame_p[10:12] = 0.8
    w = closure_weights(frame_p, 30.0)
    assert w[10] == w[11] == 1.0
    assert 0.0 < w[9] < 1.0 and 0.0 < w[12] < 1.0
    assert w[:8].max() == 0.0 and w[14:].max() == 0.0


def test_closing_moves_the_mouth_and_nothing_else():
    from engine.data.style import SpeakerStyle
    from engine.emotions import EMOTIONS
    from engine.face.template import load_template
    from engine.inference.rig_poses import rig_pose_offsets

    template = load_template()
    rng = np.random.default_rng(0)
    offsets = rig_pose_offsets(
        "open", SpeakerStyle().as_vector(), 30.0, np.zeros((6, len(EMOTIONS)), np.float32)
    )
    offsets = offsets + rng.normal(0, 5e-4, offsets.shape).astype(np.float32)  # the model's own noise
    weights = np.array([0, 0.4, 1, 1, 0.4, 0], np.float32)
    cond = np.zeros((6, len(EMOTIONS)), np.float32)
    style = SpeakerStyle().as_vector()
    out = close_lips(offsets, weights, lambda f: rig_pose_offsets("closed", style, 30.0, cond[f]))
    gap = lip_gap_mm(template.vertices[None] + out)
    assert gap[2] <= 0.5 and gap[3] <= 0.5
    assert gap[0] > 10.0 and 0.5 < gap[1] < gap[0]
    np.testing.assert_array_equal(out[[0, 5]], offsets[[0, 5]])
    upper = template.regions["eyes_forehead"]
    np.testing.assert_array_equal(out[:, upper], offsets[:, upper])
    assert mouth_mask()[template.regions["chin"]].min() == 1.0


def test_detector_files_are_checked(tmp_path):
    weights = random_network(2).numpy_weights()
    path = save_detector(ClosureDetector(weights, {"seed": 2}), tmp_path / "d.npz")
    assert read_detector(path).info["seed"] == 2
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["m0.blocks.1.weight"] = arrays["m0.blocks.1.weight"] * 1.001  # one layer changed, same header
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ClosureDetectorError, match="damaged"):
        read_detector(tmp_path / "bad.npz")
    arrays["stray"] = arrays.pop("m0.out.bias")
    np.savez(tmp_path / "stray.npz", **arrays)
    with pytest.raises(ClosureDetectorError, match="no member"):
        read_detector(tmp_path / "stray.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ClosureDetectorError, match="not a closure detector"):
        read_detector(tmp_path / "cut.npz")
    with pytest.raises(ClosureDetectorError, match="not found"):
        read_detector(tmp_path / "missing.npz")
    weights.pop("out.bias")
    with pytest.raises(ClosureDetectorError, match="out.bias"):
        ClosureDetector(weights)


def test_the_shipped_detector_says_what_it_was_trained_on():
    """Three networks, each with its training record, and a threshold chosen (not typed) within the
    spurious closures of one network on an engine none of them heard."""
    detector = load_detector()
    info = detector.info
    assert SHIPPED_WEIGHTS.is_file()
    assert len(detector.members) == len(info["members"]) == 3
    for member in info["members"]:
        assert member["view"] == "train" and member["minutes"] > 0 and "recall" in str(member["test"])
    choice = info["threshold_choice"]
    assert choice["view"].startswith("unseen-") and choice["chosen"]["threshold"] == detector.threshold
    assert choice["chosen"]["spurious_per_bilabial"] <= choice["reference"]["spurious_per_bilabial"]
    assert choice["chosen"]["recall"] > choice["reference"]["recall"]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from engine.data.synth import generate_corpus

    data = tmp_path_factory.mktemp("closure") / "corpus"
    generate_corpus(data, hours=0.01, seed=11, workers=1, languages=["en"], augment_prob=0.0, progress=False)
    return data


def test_takes_close_the_lips_on_bilabials_in_both_outputs(tiny_corpus):
    """Sentences of a training engine's voice: the lips meet on p, b and m, in the vertex output and
    in the ARKit weights applied to the rig."""
    from engine.api import Engine
    from engine.arkit.basis import apply_arkit
    from engine.data.readers import open_dataset
    from engine.face.template import load_template

    data = tiny_corpus
    engine = Engine(device="cpu", threads=1)
    template = load_template().vertices[None]
    counts = {"vertex": [0, 0], "arkit": [0, 0]}
    for clip in open_dataset(data).clips():
        take = engine.animate(str(clip.audio_path), fps=float(clip.fps), captions=False)
        for name, offsets in (("vertex", take.offsets), ("arkit", apply_arkit(take.arkit))):
            closed, total = contact_counts(lip_gap_mm(template + offsets), clip.phones, float(clip.fps))
            counts[name][0] += closed
            counts[name][1] += total
    for name, (closed, total) in counts.items():
        assert total >= 3, "the sentences should hold p, b or m"
        assert closed / total >= 0.75, f"{name}: lips met on {closed} of {total} p/b/m"


def test_evaluation_runs_name_their_closure_detector():
    from engine.voice_eval import parse_run

    assert parse_run("flite=w.safetensors") == ("flite", "w.safetensors", "unseen-flite", None)
    assert parse_run("x=w.safetensors@test_voices#off") == ("x", "w.safetensors", "test_voices", "off")
    assert parse_run("flite=w.safetensors#d.npz")[3] == "d.npz"


def test_the_closure_step_can_be_switched_off_for_evaluation():
    from engine.api import Engine

    audio = speech_like(2.0, seed=4)
    plain = Engine(device="cpu", threads=1, closure_detector="off")
    assert plain.closure_detector is None
    with pytest.raises(ClosureDetectorError, match="not found"):
        Engine(device="cpu", threads=1, closure_detector="/nonexistent/detector.npz")
    take = plain.animate(audio, sample_rate=SR, captions=False)
    assert np.isfinite(take.offsets).all()


def test_detector_reports_and_their_table(tiny_corpus, tmp_path, capsys):
    import json
    import subprocess
    import sys

    from engine.closure.measure import main as measure_main

    report_path = tmp_path / "report.json"
    run = f"shipped={SHIPPED_WEIGHTS}@train"
    assert measure_main(["--data", str(tiny_corpus), "--run", run, "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    threshold = report["runs"][0]["threshold"]
    assert threshold == load_detector().threshold
    found = report["runs"][0]["by_threshold"][str(threshold)]
    assert found["bilabials"] >= 3 and 0.0 <= found["recall"] <= 1.0
    lows = [report["runs"][0]["by_threshold"][t]["recall"] for t in ("0.3", "0.5", "0.7")]
    assert lows == sorted(lows, reverse=True)  # a lower threshold finds at least as many
    assert measure_main(["--data", str(tiny_corpus), "--run", "no-view=" + str(SHIPPED_WEIGHTS)]) == 2
    table = subprocess.run(
        [sys.executable, "scripts/results_table.py", f"detectors={report_path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| shipped |" in table and f"{100 * found['recall']:.1f} %" in table


def test_an_ensemble_averages_its_networks_and_closes_at_its_own_threshold(tmp_path):
    from engine.audio.features import log_mel
    from engine.closure.frames import THRESHOLD

    a, b = random_network(5).numpy_weights(), random_network(6).numpy_weights()
    mel = log_mel(speech_like(3.0, seed=7))
    pa, pb = ClosureDetector(a).probabilities(mel), ClosureDetector(b).probabilities(mel)
    assert np.abs(pa - pb).max() > 0.01  # two different networks: the mean is not either of them
    both = ClosureDetector([a, b], {"threshold": 0.3})
    np.testing.assert_allclose(both.probabilities(mel), (pa + pb) / 2, atol=1e-6)
    assert ClosureDetector(a).threshold == THRESHOLD and both.threshold == 0.3
    path = save_detector(both, tmp_path / "both.npz")
    again = read_detector(path)
    assert len(again.members) == 2 and again.threshold == 0.3
    np.testing.assert_array_equal(again.probabilities(mel), both.probabilities(mel))
    frame_p = np.zeros(30, np.float32)
    frame_p[10] = 0.35  # closed at 0.3, not at 0.4
    assert closure_weights(frame_p, 30.0, both.threshold)[10] == 1.0
    assert closure_weights(frame_p, 30.0)[10] == 0.0
    with pytest.raises(ClosureDetectorError, match="between 0 and 1"):
        ClosureDetector(a, {"threshold": 1.5})
    with pytest.raises(ClosureDetectorError, match="at least one"):
        ClosureDetector([])


def test_a_one_network_file_of_the_first_format_still_reads(tmp_path):
    """Detectors written before ensembles (format 1: bare weight names) load with THRESHOLD."""
    import hashlib
    import json

    from engine.closure.frames import THRESHOLD

    weights = {k: np.asarray(v, np.float32) for k, v in random_network(8).numpy_weights().items()}
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode("utf-8"))
        h.update(weights[name].tobytes())
    header = json.dumps({"format": "dualface-closure-detector-1", "sha256": h.hexdigest(), "seed": 8})
    np.savez(tmp_path / "old.npz", info=np.frombuffer(header.encode(), np.uint8), **weights)
    old = read_detector(tmp_path / "old.npz")
    assert len(old.members) == 1 and old.threshold == THRESHOLD and old.info["seed"] == 8
    weights["out.bias"] = weights["out.bias"] + 1.0  # the checksum still guards the old format
    np.savez(tmp_path / "old_bad.npz", info=np.frombuffer(header.encode(), np.uint8), **weights)
    with pytest.raises(ClosureDetectorError, match="damaged"):
        read_detector(tmp_path / "old_bad.npz")


def test_the_ensemble_command_chooses_its_threshold_within_the_reference_budget(
    tiny_corpus, tmp_path, capsys
):
    import json

    from engine.closure.ensemble import main as ensemble_main
    from engine.closure.measure import GRID, hear_view
    from engine.phonemes import BILABIALS, PHONES

    paths = []
    for seed in (1, 2, 3):
        weights = random_network(seed).numpy_weights()
        for phone in BILABIALS:  # random networks that hear p/b/m near the thresholds
            weights["out.bias"][PHONES.index(phone)] += 2.0
        paths.append(save_detector(ClosureDetector(weights, {"seed": seed}), tmp_path / f"m{seed}.npz"))
    out = tmp_path / "fold.npz"
    argv = ["--member", str(paths[0]), "--member", str(paths[1]), "--member", str(paths[2])]
    choose = ["--choose-on", f"{tiny_corpus}@train", "--no-more-spurious-than", str(paths[0])]
    assert ensemble_main([*argv, *choose, "--out", str(out)]) == 0
    fold = read_detector(out)
    assert len(fold.members) == 3 and [m["seed"] for m in fold.info["members"]] == [1, 2, 3]
    record = fold.info["threshold_choice"]
    budget = record["reference"]["spurious_per_bilabial"]
    heard = hear_view(fold, str(tiny_corpus), "train")
    assert heard.counts(fold.threshold)["spurious_per_bilabial"] <= budget  # within the budget...
    lower = [t for t in GRID if t < fold.threshold]
    if lower:  # ...and the lowest such threshold
        assert heard.counts(lower[-1])["spurious_per_bilabial"] > budget
    assert record["chosen"]["recall"] == pytest.approx(heard.counts(fold.threshold)["recall"])
    shipped = tmp_path / "shipped.npz"
    assert ensemble_main([*argv[:4], "--threshold-of", str(out), "--out", str(shipped)]) == 0
    assert read_detector(shipped).threshold == fold.threshold
    assert read_detector(shipped).info["threshold_choice"]["from"] == str(out)
    # bad requests: an error, no file
    bad = tmp_path / "bad.npz"
    assert ensemble_main(["--member", str(paths[0]), "--threshold-of", str(out), "--out", str(bad)]) == 2
    assert ensemble_main([*argv, "--threshold-of", str(paths[0]), "--out", str(bad)]) == 2  # no choice in it
    assert ensemble_main([*argv, "--choose-on", f"{tiny_corpus}@train", "--out", str(bad)]) == 2
    assert (
        ensemble_main(
            [
                *argv,
                "--choose-on",
                str(tiny_corpus),
                "--no-more-spurious-than",
                str(paths[0]),
                "--out",
                str(bad),
            ]
        )
        == 2
    )
    assert (
        ensemble_main(
            [*argv[:2], "--member", str(tmp_path / "none.npz"), "--threshold-of", str(out), "--out", str(bad)]
        )
        == 2
    )
    assert not bad.exists()
    assert "error:" in capsys.readouterr().err
    assert json.loads(json.dumps(fold.info))  # the description is plain JSON
