"""The corpus CLI: a tiny run round-trips through the dataset reader, is a pure function of the seed
(whatever the worker count), keeps held-out voices and sentences out of training, and leaves nothing
behind when it fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data import synth
from engine.data.readers import open_dataset
from engine.data.sentences import is_held_out
from engine.data.splits import SPLIT_NAMES
from engine.phonemes import PHONES


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "synth"
    summary = synth.generate_corpus(
        out, hours=12 / 3600, seed=11, workers=1, languages=["en", "fr"], augment_prob=0.5, progress=False
    )
    assert summary["clips"] >= 3 and summary["audio_hours"] * 3600 >= 12
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_corpus_round_trips_through_the_reader(tiny_corpus: Path) -> None:
    dataset = open_dataset(tiny_corpus)
    clips = dataset.clips()
    assert len(clips) >= 3
    for clip in clips:
        audio, sr = sf.read(clip.audio_path, dtype="float32")
        assert sr == 16000 and audio.ndim == 1
        assert clip.fps == 30.0
        assert clip.vertices.shape == (int(np.ceil(len(audio) / sr * 30 - 1e-6)), 468, 3)
        assert clip.arkit is not None and clip.arkit.shape == (clip.vertices.shape[0], 52)
        assert clip.language in ("en", "fr") and clip.text
        assert clip.subject == clip.meta["voice_id"] and clip.subject.split("-")[0] in (
            "espeak",
            "flite",
            "festival",
        )
        phones = clip.phones
        assert phones and phones[0].start == 0.0
        assert phones[-1].end == pytest.approx(len(audio) / sr, abs=1e-3)
        assert all(p.phone in PHONES for p in phones)
        assert all(a.end == pytest.approx(b.start) for a, b in zip(phones, phones[1:]))
        assert clip.emotion in ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
        assert set(clip.meta["style"]) == {
            "articulation",
            "jaw_ratio",
            "lip_rounding",
            "timing_jitter",
            "smile_bias",
        }


def test_splits_hold_out_voices_and_sentences(tiny_corpus: Path) -> None:
    info = json.loads((tiny_corpus / "dataset.json").read_text())
    splits = json.loads((tiny_corpus / "splits.json").read_text())
    held_voices = set(info["held_out_voices"])
    assert held_voices and any(v.startswith("flite-") for v in held_voices)
    assert set(splits) == set(SPLIT_NAMES)
    metas = {p.stem: json.loads(p.read_text()) for p in (tiny_corpus / "meta").glob("*.json")}
    assert sorted(sum(splits.values(), [])) == sorted(metas)
    for name, ids in splits.items():
        for clip_id in ids:
            meta = metas[clip_id]
            voice_held = meta["subject"] in held_voices
            sentence_held = is_held_out(meta["text"], synth.SENTENCE_HOLD_OUT)
            if name in ("train", "val"):
                assert not voice_held and not sentence_held, clip_id
            elif name == "test_voices":
                assert voice_held
            else:
                assert sentence_held and not voice_held


def test_plan_holds_out_whole_voices_in_every_language() -> None:
    plan = synth.make_plan(seed=4, languages=["en", "es", "de"], fps=30, augment_prob=0.0)
    espeak_held = [v for v in plan.held_out_voices if v.startswith("espeak-")]
    variants = {v.rsplit("+", 1)[1] for v in espeak_held}
    assert len(variants) == synth.HELD_OUT_VARIANTS
    for lang in ("en", "es", "de"):
        ids = {v.id for v in plan.voices[lang]["espeak"]}
        assert ids & plan.held_out_voices and ids - plan.held_out_voices
    assert sum(v.startswith("flite-") for v in plan.held_out_voices) == 1
    again = synth.make_plan(seed=4, languages=["en", "es", "de"], fps=30, augment_prob=0.0)
    assert again.held_out_voices == plan.held_out_voices


@pytest.mark.slow
def test_output_depends_on_seed_not_on_workers(tiny_corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "two_workers"
    synth.generate_corpus(
        other, hours=12 / 3600, seed=11, workers=2, languages=["en", "fr"], augment_prob=0.5, progress=False
    )
    a, b = _files(tiny_corpus), _files(other)
    assert a.keys() == b.keys()
    for name in a:
        if name == "dataset.json":  # holds the (machine-dependent) speed measurement
            da, db = json.loads(a[name]), json.loads(b[name])
            da.pop("speed"), db.pop("speed")
            assert da == db
        else:
            assert a[name] == b[name], f"{name} differs between 1 and 2 workers"


def test_different_seed_gives_different_clips() -> None:
    plan_a = synth.make_plan(1, ["en"], 30, 0.0)
    plan_b = synth.make_plan(2, ["en"], 30, 0.0)
    a, b = synth.make_clip(plan_a, 0), synth.make_clip(plan_b, 0)
    again = synth.make_clip(plan_a, 0)
    assert a.meta["text"] != b.meta["text"] or a.subject != b.subject
    assert np.array_equal(a.audio, again.audio) and np.array_equal(a.vertices, again.vertices)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0"], "--hours"),
        (["--hours", "0.01", "--workers", "0"], "--workers"),
        (["--hours", "0.01", "--languages", "en,xx"], "--languages"),
        (["--hours", "0.01", "--fps", "24"], "--fps"),
        (["--hours", "0.01", "--augment-prob", "1.5"], "--augment-prob"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    out = tmp_path / "corpus"
    assert synth.main([*args, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_replaced(tmp_path: Path, capsys) -> None:
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert synth.main(["--hours", "0.001", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_failure_midway_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    real = synth.make_clip

    def flaky(plan, index):
        if index == 2:
            raise RuntimeError("simulated crash in clip 2")
        return real(plan, index)

    monkeypatch.setattr(synth, "make_clip", flaky)
    out = tmp_path / "corpus"
    with pytest.raises(RuntimeError, match="simulated crash"):
        synth.generate_corpus(out, hours=1.0, seed=0, workers=1, languages=["en"], progress=False)
    assert list(tmp_path.iterdir()) == []
