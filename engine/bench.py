"""Inference speed, measured: `python -m engine.bench [--weights W] [--threads N] [--device D]`.

For 5, 15, 30, 60 and 300 s clips of speech (espeak-ng sentences when it is installed, else noise
bursts with a syllable rhythm) it reports wall time, real-time factor and peak memory of
`Engine.animate`, the streaming latency, and the same model decoded FaceFormer-style (the whole
prefix recomputed for every frame, `DualFace.generate_full_prefix`) on the 5 and 15 s clips -- run,
not extrapolated. Speed does not depend on the weights' values, so without a checkpoint the default
architecture with random weights is measured (and the report says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "Peter Piper picked a peck of pickled peppers before breakfast.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "We will meet at noon by the old bridge, unless it rains again tomorrow.",
    "Every morning the baker opens the shop and the smell of bread fills the street.",
    "Thank you for your patience; your call is important to us.",
)


def speech_audio(seconds: float, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """About `seconds` of speech-like audio at `sample_rate`, exactly that long."""
    n = int(round(seconds * sample_rate))
    pieces: list[np.ndarray] = []
    rng = np.random.default_rng(seed)
    espeak = shutil.which("espeak-ng")
    if espeak is not None:
        from engine.audio.io import load_audio

        with tempfile.TemporaryDirectory() as folder:
            voiced = []
            for i, text in enumerate(SENTENCES):
                path = Path(folder) / f"{i}.wav"
                speed = str(int(rng.integers(140, 190)))
                result = subprocess.run(
                    [espeak, "-v", "en-us", "-s", speed, "-w", str(path), text],
                    capture_output=True,
                    timeout=60,
                )
                if result.returncode == 0 and path.exists():
                    voiced.append(load_audio(path, target_sr=sample_rate))
        total = 0
        while voiced and total < n:
            clip = voiced[int(rng.integers(len(voiced)))]
            pause = np.zeros(int(rng.uniform(0.1, 0.6) * sample_rate), dtype=np.float32)
            pieces += [clip, pause]
            total += len(clip) + len(pause)
    if not pieces:
        t = np.arange(n) / sample_rate
        envelope = np.clip(np.sin(2 * np.pi * 3.3 * t) * np.sin(2 * np.pi * 0.31 * t + 0.5), 0, None)
        return (0.3 * envelope * rng.standard_normal(n)).astype(np.float32)
    return np.concatenate(pieces)[:n].astype(np.float32)


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every 2 ms (torch allocations included)."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        self._base = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.rss() - self._base)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self.rss() - self._base)


def stream_latency(engine, audio: np.ndarray, piece_s: float = 0.02) -> dict:
    """Feed audio as a microphone would (20 ms pieces) as fast as possible; latency per frame is the
    audio it waited for plus the compute of the push that returned it."""
    stream = engine.stream()
    piece = int(piece_s * 16000)
    started = time.perf_counter()
    frames = 0
    for i in range(0, len(audio), piece):
        frames += len(stream.push(audio[i : i + piece]))
    frames += len(stream.flush())
    wall = time.perf_counter() - started
    latency = np.array(stream.latencies)
    return {
        "audio_s": len(audio) / 16000,
        "frames": frames,
        "real_time_factor": wall / (len(audio) / 16000),
        "first_frame_latency_ms": float(latency[0] * 1000),
        "latency_median_ms": float(np.median(latency) * 1000),
        "latency_p95_ms": float(np.percentile(latency, 95) * 1000),
        "latency_max_ms": float(latency.max() * 1000),
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    from engine.api import Engine

    torch.set_num_threads(args.threads)
    weights_note = args.weights or "shipped"
    try:
        engine = Engine(weights=args.weights, device=args.device, threads=args.threads)
    except Exception as error:  # noqa: BLE001 - speed does not depend on weight values
        if args.weights:
            raise
        from engine.model.config import ModelConfig
        from engine.model.dualface import DualFace

        weights_note = f"random weights, default ModelConfig (shipped weights unavailable: {error})"
        engine = Engine(device=args.device, threads=args.threads, model=DualFace(ModelConfig()))
    model: Any = engine.model  # a DualFace
    report: dict = {
        "load_average_1min": os.getloadavg()[0],
        "weights": weights_note,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "device": str(engine.device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "clips": [],
    }
    engine.animate(speech_audio(2.0), sample_rate=16000)  # warm-up: imports, lexicon, allocator
    times: dict[float, float] = {}
    for seconds in args.durations:
        audio = speech_audio(seconds, seed=int(seconds))
        runs, cpu = [], []
        with PeakMemory() as memory:
            for _ in range(args.repeats if seconds <= 60 else 1):
                started, started_cpu = time.perf_counter(), time.process_time()
                take = engine.animate(audio, sample_rate=16000)
                runs.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
        wall = float(np.median(runs))
        times[seconds] = wall
        row = {
            "audio_s": seconds,
            "frames": take.n_frames,
            "wall_s": round(wall, 3),
            "cpu_s": round(float(np.median(cpu)), 3),  # less sensitive than wall time to a busy machine
            "real_time_factor": round(wall / seconds, 4),
            "peak_memory_mb": round(memory.peak_bytes / 2**20, 1),
            "captions": len(take.captions),
        }
        if seconds in args.baseline:
            from engine.audio.features import log_mel

            mel = torch.from_numpy(log_mel(audio))[None].to(engine.device, engine.dtype)
            n = take.n_frames
            cond = torch.zeros(1, n, model.cfg.n_emotions, device=engine.device, dtype=engine.dtype)
            cond[..., 0] = 1.0
            style = torch.from_numpy(np.array([1.0, 0.5, 1.0, 0.01, 0.0], dtype=np.float32))[None]
            started, started_cpu = time.perf_counter(), time.process_time()
            model.generate_full_prefix(mel, 30.0, cond, style.to(engine.device, engine.dtype))
            full = time.perf_counter() - started
            row["full_prefix_cpu_s"] = round(time.process_time() - started_cpu, 3)
            row["full_prefix_wall_s"] = round(full, 3)
            row["full_prefix_over_engine"] = round(full / wall, 1)
        report["clips"].append(row)
        print(json.dumps(row), flush=True)
    if 60 in times and 300 in times:
        report["time_300_over_60"] = round(times[300] / times[60], 2)
    report["load_average_1min_after"] = os.getloadavg()[0]
    report["stream"] = stream_latency(engine, speech_audio(args.stream_seconds, seed=99))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="checkpoint (default: shipped weights, else a random model)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2, the target machine)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--durations", default="5,15,30,60,300", help="clip lengths in seconds")
    parser.add_argument("--baseline", default="5,15", help="clip lengths also decoded FaceFormer-style")
    parser.add_argument("--repeats", type=int, default=3, help="runs per clip up to 60 s (median reported)")
    parser.add_argument("--stream-seconds", type=float, default=15.0, help="audio fed to the streaming test")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    args.durations = [float(x) for x in args.durations.split(",") if x]
    args.baseline = {float(x) for x in args.baseline.split(",") if x}
    report = run(args)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
