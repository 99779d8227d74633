"""engine.eval on a tiny synthetic corpus and a tiny trained model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.eval import evaluate, format_table, main, resolve_weights

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
