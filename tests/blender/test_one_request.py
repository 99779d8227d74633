"""One request, three doors: the engine CLI, the stdio worker and headless Blender make the same take."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from blender_helpers import write_speechlike_wav

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def test_cli_worker_and_headless_make_the_same_take_from_one_request(scene, tiny_weights, tmp_path, capsys):
    import bpy

    from blender_addon import headless
    from engine import cli
    from engine.animation import Animation
    from engine.request import SCHEMA_VERSION, AnimateRequest
    from engine.serve import WorkerClient

    audio = write_speechlike_wav(tmp_path / "line.wav", seconds=1.2)
    job = {
        "audio": str(audio),
        "fps": 25,
        "emotion": [[0, "neutral", 1], [0.5, "happy", 0.7]],
        "intensity": 0.8,
        "style": {"articulation": 1.2},
        "language": "en",
    }
    weights = ["--weights", str(tiny_weights), "--device", "cpu"]

    cli_jobs = tmp_path / "cli.json"
    cli_jobs.write_text(
        json.dumps({"schema_version": SCHEMA_VERSION, "jobs": [{**job, "output": "cli.npz"}]})
    )
    assert cli.main(["animate", "--batch", str(cli_jobs), "--out-dir", str(tmp_path), *weights, "-q"]) == 0

    with WorkerClient(sys.executable, weights=str(tiny_weights), device="cpu", threads=1) as worker:
        worker.animate(
            AnimateRequest.from_mapping({**job, "output": str(tmp_path / "worker.npz")}), timeout=300
        )

    blender_jobs = tmp_path / "blender.json"
    blender_job = {**job, "output": "headless.npz", "add_head": True, "captions": True}
    blender_jobs.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "jobs": [blender_job]}))
    assert headless.main(["animate", "--batch", str(blender_jobs), *weights]) == 0, capsys.readouterr().err
    assert "DF_line_001" in [a.name for a in bpy.data.actions]  # the take is in the scene

    takes = {name: Animation.load(tmp_path / f"{name}.npz") for name in ("cli", "worker", "headless")}
    reference = takes["cli"]
    assert reference.fps == 25.0 and reference.n_frames == 30
    assert reference.meta["emotion"][1] == [0.5, "happy", pytest.approx(0.56)]
    for name, take in takes.items():
        assert take.fps == reference.fps and take.offsets.shape == reference.offsets.shape, name
        assert np.abs(take.offsets - reference.offsets).max() < 1e-5, name
        assert np.abs(take.arkit - reference.arkit).max() < 1e-5, name
        assert [c.text for c in take.captions] == [c.text for c in reference.captions], name
        assert (
            take.meta["style"] == reference.meta["style"]
            and take.meta["emotion"] == reference.meta["emotion"]
        )
