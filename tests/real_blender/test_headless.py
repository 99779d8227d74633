"""`blender -b -c dualface animate ...` and `--batch` in the real executable: takes, captions and a
render, with the engine in the External Python worker and nothing heavy imported inside Blender."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


def probe(path: Path) -> dict:
    """ffprobe's view of a rendered file: its streams and duration."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.fail("ffprobe is needed to check renders: apt-get install ffmpeg (scripts/setup.sh does)")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def heavy_imports(run) -> list[dict]:
    """Attempts to import scipy or librosa: nothing inside Blender may even try. (torch and soundfile
    are probed, guarded, by the engine choice and the audio reader; the take passing shows that
    their absence is handled.)"""
    return run.blocked("scipy", "librosa")


def test_animate_renders_a_captioned_take(lane, speech, tmp_path):
    video, blend = tmp_path / "take.mp4", tmp_path / "take.blend"
    run = lane.blender(
        [
            "-b",
            "-c",
            "dualface",
            "animate",
            "--add-head",
            "--empty-scene",
            "--audio",
            str(speech),
            "--captions",
            "--render",
            str(video),
            "--resolution",
            "160x120",
            "--save",
            str(blend),
            "--python",
            lane.python,
        ],
        timeout=240,
    )
    assert run.returncode == 0, run.output[-4000:]
    assert not heavy_imports(run), heavy_imports(run)
    assert blend.is_file() and blend.stat().st_size > 0
    info = probe(video)
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert (streams["video"]["width"], streams["video"]["height"]) == (160, 120)
    assert "audio" in streams, "the render must carry the voice"
    assert float(info["format"]["duration"]) == pytest.approx(7.675, abs=0.5)


def test_batch_runs_every_job_and_fails_alone(lane, speech, tmp_path):
    jobs = {
        "defaults": {"add_head": True},
        "jobs": [
            {"audio": str(speech), "emotion": "happy", "save": str(tmp_path / "happy.blend")},
            {"audio": str(tmp_path / "missing.wav"), "save": str(tmp_path / "missing.blend")},
            {"audio": str(speech), "emotion": "sad", "intensity": 0.5, "save": str(tmp_path / "sad.blend")},
        ],
    }
    batch = tmp_path / "jobs.json"
    batch.write_text(json.dumps(jobs))
    run = lane.blender(
        ["-b", "-c", "dualface", "animate", "--empty-scene", "--batch", str(batch), "--python", lane.python],
        timeout=240,
    )
    assert run.returncode == 1, run.output[-4000:]  # one bad job: the batch reports a failure
    assert (tmp_path / "happy.blend").is_file() and (tmp_path / "sad.blend").is_file(), run.output[-4000:]
    assert not (tmp_path / "missing.blend").exists()
    assert "missing.wav" in run.output
    assert not heavy_imports(run), heavy_imports(run)


def test_bad_request_exits_2_and_writes_nothing(lane, tmp_path):
    run = lane.blender(
        ["-b", "-c", "dualface", "animate", "--add-head", "--audio", str(tmp_path / "none.wav")], timeout=60
    )
    assert run.returncode == 2, run.output[-4000:]
    assert "none.wav" in run.output
    assert list(tmp_path.iterdir()) == []


def test_animate_in_blender_with_the_numpy_runtime(lane, speech, tmp_path):
    """No External Python: the engine runs inside Blender on its own numpy, torch unimportable."""
    blend = tmp_path / "in_process.blend"
    run = lane.blender(
        ["-b", "-c", "dualface", "animate", "--add-head", "--empty-scene", "--audio", str(speech),
         "--captions", "--save", str(blend)],
        timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-4000:]
    assert blend.is_file() and blend.stat().st_size > 0
    assert not heavy_imports(run), heavy_imports(run)
    # The take records which engine made it.
    read = lane.blender(
        ["-b", str(blend), "--python-exit-code", "1", "--python-expr", READ_BACKEND], timeout=60
    )
    assert read.report.get("backends") == ["numpy"], read.output[-2000:]


READ_BACKEND = """
import json, os, bpy
metas = [json.loads(a["dualface"]) for a in bpy.data.actions if "dualface" in a.keys()]
backends = sorted({m.get("engine", m).get("backend", "") for m in metas if isinstance(m, dict)})
open(os.environ["DUALFACE_REPORT"], "w").write(json.dumps({"backends": backends}))
"""
