"""engine.eval on a tiny synthetic corpus and a tiny trained model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.eval import evaluate, format_table, load_masks, main, resolve_weights

_spec = importlib.util.spec_from_file_location(
    "real_datasets", Path(__file__).parent / "fixtures" / "real_datasets.py"
)
real_datasets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_datasets)
VOCASET_VERTICES, BIWI_VERTICES = real_datasets.VOCASET_VERTICES, real_datasets.BIWI_VERTICES

torch.set_num_threads(1)

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.json"
SPLIT_KEYS = {
    "n_clips", "lve_mm2", "fdd_mm2", "eve_mm2", "per_gt_motion", "per_pred_motion", "per_audio",
    "closure_rate_gt", "closure_rate_pred",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from engine.training.config import TrainConfig
    from engine.training.loop import train
    from engine.training.tiny_corpus import write_tiny_corpus

    data = write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny", n_clips=6, seed=3)
    run = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig.load(TINY_CONFIG)
    config.epochs = 1
    train(data, config, run, device="cpu", progress=False)
    return data, run


def test_evaluate_reports_all_metrics_finite(trained):
    from engine.data.readers import open_dataset
    from engine.weights import load_checkpoint

    data, run = trained
    model = load_checkpoint(resolve_weights(run))
    clips = open_dataset(data).clips("test_voices") + open_dataset(data).clips("test_sentences")
    report = evaluate(model, clips)
    assert SPLIT_KEYS <= set(report["all"])
    for key in SPLIT_KEYS:
        assert math.isfinite(report["all"][key]), key
    assert report["all"]["n_clips"] == 2
    assert set(report["by_language"]) == {c.language for c in clips}
    assert sum(m["n_clips"] for m in report["by_language"].values()) == 2
    # the synthetic ground truth closes the lips on every p/b/m
    assert report["all"]["closure_rate_gt"] == 1.0
    assert report["all"]["lve_mm2"] > 0 and report["all"]["eve_mm2"] >= 0
    assert not model.training


def test_perfect_prediction_scores_zero_error(trained, monkeypatch):
    """Swap generation for the ground truth: vertex errors vanish, closure matches the data."""
    from engine.data.readers import open_dataset
    from engine.weights import load_checkpoint

    data, run = trained
    model = load_checkpoint(resolve_weights(run))
    clip = open_dataset(data).clips("test_voices")[0]
    truth = torch.from_numpy(np.asarray(clip.vertices) - clip.template[None])[None]

    def echo(mel, fps, cond, style, **kwargs):
        return truth.clone(), torch.zeros(1, truth.shape[1], 52)

    monkeypatch.setattr(model, "generate", echo)
    metrics = evaluate(model, [clip])["all"]
    assert metrics["lve_mm2"] == 0.0 and metrics["eve_mm2"] == 0.0 and metrics["fdd_mm2"] == 0.0
    assert metrics["closure_rate_pred"] == metrics["closure_rate_gt"] == 1.0
    assert metrics["per_pred_motion"] == pytest.approx(metrics["per_gt_motion"])


def test_cli_writes_json_and_table(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "report.json"
    assert main(["--weights", str(run), "--data", str(data), "--json", str(out), "--max-clips", "1",
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "test_voices" in printed and "LVE mm2" in printed
    report = json.loads(out.read_text())
    assert set(report["splits"]) == {"test_voices", "test_sentences"}
    for split in report["splits"].values():
        assert split["all"]["n_clips"] == 1
        assert SPLIT_KEYS <= set(split["all"])
    assert format_table(report).count("\n") >= 3
    # the model card cites the exact command and the weights it measured
    assert report["command"].startswith("python -m engine.eval --weights ")
    assert report["argv"][3:5] == ["--weights", str(run)]
    weights = Path(report["weights"])
    assert report["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    table = printed.splitlines()
    languages = {r.get("language") for r in json.loads(out.read_text())["splits"]["test_voices"]["clips"]}
    for split in ("test_voices", "test_sentences"):  # one row per split and per language, plus "all"
        rows = [line.split()[:2] for line in table if line.startswith(split)]
        assert [lang for _, lang in rows][0] == "all" and set(languages) <= {lang for _, lang in rows}


def test_cli_errors(trained, tmp_path, capsys):
    data, run = trained
    assert main(["--weights", str(tmp_path), "--data", str(data)]) == 2
    assert "train it first" in capsys.readouterr().err
    assert main(["--weights", str(run), "--data", str(tmp_path / "nope")]) == 2
    assert main(["--weights", str(run), "--data", str(data), "--split", "nonexistent"]) == 2
    assert "nonexistent" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no clips"):
        evaluate(None, [])


def test_lip_reader_override_and_per_pipeline(trained):
    """An oracle lip reader that spells the reference gives PER 0; the model's own reader is unused."""
    from engine.data.readers import open_dataset
    from engine.phonemes import VOCAB
    from engine.training.batches import phone_labels
    from engine.weights import load_checkpoint

    data, run = trained
    model = load_checkpoint(resolve_weights(run))
    clip = open_dataset(data).clips("test_sentences")[0]
    reference = phone_labels(clip.phones)

    class Oracle:
        def read_lips(self, offsets):
            path = [token for label in reference for token in (label, 0)]  # label, blank, label, ...
            logits = torch.full((1, offsets.shape[1], len(VOCAB)), -10.0)
            logits[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
            return logits

    assert len(reference) * 2 <= len(clip.vertices)
    metrics = evaluate(model, [clip], lip_reader=Oracle())["all"]
    assert metrics["per_gt_motion"] == 0.0 and metrics["per_pred_motion"] == 0.0
    assert metrics["n_ref_phones"] == len(reference)


# --------------------------------------------------------------------------- real dataset layouts


def _real_fixture(root: Path, kind: str) -> Path:
    from engine.data.splits import VOCASET_SUBJECTS

    if kind == "vocaset":  # 60 fps, 5023 vertices; one train, one val and one test subject
        subjects = [VOCASET_SUBJECTS[part][0] for part in ("train", "val", "test")]
        return real_datasets.make_real_dataset(
            root, VOCASET_VERTICES, real_datasets.vocaset_names(subjects, [21, 22]), frames=12
        )
    names = real_datasets.biwi_names(["F2"], [1, 2, 33, 37]) + real_datasets.biwi_names(
        ["F1"], [37]
    )  # 25 fps, 23370 vertices
    return real_datasets.make_real_dataset(root, BIWI_VERTICES, names, frames=5)


def _python_m(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.parametrize("kind,n_vertices", [("vocaset", VOCASET_VERTICES), ("biwi", BIWI_VERTICES)])
def test_train_and_eval_commands_on_real_dataset_layouts(tmp_path, kind, n_vertices):
    data = _real_fixture(tmp_path / kind, kind)
    run = tmp_path / "run"
    _python_m("engine.train", "--data", str(data), "--config", str(TINY_CONFIG), "--out", str(run),
              "--device", "cpu", "--threads", "1", "--no-progress")  # fmt: skip
    start = json.loads((run / "train_log.jsonl").read_text().splitlines()[0])
    assert start["parameters"] <= 10_000_000
    split = "test_voices" if kind == "vocaset" else "test_sentences"

    # without masks: the vertex metrics and PER are skipped, and the output says why
    report_path = tmp_path / "plain.json"
    done = _python_m("engine.eval", "--weights", str(run), "--data", str(data), "--split", split,
                     "--json", str(report_path), "--device", "cpu", "--threads", "1", "--no-progress")  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["dataset_kind"] == kind and report["n_vertices"] == n_vertices
    assert report["splits"][split]["all"]["n_clips"] >= 1
    assert "lve_mm2" not in report["splits"][split]["all"]
    for metric in ("LVE skipped", "FDD skipped", "EVE skipped", "PER skipped"):
        assert f"note: {metric}" in done.stdout

    # with a mask file for this mesh, LVE/FDD/EVE are measured, and match the metric on the clip
    masks = {"lips": [0, 5, 9], "upper_face": [100, 200], "eyes_forehead": [300, 301, 302]}
    mask_path = tmp_path / "masks.json"
    mask_path.write_text(json.dumps(masks))
    report_path = tmp_path / "masked.json"
    done = _python_m("engine.eval", "--weights", str(run), "--data", str(data), "--split", split,
                     "--json", str(report_path), "--masks", str(mask_path), "--device", "cpu",
                     "--threads", "1", "--no-progress")  # fmt: skip
    result = json.loads(report_path.read_text())["splits"][split]
    assert all(math.isfinite(result["all"][key]) for key in ("lve_mm2", "fdd_mm2", "eve_mm2"))
    assert result["all"]["lve_mm2"] > 0 and result["all"]["eve_mm2"] > 0  # random fixture motion
    assert "LVE skipped" not in done.stdout and "PER skipped" in done.stdout
    assert result["all"]["lve_mm2"] == pytest.approx(np.mean([c["lve_mm2"] for c in result["clips"]]))


def test_masks_file_is_checked_against_the_mesh(tmp_path):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"lips": [1, 2], "inner_lip_pairs": [[1, 2]]}))
    masks = load_masks(good, 10)
    assert masks["lips"].tolist() == [1, 2] and masks["inner_lip_pairs"].shape == (1, 2)
    npz = tmp_path / "m.npz"
    np.savez(npz, upper_face=np.array([3, 4]))
    assert load_masks(npz, 10)["upper_face"].tolist() == [3, 4]
    for bad, message in [
        ({"lips": [1, 99]}, "outside 0..9"),
        ({"mouth": [1]}, "unknown region"),
        ({"lips": []}, "non-empty"),
        ({"lips": [0.5]}, "integer"),
        ({"inner_lip_pairs": [1, 2]}, "pairs"),
    ]:
        good.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            load_masks(good, 10)
    with pytest.raises(FileNotFoundError):
        load_masks(tmp_path / "none.json", 10)
