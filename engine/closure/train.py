"""Train the closure detector on a corpus: python -m engine.closure.train --data DIR --out FILE.npz

Labels come from the corpus's exact phone times: the phone of every 10 ms frame, in every language
(the closure probability is the share of p, b and m; engine.closure.detector). The voices
the detector will meet are not the corpus's, so each example is changed on the way in: the
spectrum is warped along the mel axis (vocal tracts shorter or longer, +-12 %), the tempo changes
(+-15 %, labels moved with it), the level drops into the noise floor, and bands are masked. With
`--view train-without-flite` and `--test unseen-flite` it trains on two TTS engines and reports on
the third, the protocol of engine.voice_eval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from engine.audio.features import FRAME_RATE
from engine.closure.features import INPUT_KINDS, detector_input
from engine.phonemes import BILABIALS, PHONES

CROP_FRAMES = 400  # 4 s of log-mel per example
BATCH = 16
BILABIAL_WEIGHT = 2.0  # a missed closure costs more than a spurious one


@dataclass
class Example:
    mel: np.ndarray  # [Tm, 80]
    labels: np.ndarray  # [Tm] index into PHONES of each frame's phone


def phone_labels(phones, n_frames: int) -> np.ndarray:
    """The PHONES index of the phone sounding at each 10 ms log-mel frame (frame i at i / FRAME_RATE s);
    silence where no phone is."""
    labels = np.zeros(n_frames, np.int64)  # PHONES[0] is silence
    for p in phones:
        first = int(np.ceil(p.start * FRAME_RATE - 1e-9))
        last = max(int(np.ceil(p.end * FRAME_RATE - 1e-9)), first + 1)
        labels[max(first, 0) : min(last, n_frames)] = PHONES.index(p.phone)
    return labels


def clip_mel(clip) -> np.ndarray:
    """The log-mel the engine computes for the clip's recording (level normalised as at inference)."""
    from engine.api import log_mel_windowed
    from engine.audio.io import load_audio
    from engine.audio.level import normalize_level

    return log_mel_windowed(normalize_level(load_audio(str(clip.audio_path))))


def load_examples(data: list[str], view: str) -> list[Example]:
    """Every clip with phone times in `view` of each corpus folder."""
    from engine.data.readers import open_dataset
    from engine.voice_eval import view_clips

    examples = []
    for folder in data:
        for clip in view_clips(open_dataset(folder), view):
            if clip.phones:
                mel = clip_mel(clip)
                examples.append(Example(mel, phone_labels(clip.phones, len(mel))))
    if not examples:
        raise ValueError(f"view {view!r} of {', '.join(data)} has no clips with phone times")
    return examples


def augment(
    example: Example, rng: np.random.Generator, changes: bool = True, input_kind: str = "normalised"
) -> tuple[np.ndarray, np.ndarray]:
    """(detector input, labels) of one randomly changed example (as it is, with `changes=False`),
    cropped to CROP_FRAMES."""
    mel, labels = example.mel, example.labels
    if not changes:
        return _crop(detector_input(mel, input_kind), labels, rng)
    n_bands = mel.shape[1]
    warp = rng.uniform(0.88, 1.12)  # band b takes the level of band b * warp
    mel = np.stack([np.interp(np.arange(n_bands) * warp, np.arange(n_bands), row) for row in mel])
    tempo = rng.uniform(0.85, 1.15)
    n_out = max(int(round(len(mel) / tempo)), 2)
    times = np.linspace(0, len(mel) - 1, n_out)
    mel = np.stack([np.interp(times, np.arange(len(mel)), mel[:, b]) for b in range(n_bands)], axis=1)
    labels = labels[np.clip(np.round(times).astype(int), 0, len(labels) - 1)]
    mel = np.maximum(mel - rng.uniform(0.0, 0.6), 0.0)  # quieter: more of it sinks to the floor
    for _ in range(2):
        width = int(rng.integers(1, 9))
        start = int(rng.integers(0, n_bands - width + 1))
        mel[:, start : start + width] = mel[:, start : start + width].mean()
    return _crop(detector_input(mel, input_kind), labels, rng)


def _crop(inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if len(inputs) > CROP_FRAMES:
        start = int(rng.integers(0, len(inputs) - CROP_FRAMES + 1))
        inputs, labels = inputs[start : start + CROP_FRAMES], labels[start : start + CROP_FRAMES]
    return inputs, labels


def train(
    examples: list[Example],
    minutes: float,
    seed: int,
    changes: bool = True,
    input_kind: str = "normalised",
    channels: int = 64,
    log=print,
    max_steps: int | None = None,
):
    import torch

    from engine.closure.network import ClosureNetwork

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = ClosureNetwork(channels)
    optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=1e-4)
    class_weight = torch.tensor([BILABIAL_WEIGHT if p in BILABIALS else 1.0 for p in PHONES])
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight, reduction="none")
    deadline = time.monotonic() + 60.0 * minutes
    step, running = 0, []
    while time.monotonic() < deadline and (max_steps is None or step < max_steps):
        batch = [
            augment(examples[int(rng.integers(len(examples)))], rng, changes, input_kind)
            for _ in range(BATCH)
        ]
        length = max(len(x) for x, _ in batch)
        inputs = np.zeros((BATCH, length, batch[0][0].shape[1]), np.float32)
        labels = np.zeros((BATCH, length), np.int64)
        mask = np.zeros((BATCH, length), np.float32)
        for i, (x, y) in enumerate(batch):
            inputs[i, : len(x)], labels[i, : len(y)], mask[i, : len(y)] = x, y, 1.0
        logits = network(torch.from_numpy(inputs))
        loss = (loss_fn(logits, torch.from_numpy(labels)) * torch.from_numpy(mask)).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running.append(float(loss.detach()))
        step += 1
        if step % 200 == 0:
            log(f"step {step} loss {np.mean(running):.4f}")
            running = []
    return network.eval(), step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.closure.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        help="corpus folder (python -m engine.data.synth); repeatable",
    )
    parser.add_argument("--view", default="train", help="split or view to train on")
    parser.add_argument(
        "--test", default="test_voices", help="split or view of the first corpus to report on"
    )
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument(
        "--max-steps", type=int, help="stop after this many steps (ablations on a busy machine)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels", type=int, default=64, help="convolution width")
    parser.add_argument("--no-changes", action="store_true", help="ablation: train on the clips as they are")
    parser.add_argument(
        "--input",
        choices=INPUT_KINDS,
        default="normalised",
        help="what the detector hears (engine.closure.features); raw: the ablation without normalisation",
    )
    args = parser.parse_args(argv)
    import torch

    from engine.closure.detector import ClosureDetector, save_detector
    from engine.closure.measure import measure_detector

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    examples = load_examples(args.data, args.view)
    print(f"{len(examples)} clips of {args.view} loaded in {time.monotonic() - started:.0f} s", flush=True)
    network, steps = train(
        examples,
        args.minutes,
        args.seed,
        not args.no_changes,
        args.input,
        args.channels,
        lambda m: print(m, flush=True),
        args.max_steps,
    )
    detector = ClosureDetector(network.numpy_weights(), {"input": args.input})
    report = measure_detector(detector, args.data[0], args.test)
    print(json.dumps(report, indent=1), flush=True)
    detector.info.update(
        data=[str(folder) for folder in args.data],
        view=args.view,
        seed=args.seed,
        minutes=args.minutes,
        steps=steps,
        channels=args.channels,
        changes=not args.no_changes,
        test=report,
    )
    save_detector(detector, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
