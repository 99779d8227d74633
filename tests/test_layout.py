"""The dataset writer: round trip through the reader, atomic publish, and refusal of bad clips."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import soundfile as sf

from engine.data.layout import DatasetWriter
from engine.data.motion import n_frames, render_motion
from engine.data.readers import open_dataset
from engine.data.record import Phone
from engine.data.splits import build_splits
from engine.data.style import SpeakerStyle
from engine.face.template import load_template

FPS = 30
SR = 16000


def make_clip(seed: int, text: str, emotion: str = "neutral"):
    rng = np.random.default_rng(seed)
    phones = [Phone("sil", 0.0, 0.2), Phone("B", 0.2, 0.28), Phone("AA", 0.28, 0.5), Phone("sil", 0.5, 0.7)]
    seconds = 0.7 + 0.01 * seed
    audio = rng.uniform(-0.5, 0.5, int(seconds * SR)).astype(np.float32)
    style = SpeakerStyle.random(rng)
    motion = render_motion(phones, emotion, 0.8, style, fps=FPS, duration=seconds, seed=seed)
    meta = {
        "text": text,
        "phones": phones,
        "words": [("ba", 0.2, 0.5)],
        "language": "en",
        "voice": {"engine": "espeak-ng", "name": "en-us", "language": "en"},
        "emotion": emotion,
        "intensity": 0.8,
        "style": style.as_vector(),
    }
    return audio, motion, meta


def write_small(root, n=6):
    template = load_template().vertices
    metas = []
    with DatasetWriter(root, fps=FPS, n_vertices=468) as writer:
        for i in range(n):
            audio, motion, meta = make_clip(i, f"sentence {i % 3}", "happy" if i % 2 else "neutral")
            subject = f"voice{i % 3}"
            writer.add(f"clip{i:03d}", subject, audio, SR, motion.vertices, template, motion.arkit, meta)
            metas.append({"clip_id": f"clip{i:03d}", "subject": subject, "text": meta["text"]})
        splits = build_splits(
            metas, held_out_voices=["voice2"], held_out_sentences=["Sentence 1."], val_fraction=0
        )
        writer.finish(splits)
    return splits


def test_round_trip_writer_to_reader(tmp_path):
    root = tmp_path / "corpus"
    splits = write_small(root)
    assert not (tmp_path / "corpus.partial").exists()
    for sub in ("wav", "vertices_npy", "arkit_npy", "meta"):
        assert len(list((root / sub).iterdir())) == 6
    info = json.loads((root / "dataset.json").read_text())
    assert (
        info["kind"] == "synthetic"
        and info["fps"] == FPS
        and info["n_vertices"] == 468
        and info["n_clips"] == 6
    )
    assert json.loads((root / "splits.json").read_text()) == splits
    with open(root / "templates.pkl", "rb") as f:
        assert sorted(pickle.load(f)) == ["voice0", "voice1", "voice2"]

    dataset = open_dataset(root)
    assert dataset.kind == "synthetic" and dataset.fps == FPS and len(dataset) == 6
    assert {c.clip_id for c in dataset.clips("test_voices")} == {"clip002", "clip005"}
    assert {c.clip_id for c in dataset.clips("test_sentences")} == {"clip001", "clip004"}
    assert {c.clip_id for c in dataset.clips("train")} == {"clip000", "clip003"}

    for i, clip in enumerate(dataset.clips()):
        audio, motion, meta = make_clip(i, f"sentence {i % 3}", "happy" if i % 2 else "neutral")
        assert isinstance(clip.vertices, np.memmap)  # lazy: nothing read until used
        assert clip.vertices.shape == motion.vertices.shape
        assert np.array_equal(np.asarray(clip.vertices), motion.vertices)
        assert np.array_equal(np.asarray(clip.arkit), motion.arkit)
        assert np.allclose(clip.template, load_template().vertices)
        assert clip.phones == meta["phones"]
        assert clip.text == meta["text"] and clip.emotion == meta["emotion"] and clip.intensity == 0.8
        assert clip.meta["style"] == pytest.approx(meta["style"].tolist())
        assert clip.meta["voice"]["engine"] == "espeak-ng" and clip.meta["words"] == [["ba", 0.2, 0.5]]
        assert clip.vertices.shape[0] == n_frames(len(audio) / SR, FPS) == clip.meta["n_frames"]
        heard, sr = sf.read(clip.audio_path, dtype="float32")
        assert sr == SR and np.abs(heard - audio).max() < 1e-4


def test_exception_inside_the_writer_leaves_nothing(tmp_path):
    root = tmp_path / "corpus"
    template = load_template().vertices
    audio, motion, meta = make_clip(0, "x")
    with pytest.raises(RuntimeError, match="worker died"):
        with DatasetWriter(root, fps=FPS, n_vertices=468) as writer:
            writer.add("a", "v", audio, SR, motion.vertices, template, motion.arkit, meta)
            assert (tmp_path / "corpus.partial" / "wav" / "a.wav").is_file()
            raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []


def test_forgetting_finish_publishes_nothing(tmp_path):
    audio, motion, meta = make_clip(0, "x")
    with DatasetWriter(tmp_path / "c", fps=FPS, n_vertices=468) as writer:
        writer.add("a", "v", audio, SR, motion.vertices, load_template().vertices)
    assert list(tmp_path.iterdir()) == []


def test_bad_clips_are_refused_and_write_nothing(tmp_path):
    template = load_template().vertices
    audio, motion, meta = make_clip(0, "x")
    writer = DatasetWriter(tmp_path / "c", fps=FPS, n_vertices=468)
    partial = tmp_path / "c.partial"

    def files():
        return sorted(p.relative_to(partial) for p in partial.rglob("*") if p.is_file())

    cases = [
        (dict(vertices=motion.vertices[:, :400]), "vertices must be"),
        (dict(vertices=motion.vertices[:-5]), "do not match"),
        (dict(template=template[:10]), "template must be"),
        (dict(arkit=motion.arkit[:, :50]), "arkit must be"),
        (dict(audio=audio * 4), "exceeds 1.0"),
        (dict(audio=np.stack([audio, audio], 1)), "mono"),
        (dict(clip_id="../escape"), "safe file name"),
        (dict(meta={**meta, "phones": [("QQ", 0.0, 0.1)]}), "not in engine.phonemes.PHONES"),
    ]
    good = dict(clip_id="a", subject="v", audio=audio, sample_rate=SR, vertices=motion.vertices,
                template=template, arkit=motion.arkit, meta=meta)  # fmt: skip
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            writer.add(**{**good, **change})
        assert files() == []
    writer.add(**good)
    written = files()
    with pytest.raises(ValueError, match="already added"):
        writer.add(**good)
    with pytest.raises(ValueError, match="different template"):
        writer.add(**{**good, "clip_id": "b", "template": template + 0.01})
    with pytest.raises(ValueError, match="not in the dataset"):
        writer.finish({"train": ["a", "zzz"]})
    with pytest.raises(ValueError, match="disjoint"):
        writer.finish({"train": ["a"], "val": ["a"]})
    with pytest.raises(ValueError, match="unknown split"):
        writer.finish({"training": ["a"]})
    assert files() == written and not (tmp_path / "c").exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_is_not_overwritten_by_accident(tmp_path):
    root = tmp_path / "corpus"
    write_small(root, n=3)
    before = sorted(p.name for p in (root / "meta").iterdir())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        DatasetWriter(root, fps=FPS, n_vertices=468)
    assert sorted(p.name for p in (root / "meta").iterdir()) == before
    audio, motion, meta = make_clip(9, "new")
    with DatasetWriter(root, fps=FPS, n_vertices=468, overwrite=True) as writer:
        writer.add("only", "v", audio, SR, motion.vertices, load_template().vertices, motion.arkit, meta)
        writer.finish({"train": ["only"]})
    assert open_dataset(root).clip_ids == ["only"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_build_splits_holds_out_voices_and_sentences():
    clips = [
        {"clip_id": f"{v}-{s}", "subject": v, "text": t}
        for v in ("anna", "ben", "cleo", "dan")
        for s, t in enumerate(["Hello there.", "hello, THERE", "Good night", "Open the door", "Why not"])
    ]
    splits = build_splits(
        clips, held_out_voices={"dan"}, held_out_sentences={"hello there"}, val_fraction=0.3, seed=1
    )
    by_id = {c["clip_id"]: c for c in clips}
    assert {by_id[i]["subject"] for i in splits["test_voices"]} == {"dan"}
    assert len(splits["test_voices"]) == 5
    assert sorted(splits["test_sentences"]) == ["anna-0", "anna-1", "ben-0", "ben-1", "cleo-0", "cleo-1"]
    assert splits["val"] and splits["train"]
    all_ids = [i for ids in splits.values() for i in ids]
    assert sorted(all_ids) == sorted(by_id)
    train_voices = {by_id[i]["subject"] for i in splits["train"] + splits["val"]}
    assert "dan" not in train_voices
    again = build_splits(
        clips + [{"clip_id": "new", "subject": "anna", "text": "x"}], {"dan"}, {"hello there"}, 0.3, 1
    )
    assert set(splits["val"]) <= set(again["val"])  # adding clips does not reshuffle old ones
