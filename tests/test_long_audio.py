"""Ten minutes of speech: seamless chunk borders, memory that does not grow with the clip, linear time.

Runs in a fresh interpreter so its memory peak is its own; times are CPU seconds (one torch thread),
so other jobs on the machine cannot fake a non-linear cost. The model is small and random (speed and
memory do not depend on the weights' values); its output head is randomised so the motion is real.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from engine.api import Engine
from engine.bench import PeakMemory, speech_audio
from engine.inference.chunking import plan_chunks
from engine.model.config import ModelConfig
from engine.model.dualface import DualFace

torch.manual_seed(0)
cfg = ModelConfig(n_vertices=40, audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16,
                  mesh_heads=2, d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)
model = DualFace(cfg)
torch.nn.init.normal_(model.decoder.offset_head.weight, std=0.02)
engine = Engine(model=model, device="cpu", threads=1)
minute = speech_audio(60.0, seed=1)
audio = np.concatenate([speech_audio(60.0, seed=s) for s in range(10)])
engine.animate(minute[:16000], sample_rate=16000)  # warm-up
started = time.process_time()
with PeakMemory() as short_memory:
    engine.animate(minute, sample_rate=16000)
short_time = time.process_time() - started
started = time.process_time()
with PeakMemory() as long_memory:
    take = engine.animate(audio, sample_rate=16000)
long_time = time.process_time() - started
plan = engine.plan
chunks = plan_chunks(take.n_frames, plan.chunk_frames, plan.warmup_frames, plan.fade_frames)
speed = np.linalg.norm(np.diff(take.offsets.reshape(take.n_frames, -1), axis=0), axis=1)
width = plan.fade_frames + 2  # the blend and one frame either side
starts = [c.own_start - 1 for c in chunks[1:]]
borders = [float(speed[s : s + width].max()) for s in starts]
near = set()
for s in starts:
    near.update(range(s - width, s + width))
elsewhere = [float(speed[s : s + width].max()) for s in range(0, len(speed) - width, 7) if s not in near]
json.dump({
    "frames": take.n_frames, "chunks": len(chunks), "short_time": short_time, "long_time": long_time,
    "short_peak": short_memory.peak_bytes, "long_peak": long_memory.peak_bytes,
    "output_bytes": take.offsets.nbytes + take.arkit.nbytes,
    "typical_speed": float(np.percentile(speed, 95)), "median_speed": float(np.median(speed)),
    "border_speeds": borders, "elsewhere_speeds": elsewhere, "finite": bool(np.isfinite(take.offsets).all()),
    "captions": len(take.captions), "last_caption_end": take.captions[-1].end if take.captions else 0,
}, sys.stdout)
"""


@pytest.mark.slow
def test_ten_minutes_of_speech():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads(result.stdout.strip().splitlines()[-1])
    assert r["frames"] == 18000 and r["finite"]
    assert r["chunks"] >= 100  # decoded as one parallel batch of chunks
    # no visible seams: the fastest frame-to-frame motion in a window across a chunk border is no
    # faster than in the same-size windows elsewhere, neither typically nor at worst
    border, elsewhere = np.array(r["border_speeds"]), np.array(r["elsewhere_speeds"])
    assert np.median(border) <= 1.1 * np.median(elsewhere), (np.median(border), np.median(elsewhere))
    assert np.percentile(border, 90) <= 1.1 * np.percentile(elsewhere, 90)
    assert border.max() <= elsewhere.max()
    assert r["median_speed"] > 0  # and there is motion to have seams in
    # bounded memory: 10x the audio costs about its output, never a quadratic term
    growth = r["long_peak"] - r["short_peak"]
    assert growth < 3 * r["output_bytes"] + 150 * 2**20, r
    # linear time: ten times the audio takes about ten times as long, not a hundred
    assert r["long_time"] < 15 * r["short_time"] + 2.0, r
    assert r["captions"] > 0 and r["last_caption_end"] > 500
