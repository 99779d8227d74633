"""Readers for real datasets on tiny generated VOCASET/BIWI folders: detection, splits, laziness, errors."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.data.readers import DatasetError, open_dataset
from engine.data.splits import BIWI_SEEN_SUBJECTS, VOCASET_SUBJECTS, pick_held_out, subject_and_sentence

_spec = importlib.util.spec_from_file_location(
    "real_datasets", Path(__file__).parent / "fixtures" / "real_datasets.py"
)
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

VOCA_TRAIN, VOCA_VAL, VOCA_TEST = (
    VOCASET_SUBJECTS["train"][0],
    VOCASET_SUBJECTS["val"][0],
    VOCASET_SUBJECTS["test"][1],
)


@pytest.fixture
def vocaset(tmp_path):
    names = fx.vocaset_names([VOCA_TRAIN, VOCA_VAL, VOCA_TEST], [1, 20, 21, 40])
    return fx.make_real_dataset(tmp_path / "vocaset", fx.VOCASET_VERTICES, names)


@pytest.fixture
def biwi(tmp_path):
    names = fx.biwi_names(["F2", "M3"], [1, 32, 33, 36, 37, 40]) + fx.biwi_names(["F1"], [36, 37])
    names += fx.biwi_names(["M4"], [5, 39], emotional=False)
    return fx.make_real_dataset(tmp_path / "biwi", fx.BIWI_VERTICES, names, frames=1, dtype=np.float64)


def test_vocaset_is_detected_and_split_like_faceformer(vocaset):
    data = open_dataset(vocaset)
    assert (data.kind, data.fps, data.n_vertices, len(data)) == ("vocaset", 60.0, 5023, 12)
    ids = lambda split: sorted(data.ids(split))  # noqa: E731
    assert ids("train") == [f"{VOCA_TRAIN}_sentence{n:02d}" for n in (1, 20, 21, 40)]
    assert ids("val") == [f"{VOCA_VAL}_sentence{n:02d}" for n in (21, 40)]
    assert ids("test_voices") == [f"{VOCA_TEST}_sentence{n:02d}" for n in (21, 40)]
    assert ids("test_sentences") == []
    clip = data.clip(f"{VOCA_VAL}_sentence21")
    assert clip.subject == VOCA_VAL and clip.fps == 60.0
    assert clip.vertices.shape == (2, 5023, 3) and clip.template.shape == (5023, 3)
    assert isinstance(clip.vertices, np.memmap)
    raw = np.load(vocaset / "vertices_npy" / f"{VOCA_VAL}_sentence21.npy")
    assert np.array_equal(np.asarray(clip.vertices).reshape(2, -1), raw)
    with open(vocaset / "templates.pkl", "rb") as f:
        assert np.allclose(clip.template, pickle.load(f)[VOCA_VAL])
    assert clip.audio_path.is_file() and clip.arkit is None and clip.phones is None
    assert clip.offsets.shape == (2, 5023, 3)


def test_biwi_is_detected_and_split_like_codetalker(biwi):
    data = open_dataset(biwi)
    assert (data.kind, data.fps, data.n_vertices) == ("biwi", 25.0, 23370)
    sentence = {i: subject_and_sentence(i)[1] for i in data.clip_ids}
    assert {sentence[i] for i in data.ids("train")} == {1, 32, 5}
    assert {sentence[i] for i in data.ids("val")} == {33, 36}
    assert {sentence[i] for i in data.ids("test_sentences")} == {37, 40, 39}
    assert data.ids("test_voices") == ["F1_e37"]  # BIWI-Test-B: unseen subject, sentences 37-40
    for split in ("train", "val", "test_sentences"):
        assert {subject_and_sentence(i)[0] for i in data.ids(split)} <= set(BIWI_SEEN_SUBJECTS)
    clip = data.clip("M3_e40")
    assert clip.vertices.shape == (1, 23370, 3) and clip.subject == "M3"
    assert "F1_e36" in data.clip_ids and all("F1_e36" not in v for v in data.splits.values())


def test_splits_json_overrides_the_standard_rule(biwi):
    (biwi / "splits.json").write_text(json.dumps({"train": ["F2_e01"], "test_voices": ["F1_e36"]}))
    data = open_dataset(biwi)
    assert data.ids("train") == ["F2_e01"] and data.ids("test_voices") == ["F1_e36"] and data.ids("val") == []
    (biwi / "splits.json").write_text(json.dumps({"train": ["nobody_01"]}))
    with pytest.raises(DatasetError, match="nobody_01"):
        open_dataset(biwi)


def test_clips_with_only_audio_or_only_motion_are_skipped_not_fatal(vocaset):
    (vocaset / "wav" / f"{VOCA_TRAIN}_sentence01.wav").unlink()
    data = open_dataset(vocaset)
    assert data.skipped == [f"{VOCA_TRAIN}_sentence01"] and len(data) == 11


def test_missing_folder_and_files_give_clear_errors(tmp_path, vocaset):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    (tmp_path / "nowhere.partial").mkdir()
    with pytest.raises(DatasetError, match="did not finish"):
        open_dataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="missing wav, vertices_npy, templates.pkl"):
        open_dataset(empty)
    (vocaset / "templates.pkl").unlink()
    with pytest.raises(DatasetError, match="templates.pkl"):
        open_dataset(vocaset)


def test_template_missing_for_a_subject(tmp_path):
    names = fx.vocaset_names([VOCA_TRAIN, VOCA_TEST], [1])
    root = fx.make_real_dataset(tmp_path / "v", fx.VOCASET_VERTICES, names, template_subjects=[VOCA_TRAIN])
    with pytest.raises(DatasetError, match=f"no template for subjects \\['{VOCA_TEST}'\\]"):
        open_dataset(root)


def test_mismatched_shapes_are_reported_with_the_file(tmp_path, vocaset):
    bad = vocaset / "vertices_npy" / f"{VOCA_TEST}_sentence40.npy"
    np.save(bad, np.zeros((2, 5000 * 3), np.float32))
    with pytest.raises(DatasetError, match=f"{VOCA_TEST}_sentence40.npy has shape"):
        open_dataset(vocaset)

    odd = fx.make_real_dataset(tmp_path / "odd", 100, ["S1_01"])
    with pytest.raises(DatasetError, match="VOCASET has 15069 and BIWI 70110"):
        open_dataset(odd)

    names = fx.vocaset_names([VOCA_TRAIN], [1])
    root = fx.make_real_dataset(tmp_path / "t", fx.VOCASET_VERTICES, names)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump({VOCA_TRAIN: np.zeros((10, 3))}, f)
    with pytest.raises(DatasetError, match="expected \\(5023, 3\\)"):
        open_dataset(root)


def test_unknown_split_name_is_rejected(vocaset):
    with pytest.raises(KeyError, match="unknown split 'test'"):
        open_dataset(vocaset).clips("test")


def test_pick_held_out_is_seeded_and_keeps_training_data():
    voices = [f"v{i}" for i in range(20)]
    a = pick_held_out(voices, 0.1, np.random.default_rng(0))
    assert a == pick_held_out(voices, 0.1, np.random.default_rng(0)) and len(a) == 2 and set(a) <= set(voices)
    assert pick_held_out(["only"], 0.5, np.random.default_rng(0)) == []
    assert len(pick_held_out(voices, 0.01, np.random.default_rng(0))) == 1  # at least one when asked
