"""engine.bench runs every section end to end on a tiny model and writes the README rows it measured."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.faceformer_baseline import MAX_SEQ_LEN, FaceFormerDecoder, alignment_mask, biased_causal_mask


def tiny_checkpoint(path):
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=32, audio_layers=1, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    model = DualFace(cfg)
    torch.nn.init.normal_(model.decoder.offset_head.weight, std=0.02)
    return save_checkpoint(model, path)


@pytest.mark.timeout(600)
def test_bench_runs_every_section(tmp_path):
    from engine.bench import main as bench_main

    weights = tiny_checkpoint(tmp_path / "tiny.safetensors")
    report_path = tmp_path / "bench.json"
    code = bench_main(
        ["--weights", str(weights), "--threads", "1", "--repeats", "1", "--agreement-seconds", "2",
         "--cli-durations", "2", "--long-seconds", "0", "--durations", "1", "--faceformer", "1",
         "--widths", "64", "--decode-durations", "2", "--naive", "1", "--stream-seconds", "1",
         "--json", str(report_path)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["agreement"]["pass"] and report["agreement"]["frames"] == 60
    assert report["startup"]["torch_imported"] is False and report["startup"]["startup_s"] > 0
    cli = report["whole_process"]["cli"][0]
    assert (
        "error" not in cli
        and cli["peak_rss_mb"] > 0
        and report["whole_process"]["import_torch"]["wall_s"] > 0
    )
    assert {row["backend"] for row in report["in_process"]} == {"numpy", "torch"}
    faceformer = report["faceformer"][0]
    assert faceformer["frames"] == 30 and not faceformer["over_faceformer_limit"]
    assert faceformer["faceformer_64_s"] > 0 and faceformer["faceformer_64_over_numpy"] > 0
    assert [row["backend"] for row in report["decode_modes"]] == ["numpy", "torch"]
    assert all(row["cache_only_s"] > 0 and row["chunk_batched_s"] > 0 for row in report["decode_modes"])
    assert report["naive_dualface"][0]["naive_dualface_s"] > 0
    assert report["gpu"]["status"].startswith("unmeasured")
    assert any("FaceFormer-faithful" in line for line in report["readme_rows"])
    # the GPU rows as the README shows them, from the report of the one GPU run (an H200)
    from pathlib import Path

    from engine.bench import readme_rows

    measured = json.loads((Path(__file__).parents[1] / "docs/bench/2026-11-30-h200.json").read_text())["gpu"]
    gpu_rows = [row for row in readme_rows({**report, "gpu": measured}) if measured["name"] in row]
    assert len(gpu_rows) == 3 and f"{measured['float32']['wall_s']:.3f} s" in gpu_rows[0]
    assert f"{measured['stream']['latency_median_ms']:.0f} ms" in gpu_rows[2]


def test_faceformer_masks_follow_the_published_design():
    mask = biased_causal_mask(heads=4, length=70, period=30)
    assert torch.isinf(mask[:, 0, 1:]).all() and (mask[:, 5, :6] == 0).all()  # causal; one period: no bias
    assert torch.allclose(mask[0, 65, 0], torch.tensor(-2 * 2.0**-2))  # two periods back, head 0's slope
    blocked = alignment_mask(4, 6)
    assert not blocked[2, 2] and blocked[2, 1] and blocked[2, 3]  # frame t sees audio frame t only


def test_faceformer_decoder_appends_one_frame_per_step_and_reports_its_limit():
    torch.manual_seed(0)
    model = FaceFormerDecoder(n_vertices=10, audio_dim=8, width=64).eval()
    speaker = torch.zeros(1, 8)
    speaker[0, 0] = 1.0
    audio = torch.randn(1, 12, 8)
    full = model.predict(audio, speaker)
    assert full.shape == (1, 12, 30)
    # causal: the first frames do not depend on later audio
    changed = audio.clone()
    changed[:, 8:] += 1.0
    assert np.allclose(model.predict(changed, speaker)[:, :8].numpy(), full[:, :8].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="600-frame limit"):
        model.predict(torch.randn(1, MAX_SEQ_LEN + 1, 8), speaker)
