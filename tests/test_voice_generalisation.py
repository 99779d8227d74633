"""The voice-generalisation pieces: speaker transforms, level, pauses, folds, contact losses, rest
gating, contact-first ARKit fitting and the unseen-voice metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.audio.level import TARGET_DBFS, active_level_dbfs, normalize_level
from engine.audio.speaker import SpeakerChange, change_rate, change_speaker, shift_formants
from engine.data.record import Phone
from engine.metrics import contact_counts, lip_gap_mm, rest_counts, rounding_mm

SR = 16000


def harmonic_vowel(f0: float, formant: float, seconds: float = 1.0) -> np.ndarray:
    """A buzz at f0 whose harmonics are shaped by one resonance at `formant` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for k in range(1, int(7000 / f0)):
        f = k * f0
        out += np.sin(2 * np.pi * f * t) / (1.0 + ((f - formant) / 150.0) ** 2)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def dominant_f0(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    band = (freqs > 60) & (freqs < 400)
    # the first harmonic is the lowest strong peak; autocorrelation is more robust for a buzz
    ac = np.correlate(x[:4000], x[:4000], mode="full")[3999:]
    lag = np.argmax(ac[SR // 400 : SR // 60]) + SR // 400
    assert spectrum[band].max() > 0
    return SR / lag


def envelope_peak(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    smooth = np.convolve(spectrum, np.ones(301) / 301, mode="same")
    band = (freqs > 300) & (freqs < 5000)
    return float(freqs[band][np.argmax(smooth[band])])


def test_formant_shift_moves_the_envelope_and_keeps_the_pitch():
    x = harmonic_vowel(120.0, 1200.0)
    y = shift_formants(x, SR, 1.2)
    assert len(y) == len(x)
    assert envelope_peak(y) == pytest.approx(1.2 * envelope_peak(x), rel=0.12)
    assert dominant_f0(y) == pytest.approx(dominant_f0(x), rel=0.05)


def test_speaker_change_moves_pitch_and_formants_independently():
    x = harmonic_vowel(120.0, 1200.0)
    lower_voice = change_speaker(x, SR, SpeakerChange(formant_ratio=1.0, pitch_semitones=-5.0))
    assert dominant_f0(lower_voice) == pytest.approx(120.0 * 2 ** (-5 / 12), rel=0.06)
    assert envelope_peak(lower_voice) == pytest.approx(envelope_peak(x), rel=0.15)
    assert np.abs(lower_voice).max() <= 0.99


def test_rate_change_reports_the_time_factor_for_phone_times():
    x = harmonic_vowel(150.0, 900.0, seconds=2.0)
    y, factor = change_rate(x, 1.25)
    assert factor == pytest.approx(len(y) / len(x))
    assert factor == pytest.approx(0.8, abs=0.01)


def test_random_speakers_stay_in_range_and_extremes_lie_outside():
    rng = np.random.default_rng(0)
    normal = [SpeakerChange.random(rng) for _ in range(200)]
    extreme = [SpeakerChange.random(rng, extreme=True) for _ in range(50)]
    assert all(0.85 < c.formant_ratio < 1.17 for c in normal)
    assert all(c.formant_ratio < 0.84 or c.formant_ratio > 1.2 for c in extreme)
    assert all(abs(c.pitch_semitones) > 6.5 for c in extreme)


def test_level_normalisation_ignores_pauses_and_never_clips():
    rng = np.random.default_rng(1)
    speech = (0.01 * rng.standard_normal(SR)).astype(np.float32)
    with_pause = np.concatenate([speech, np.zeros(3 * SR, np.float32), speech])
    a, b = normalize_level(speech), normalize_level(with_pause)
    assert active_level_dbfs(a) == pytest.approx(TARGET_DBFS, abs=0.5)
    assert active_level_dbfs(b) == pytest.approx(TARGET_DBFS, abs=0.5)
    assert (
        np.abs(normalize_level(np.full(100, 0.9, np.float32) * np.sign(rng.standard_normal(100)))).max()
        <= 0.99
    )
    assert not np.any(normalize_level(np.zeros(500, np.float32)))


def test_synth_clips_have_pauses_and_engine_folds(tmp_path):
    from engine.data.readers import open_dataset
    from engine.data.synth import generate_corpus

    out = tmp_path / "corpus"
    generate_corpus(out, hours=0.02, seed=3, workers=1, languages=["en"], augment_prob=0.5, progress=False)
    dataset = open_dataset(out)
    clips = dataset.clips()
    pauses = [p.end - p.start for c in clips for p in c.phones if p.phone == "sil"]
    assert max(pauses) >= 0.3  # users' takes have pauses; so does the corpus
    engines = {c.meta["engine"] for c in clips}
    for engine in engines:
        unseen = set(dataset.ids(f"unseen-{engine}"))
        train = set(dataset.ids(f"train-without-{engine}"))
        assert unseen and not unseen & train
        assert all(dataset.clip(i).meta["engine"] == engine for i in unseen)
        assert train <= set(dataset.ids("train"))


def test_contact_losses_vanish_for_the_truth_and_punish_open_lips():
    from engine.face.template import load_template
    from engine.model.config import ModelConfig
    from engine.model.losses import lip_contact_losses

    template = torch.from_numpy(load_template().vertices.astype(np.float32))
    gt = torch.zeros(1, 5, 468, 3)
    batch = {"template": template[None]}
    mask = torch.ones(1, 5, dtype=torch.bool)
    cfg = ModelConfig()
    same = lip_contact_losses(gt.clone(), gt, batch, mask, cfg)
    assert float(same["lip_contact"]) == 0.0 and float(same["lip_gap"]) == 0.0
    opened = gt.clone()
    opened[:, :, 14, 1] -= 0.003  # lower inner lip 3 mm down: the closed mouth opens
    worse = lip_contact_losses(opened, gt, batch, mask, cfg)
    assert float(worse["lip_contact"]) > 0.0 and float(worse["lip_gap"]) > 0.0


def test_pauses_are_found_on_clean_and_noisy_speech_but_stop_gaps_are_not():
    from engine.inference.rest import pause_mask

    rng = np.random.default_rng(2)
    burst = (0.2 * rng.standard_normal(int(0.5 * SR))).astype(np.float32)
    stop_gap = np.zeros(int(0.08 * SR), np.float32)
    pause = np.zeros(int(0.6 * SR), np.float32)
    clean = np.concatenate([burst, stop_gap, burst, pause, burst])
    noisy = clean + (0.004 * rng.standard_normal(len(clean))).astype(np.float32)  # about 30 dB SNR
    for audio in (clean, noisy):
        mask = pause_mask(audio, SR)
        t = np.arange(len(mask)) * 0.01
        assert mask[(t > 1.2) & (t < 1.6)].all()  # inside the 0.6 s pause
        assert not mask[(t > 0.51) & (t < 0.57)].any()  # an 80 ms stop closure is articulation
        assert not mask[t < 0.45].any()


def test_rest_blend_closes_the_mouth_only_in_pauses():
    from engine.data.style import SpeakerStyle
    from engine.inference.rest import blend_to_rest, rest_weights, rig_rest_offsets

    rng = np.random.default_rng(4)
    audio = np.concatenate([0.2 * rng.standard_normal(SR), np.zeros(SR), 0.2 * rng.standard_normal(SR)])
    fps, n = 30.0, 90
    weights = rest_weights(audio.astype(np.float32), SR, fps, n)
    assert weights[45] == pytest.approx(1.0) and weights[10] == 0.0 and weights[80] == 0.0
    offsets = np.full((n, 468, 3), 0.002, np.float32)
    cond = np.zeros((n, 8), np.float32)
    style = SpeakerStyle().as_vector()
    out = blend_to_rest(offsets, lambda idx: rig_rest_offsets(style, fps, cond[idx]), weights)
    from engine.face.template import load_template

    face = load_template().vertices[None] + out
    gap = lip_gap_mm(face)
    assert gap[45] <= 0.5
    np.testing.assert_array_equal(out[10], offsets[10])


def test_contact_first_arkit_fit_keeps_closures_of_the_vertex_motion():
    from engine.arkit.basis import apply_arkit
    from engine.arkit.solve import arkit_from_template_motion
    from engine.data.motion import render_motion
    from engine.data.style import SpeakerStyle
    from engine.face.template import load_template

    phones = [Phone("sil", 0, 0.3), Phone("M", 0.3, 0.4), Phone("AA", 0.4, 0.6), Phone("P", 0.6, 0.7),
              Phone("OW", 0.7, 0.9), Phone("sil", 0.9, 1.5)]  # fmt: skip
    motion = render_motion(phones, "neutral", 1.0, SpeakerStyle(), 30.0, 1.5, 0)
    template = load_template().vertices
    offsets = motion.vertices - template[None]
    rough_start = np.clip(motion.arkit + np.random.default_rng(0).normal(0, 0.1, motion.arkit.shape), 0, 1)
    weights = arkit_from_template_motion(offsets, start=rough_start)
    gap_vertex = lip_gap_mm(motion.vertices)
    gap_arkit = lip_gap_mm(template[None] + apply_arkit(weights))
    assert np.abs(gap_arkit - gap_vertex).max() < 0.5
    assert contact_counts(gap_arkit, phones, 30.0) == (2, 2)


def test_lip_metrics_tell_motion_from_a_frozen_face():
    phones = [Phone("sil", 0, 0.5), Phone("M", 0.5, 0.6), Phone("IY", 0.6, 0.8), Phone("UW", 0.8, 1.0),
              Phone("sil", 1.0, 1.6)]  # fmt: skip
    fps = 30.0
    gap = np.full(48, 5.0)
    assert contact_counts(gap, phones, fps) == (0, 1)
    gap[16] = 0.5  # closes during M
    assert contact_counts(gap, phones, fps) == (1, 1)
    at_rest, total = rest_counts(gap, phones, fps)
    assert total > 0 and at_rest == 0
    width = np.full(48, 50.0)
    assert rounding_mm(width, phones, fps) == (0.0, 1.0)
    width[27:30] = 40.0  # narrower during UW
    assert rounding_mm(width, phones, fps)[0] == pytest.approx(10.0)


@pytest.mark.parametrize("kind", ["digital silence", "quiet hiss"])
def test_silence_gives_the_rest_face_in_both_outputs(kind):
    from engine.api import Engine
    from engine.arkit import ARKIT_INDEX
    from engine.arkit.basis import apply_arkit
    from engine.face.template import load_template

    audio = np.zeros(2 * SR, np.float32)
    if kind == "quiet hiss":
        audio += (0.0005 * np.random.default_rng(5).standard_normal(len(audio))).astype(np.float32)
    take = Engine(device="cpu", threads=1).animate(audio, sample_rate=SR, captions=False)
    template = load_template().vertices[None]
    assert lip_gap_mm(template + take.offsets).max() <= 0.5
    assert lip_gap_mm(template + apply_arkit(take.arkit)).max() <= 0.5
    assert take.arkit[:, ARKIT_INDEX["jawOpen"]].max() <= 0.02


def test_unseen_engine_protocol_reports_model_and_controls(tmp_path):
    from engine.data.synth import generate_corpus
    from engine.eval import main as eval_main
    from engine.voice_eval import format_report, run_protocol

    data = tmp_path / "corpus"
    generate_corpus(data, hours=0.01, seed=5, workers=1, languages=["en"], augment_prob=0.0, progress=False)
    report = run_protocol(data, [("shipped", "weights/dualface.safetensors", "train")], max_clips=3)
    result = report["runs"][0]["default"]
    truth, frozen = result["ground_truth"], result["frozen"]
    assert truth["contact"] == 1.0 and truth["lve_mm2"] == 0.0 and truth["rounding_mm"] > 3.0
    assert frozen["contact"] == 1.0 and frozen["rounding_mm"] == 0.0 and frozen["lve_mm2"] > 1.0
    for output in ("vertex", "arkit"):
        assert 0.0 <= result[output]["contact"] <= 1.0 and result[output]["lve_mm2"] > 0.0
    assert set(result["by_language"]) == {"en"}
    table = format_report(report)
    assert "| shipped | train | 3 | ground truth | 100.0 %" in table
    assert eval_main(["--protocol", "unseen-engine", "--data", str(data), "--run", "no-weights-given"]) == 2


def test_seed_table_pools_runs_by_name_without_the_seed():
    """The model card's seed table: `x`, `x, seed 1` and `x-seed2` are one variant per view; mean and
    range come from the runs, rest is the lowest of both outputs, other views stay apart."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", path)
    assert spec is not None and spec.loader is not None
    results_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results_table)

    def run(name: str, view: str, contact: float, rest: float, lve: float) -> dict:
        outputs = {
            "vertex": {"contact": contact, "rest": rest, "lve_mm2": lve},
            "arkit": {"contact": contact - 0.01, "rest": rest - 0.002, "lve_mm2": lve},
        }
        return {"name": name, "view": view, "default": outputs}

    gpu = {
        "runs": [run("full", "unseen-flite", 0.95, 1.0, 14.0), run("full", "unseen-espeak", 0.90, 1.0, 9.0)]
    }
    cpu = {
        "runs": [
            run("full, seed 1", "unseen-flite", 0.91, 0.99, 16.0),
            run("full-seed2", "unseen-flite", 0.90, 1.0, 15.0),
        ]
    }
    rows = results_table.seed_table([("gpu", gpu), ("cpu", cpu)]).splitlines()[2:]
    assert len(rows) == 2
    assert rows[0] == (
        "| full | unseen-flite | 3 | 92.0 % (90.0-95.0) | 91.0 % (89.0-94.0) | 98.8 % | 15.00 (14.00-16.00) |"
    )
    assert rows[1] == "| full | unseen-espeak | 1 | 90.0 % | 89.0 % | 99.8 % | 9.00 |"
