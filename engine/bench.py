"""Inference speed and agreement, measured in one run: `python -m engine.bench [options]`.

Sections, in order (each prints a JSON line as it finishes; a summary and README rows at the end):
agreement of the numpy and torch backends on a 60 s take, start-up (import + weights), the whole
`python -m engine animate` process for 60 s (and an hour) against `import torch` alone (and Rhubarb
Lip Sync's phonetic mode when a `rhubarb` executable is on PATH), in-process takes per backend, a
FaceFormer-faithful decoder (engine.faceformer_baseline) at 5/15/30 s, the engine's own decode with
and without chunk batching, DualFace decoded naively (the whole prefix re-encoded per frame; only
under that name), streaming latency, and the GPU row (unmeasured without `--device cuda`).
Test audio is espeak-ng speech when installed, else noise bursts with a syllable rhythm.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

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
    """Peak resident memory above the level at entry, sampled every 2 ms (torch allocations included).

    `sampler_cpu_s` is the sampling thread's own CPU time, which CPU figures subtract."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.sampler_cpu_s = 0.0
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
        self.sampler_cpu_s = time.thread_time()

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


AGREEMENT_VERTEX_MM = 0.1  # issue #15: largest vertex difference, numpy vs torch, 60 s take
AGREEMENT_ARKIT = 1e-3
STARTUP_LIMIT_S = 0.3
RSS_LIMIT_MB = 150.0
RSS_FLAT_RATIO = 1.2


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def timed_takes(engine, audio: np.ndarray, repeats: int) -> dict:
    """Median wall time, mean CPU time (the memory sampler's own CPU excluded) and peak memory."""
    walls = []
    with PeakMemory() as memory:
        cpu_started = time.process_time()
        for _ in range(repeats):
            started = time.perf_counter()
            take = engine.animate(audio, sample_rate=16000)
            walls.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu_started
    cpu -= memory.sampler_cpu_s
    return {
        "frames": take.n_frames,
        "wall_s": round(median(walls), 3),
        "cpu_s": round(cpu / repeats, 3),
        "peak_memory_mb": round(memory.peak_bytes / 2**20, 1),
        "captions": len(take.captions),
    }


def agreement(weights: str | None, seconds: float) -> dict:
    """The two backends on one autoregressive take with the same weights."""
    from engine.api import Engine

    audio = speech_audio(seconds, seed=60)
    numpy_take = Engine(weights=weights, backend="numpy").animate(audio, sample_rate=16000)
    torch_take = Engine(weights=weights, backend="torch", device="cpu").animate(audio, sample_rate=16000)
    vertex_mm = float(np.abs(numpy_take.offsets - torch_take.offsets).max()) * 1000.0
    arkit = float(np.abs(numpy_take.arkit - torch_take.arkit).max())
    return {
        "audio_s": seconds,
        "frames": numpy_take.n_frames,
        "max_vertex_diff_mm": round(vertex_mm, 6),
        "max_arkit_diff": float(f"{arkit:.3g}"),
        "motion_range_mm": round(float(np.abs(torch_take.offsets).max()) * 1000.0, 3),
        "same_lip_phones": [p.phone for p in numpy_take.lip_phonemes]
        == [p.phone for p in torch_take.lip_phonemes],
        "pass": vertex_mm <= AGREEMENT_VERTEX_MM and arkit <= AGREEMENT_ARKIT,
    }


STARTUP_SCRIPT = """
import json, sys, time
started = time.perf_counter()
from engine.api import Engine
imported = time.perf_counter()
engine = Engine(weights={weights!r}, backend="numpy")
loaded = time.perf_counter()
print(json.dumps({{"import_s": imported - started, "weights_s": loaded - imported,
                  "torch_imported": "torch" in sys.modules}}))
"""


def startup(weights: str | None, repeats: int) -> dict:
    """`import engine.api` + `Engine(backend="numpy")` in fresh processes (median of `repeats`)."""
    runs = []
    for _ in range(repeats):
        result = subprocess.run(
            [sys.executable, "-c", STARTUP_SCRIPT.format(weights=weights)],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        if result.returncode != 0:
            return {"error": result.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    total = median([r["import_s"] + r["weights_s"] for r in runs])
    return {
        "import_s": round(median([r["import_s"] for r in runs]), 3),
        "weights_s": round(median([r["weights_s"] for r in runs]), 3),
        "startup_s": round(total, 3),
        "torch_imported": any(r["torch_imported"] for r in runs),
        "pass": total <= STARTUP_LIMIT_S,
    }


# Runs the measured command as its own child and reports that child's usage. Measuring from this
# (large) process instead would be wrong: a child's ru_maxrss starts at its parent's resident size
# when it was forked, so every command would seem to use at least what the bench holds.
LAUNCHER = """
import json, os, subprocess, sys, time
with open(os.devnull, "wb") as quiet:
    started = time.perf_counter()
    child = subprocess.Popen(sys.argv[1:], stdout=quiet, stderr=sys.stderr)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024.0, "code": os.waitstatus_to_exitcode(status)}))
"""


def run_process(command: list[str]) -> dict:
    """Wall time, CPU time and peak RSS of one process running `command` (measured by a small launcher)."""
    result = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    usage = json.loads(result.stdout.strip().splitlines()[-1])
    row: dict[str, Any] = {
        k: round(usage[k], 3 if k != "peak_rss_mb" else 1) for k in ("wall_s", "cpu_s", "peak_rss_mb")
    }
    if usage["code"] != 0:
        row["error"] = result.stderr.strip().splitlines()[-1:]
    return row


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """16-bit PCM WAV with the standard library (what a user's recording usually is)."""
    import wave

    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return path


def whole_process(weights: str | None, durations: list[float], repeats: int, long_seconds: float) -> dict:
    """`python -m engine animate` on CPU as a whole process, against `import torch` and Rhubarb."""
    rows: dict = {"cli": []}
    with tempfile.TemporaryDirectory() as folder:
        for seconds in durations + ([long_seconds] if long_seconds else []):
            wav = write_wav(Path(folder) / f"speech_{int(seconds)}.wav", speech_audio(seconds, seed=7))
            command = [
                sys.executable,
                "-m",
                "engine",
                "animate",
                str(wav),
                "-o",
                str(wav.with_suffix(".npz")),
                "-q",
            ]
            runs = [run_process(command) for _ in range(repeats if seconds <= 60 else 1)]
            best = min(runs, key=lambda r: r["wall_s"])
            row = {"audio_s": seconds, **best, "wall_median_s": round(median([r["wall_s"] for r in runs]), 3)}
            rows["cli"].append(row)
            print(json.dumps({"cli": row}), flush=True)
            rhubarb = shutil.which("rhubarb")
            if rhubarb is not None and seconds == 60:
                rows["rhubarb_phonetic_60s"] = run_process([rhubarb, "-r", "phonetic", "--quiet", str(wav)])
        torch_runs = [run_process([sys.executable, "-c", "import torch"]) for _ in range(repeats)]
    rows["import_torch"] = min(torch_runs, key=lambda r: r["wall_s"])
    sixty = next((r for r in rows["cli"] if r["audio_s"] == 60), None)
    if sixty is not None:
        reference = rows.get("rhubarb_phonetic_60s", rows["import_torch"])
        rows["reference"] = "rhubarb phonetic" if "rhubarb_phonetic_60s" in rows else "import torch alone"
        rows["cli_60s_over_reference"] = round(sixty["wall_s"] / reference["wall_s"], 2)
        rows["pass_speed"] = sixty["wall_s"] < reference["wall_s"]
        rows["pass_rss_60s"] = sixty["peak_rss_mb"] <= RSS_LIMIT_MB
        long_row = next((r for r in rows["cli"] if r["audio_s"] == long_seconds), None)
        if long_seconds and long_row is not None:  # a take over engine.api.LONG_TAKE_SECONDS streams
            rows["rss_long_over_60s"] = round(long_row["peak_rss_mb"] / sixty["peak_rss_mb"], 2)
            rows["pass_rss_flat"] = rows["rss_long_over_60s"] <= RSS_FLAT_RATIO
            rss = {"60s_mb": sixty["peak_rss_mb"], f"{long_seconds:.0f}s_mb": long_row["peak_rss_mb"]}
            print(json.dumps({"rss": {**rss, "ratio": rows["rss_long_over_60s"]}}), flush=True)
    return rows


def in_process(engines: dict, durations: list[float], repeats: int) -> list[dict]:
    """`Engine.animate` per backend, in one process (models loaded and warm)."""
    rows = []
    for seconds in durations:
        audio = speech_audio(seconds, seed=int(seconds))
        for name, engine in engines.items():
            row = {
                "backend": name,
                "audio_s": seconds,
                **timed_takes(engine, audio, repeats if seconds <= 60 else 1),
            }
            row["real_time_factor"] = round(row["wall_s"] / seconds, 4)
            rows.append(row)
            print(json.dumps({"in_process": row}), flush=True)
    return rows


def faceformer(engines: dict, durations: list[float], widths: list[int], repeats: int) -> list[dict]:
    """FaceFormer-faithful decoding (no cache, prefix re-attended) against the engine's whole take."""
    import torch

    from engine.faceformer_baseline import MAX_SEQ_LEN, FaceFormerDecoder

    rows = []
    for seconds in durations:
        audio = speech_audio(seconds, seed=int(seconds))
        frames = int(np.ceil(seconds * 30))
        row: dict = {"audio_s": seconds, "frames": frames, "over_faceformer_limit": frames > MAX_SEQ_LEN}
        for name, engine in engines.items():
            row[f"engine_{name}_s"] = timed_takes(engine, audio, repeats)["wall_s"]
        features = torch.randn(1, frames, 128)  # decoder cost does not depend on the values
        speaker = torch.zeros(1, 8)
        speaker[0, 0] = 1.0
        for width in widths:
            torch.manual_seed(0)
            model = FaceFormerDecoder(468, 128, width=width, max_len=max(MAX_SEQ_LEN, frames)).eval()
            started = time.perf_counter()
            model.predict(features, speaker)
            wall = time.perf_counter() - started
            row[f"faceformer_{width}_s"] = round(wall, 3)
            for name in engines:
                row[f"faceformer_{width}_over_{name}"] = round(wall / row[f"engine_{name}_s"], 1)
        rows.append(row)
        print(json.dumps({"faceformer": row}), flush=True)
    return rows


def decode_modes(
    weights: str | None, backends: list[str], durations: list[float], repeats: int
) -> list[dict]:
    """What chunk batching buys over the engine's own incremental (cached) decode of one long chunk."""
    from engine.api import Engine
    from engine.inference.chunking import DecodePlan

    rows = []
    one_chunk = DecodePlan(chunk_frames=10**9)
    for backend in backends:
        cached = Engine(weights=weights, backend=backend, device="cpu", plan=one_chunk)
        batched = Engine(weights=weights, backend=backend, device="cpu")
        for seconds in durations:
            audio = speech_audio(seconds, seed=int(seconds))
            row: dict[str, Any] = {"backend": backend, "audio_s": seconds}
            row["cache_only_s"] = timed_takes(cached, audio, repeats)["wall_s"]
            row["chunk_batched_s"] = timed_takes(batched, audio, repeats)["wall_s"]
            row["chunk_batching_speedup"] = round(row["cache_only_s"] / row["chunk_batched_s"], 2)
            rows.append(row)
            print(json.dumps({"decode_modes": row}), flush=True)
    return rows


def naive_dualface(engine, durations: list[float]) -> list[dict]:
    """DualFace's own network decoded naively (`generate_full_prefix`), against its torch engine."""
    import torch

    from engine.audio.features import log_mel

    model: Any = engine.model
    rows = []
    for seconds in durations:
        audio = speech_audio(seconds, seed=int(seconds))
        engine_s = timed_takes(engine, audio, 1)["wall_s"]
        mel = torch.from_numpy(log_mel(audio))[None]
        n = int(np.ceil(seconds * 30))
        cond = torch.zeros(1, n, model.cfg.n_emotions)
        cond[..., 0] = 1.0
        style = torch.tensor([[1.0, 0.5, 1.0, 0.01, 0.0]])
        started = time.perf_counter()
        model.generate_full_prefix(mel, 30.0, cond, style)
        wall = time.perf_counter() - started
        row = {"audio_s": seconds, "naive_dualface_s": round(wall, 3), "engine_torch_s": engine_s}
        row["naive_dualface_over_engine_torch"] = round(wall / engine_s, 1)
        rows.append(row)
        print(json.dumps({"naive_dualface": row}), flush=True)
    return rows


def gpu_row(args: argparse.Namespace) -> dict:
    """fp32, fp16 and a batch of 64 clips on CUDA; 'unmeasured' without a CUDA device."""
    if not str(args.device).startswith("cuda"):
        return {"status": "unmeasured (no CUDA device in this run; pass --device cuda on a GPU machine)"}
    import torch

    from engine.api import Engine

    audio = speech_audio(60, seed=60)
    row: dict = {
        "device": args.device,
        "name": torch.cuda.get_device_name(args.device),
        "date": time.strftime("%Y-%m-%d"),
    }
    for precision in ("float32", "float16"):
        engine = Engine(weights=args.weights, backend="torch", device=args.device, precision=precision)
        engine.animate(audio[:32000], sample_rate=16000)
        row[precision] = timed_takes(engine, audio, args.repeats)
    auto = Engine(weights=args.weights, backend="torch", device=args.device)
    row["auto_precision"] = auto.precision
    batch = [{"audio": speech_audio(15, seed=i), "sample_rate": 16000} for i in range(64)]
    started = time.perf_counter()
    auto.animate_batch(batch)
    row["batch_64x15s_wall_s"] = round(time.perf_counter() - started, 3)
    row["stream"] = stream_latency(auto, speech_audio(15, seed=99))
    return row


def run(args: argparse.Namespace) -> dict:
    """Every section in order; see the module docstring."""
    from engine.api import Engine

    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "weights": args.weights or "shipped",
    }
    report["agreement"] = agreement(args.weights, args.agreement_seconds)
    print(json.dumps({"agreement": report["agreement"]}), flush=True)
    report["startup"] = startup(args.weights, args.repeats)
    print(json.dumps({"startup": report["startup"]}), flush=True)
    report["whole_process"] = whole_process(args.weights, args.cli_durations, args.repeats, args.long_seconds)
    engines = {
        "numpy": Engine(weights=args.weights, backend="numpy"),
        "torch": Engine(weights=args.weights, backend="torch", device="cpu", threads=args.threads),
    }
    for engine in engines.values():
        engine.animate(speech_audio(2.0), sample_rate=16000)  # warm-up: imports, lexicon, allocator
    report["in_process"] = in_process(engines, args.durations, args.repeats)
    report["faceformer"] = faceformer(engines, args.faceformer, args.widths, args.repeats)
    report["decode_modes"] = decode_modes(args.weights, list(engines), args.decode_durations, args.repeats)
    report["naive_dualface"] = naive_dualface(engines["torch"], args.naive)
    report["stream_torch"] = stream_latency(engines["torch"], speech_audio(args.stream_seconds, seed=99))
    report["gpu"] = gpu_row(args)
    report["load_average_1min_after"] = os.getloadavg()[0]
    report["readme_rows"] = readme_rows(report)
    return report


def readme_rows(report: dict) -> list[str]:
    """The README's benchmark table, generated from this run (never typed)."""
    lines = ["| What (CPU, this run) | Measured | Target |", "|---|---|---|"]
    agree = report["agreement"]
    lines.append(
        f"| numpy vs torch, {agree['audio_s']:.0f} s take | max vertex diff {agree['max_vertex_diff_mm']:.2g} mm, "
        f"ARKit {agree['max_arkit_diff']:.2g} | <= 0.1 mm, <= 1e-3 |"
    )
    start = report["startup"]
    if "startup_s" in start:
        lines.append(f"| Start-up (import + weights, numpy) | {start['startup_s']:.2f} s | <= 0.3 s |")
    whole = report["whole_process"]
    for row in whole["cli"]:
        target = (
            f"< {whole.get('reference', 'reference')}; <= 150 MB"
            if row["audio_s"] == 60
            else "RSS <= 1.2x the 60 s run"
        )
        lines.append(
            f"| `python -m engine animate`, {row['audio_s']:.0f} s audio (whole process) | {row['wall_s']:.2f} s "
            f"({row['cpu_s']:.2f} s CPU), {row['peak_rss_mb']:.0f} MB peak RSS | {target} |"
        )
    if "rss_long_over_60s" in whole:
        sixty = next(r for r in whole["cli"] if r["audio_s"] == 60)
        longest = max(whole["cli"], key=lambda r: r["audio_s"])
        lines.append(
            f"| Peak RSS, whole process, 60 s / {longest['audio_s']:.0f} s | {sixty['peak_rss_mb']:.0f} MB / "
            f"{longest['peak_rss_mb']:.0f} MB ({whole['rss_long_over_60s']:.2f}x) | "
            f"<= {RSS_LIMIT_MB:.0f} MB; <= {RSS_FLAT_RATIO}x |"
        )
    torch_row = whole["import_torch"]
    lines.append(
        f"| `import torch` alone | {torch_row['wall_s']:.2f} s ({torch_row['cpu_s']:.2f} s CPU), "
        f"{torch_row['peak_rss_mb']:.0f} MB | - |"
    )
    for row in report["in_process"]:
        lines.append(
            f"| `Engine.animate` ({row['backend']}), {row['audio_s']:.0f} s | {row['wall_s']:.2f} s "
            f"(RTF {row['real_time_factor']:.3f}) | - |"
        )
    for row in report["faceformer"]:
        cells = ", ".join(
            f"width {w}: {row[f'faceformer_{w}_s']:.2f} s = {row[f'faceformer_{w}_over_numpy']:.1f}x"
            for w in (64, 128)
            if f"faceformer_{w}_s" in row
        )
        limit = " (over its 600-frame limit)" if row["over_faceformer_limit"] else ""
        lines.append(
            f"| FaceFormer-faithful decoder, {row['audio_s']:.0f} s{limit} | {cells} the engine | - |"
        )
    for row in report["decode_modes"]:
        lines.append(
            f"| Engine decode ({row['backend']}), {row['audio_s']:.0f} s: cache only / chunk-batched | "
            f"{row['cache_only_s']:.2f} s / {row['chunk_batched_s']:.2f} s ({row['chunk_batching_speedup']:.1f}x) | - |"
        )
    for row in report["naive_dualface"]:
        lines.append(
            f"| Naive DualFace (prefix re-encoded per frame), {row['audio_s']:.0f} s | "
            f"{row['naive_dualface_s']:.2f} s = {row['naive_dualface_over_engine_torch']:.1f}x the torch engine | - |"
        )
    gpu = report["gpu"]
    if "status" in gpu:
        lines.append(f"| GPU | {gpu['status']} | - |")
        return lines
    where = f"{gpu.get('name', gpu['device'])}, {gpu['date']}"
    lines.append(
        f"| `Engine.animate` (torch, {where}), 60 s: fp32 / fp16 | {gpu['float32']['wall_s']:.3f} s / "
        f"{gpu['float16']['wall_s']:.3f} s | - |"
    )
    lines.append(
        f"| `Engine.animate_batch`, 64 clips of 15 s ({where}) | {gpu['batch_64x15s_wall_s']:.2f} s | - |"
    )
    stream = gpu["stream"]
    lines.append(
        f"| Streaming, 20 ms pieces ({where}): latency median / p95 | {stream['latency_median_ms']:.0f} ms / "
        f"{stream['latency_p95_ms']:.0f} ms | - |"
    )
    return lines


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--weights", help="checkpoint (default: the shipped weights)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--device", default="cpu", help="cuda or cuda:N adds the GPU row (default cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement up to 60 s (median)")
    parser.add_argument("--agreement-seconds", type=float, default=60.0)
    parser.add_argument("--cli-durations", type=floats, default=[60.0], help="whole-process CLI clip lengths")
    parser.add_argument("--long-seconds", type=float, default=3600.0, help="the flat-memory run (0 = skip)")
    parser.add_argument("--durations", type=floats, default=[5.0, 15.0, 30.0, 60.0, 300.0])
    parser.add_argument("--faceformer", type=floats, default=[5.0, 15.0, 30.0])
    parser.add_argument("--widths", type=lambda t: [int(x) for x in floats(t)], default=[64, 128])
    parser.add_argument("--decode-durations", type=floats, default=[30.0, 60.0])
    parser.add_argument("--naive", type=floats, default=[5.0, 15.0], help="naive DualFace clip lengths")
    parser.add_argument("--stream-seconds", type=float, default=15.0, help="audio fed to the streaming test")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=1)
    print(text)
    print("\n".join(report["readme_rows"]))
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
