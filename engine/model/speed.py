"""How fast the model decodes on this CPU: `python -m engine.model.speed [--batch 8] [--threads 1]`.

Reports the cost of one incremental step for a batch of clips (the inference engine decodes long
recordings as a batch of overlapping chunks), the audio encoder over 60 s, and what 60 s of speech
at 30 fps would take when split into `--batch` chunks. Timings are the best of several repeats, so
a busy machine inflates them less.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

import torch

from engine.model.config import ModelConfig
from engine.model.dualface import DualFace


def best_time(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Seconds per call, best of `repeats` runs of `calls` calls."""
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def measure(
    model: DualFace,
    batch: int = 8,
    seconds: float = 60.0,
    fps: float = 30.0,
    overlap: int = 30,
    calls: int = 50,
) -> dict[str, float]:
    """Per-step and per-clip timings (seconds) of `model` in eval mode."""
    cfg = model.cfg
    model.eval()
    n_frames = math.ceil(seconds * fps)
    chunk = math.ceil(n_frames / batch) + overlap
    with torch.no_grad():
        feat = torch.randn(batch, chunk, cfg.d_model)
        cond = torch.zeros(batch, chunk, cfg.n_emotions)
        style = torch.zeros(batch, cfg.style_dim)
        state = model.start(feat, cond, style)
        warm = min(chunk - 1, cfg.decoder_window + 5)  # time steps with full caches
        for _ in range(warm):
            model.step(state)

        def one_step() -> None:
            state.decoder.t = warm  # keep decoding inside the clip; caches stay full
            model.step(state)

        step = best_time(one_step, calls=calls)
        mel = torch.rand(1, int(seconds * 100) + 1, cfg.n_mels)
        encode = best_time(lambda: model.encode_audio(mel, fps, n_frames), calls=1, repeats=3)
    return {
        "batch": batch,
        "step_s": step,
        "chunk_frames": chunk,
        "audio_encoder_s": encode,
        "projected_clip_s": encode + chunk * step,
        "clip_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="clips (chunks) decoded together")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the projected recording")
    parser.add_argument(
        "--weights", default=None, help="checkpoint to time (default: an untrained default model)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.weights:
        from engine.weights import load_checkpoint

        model = load_checkpoint(args.weights)
    else:
        torch.manual_seed(0)
        model = DualFace(ModelConfig())
    result = measure(model, batch=args.batch, seconds=args.seconds)
    result.update(threads=args.threads, parameters=model.n_parameters())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
