"""Train a DualFace model on a dataset folder.

    python -m engine.train --data DIR --config configs/default.json --out runs/NAME
    python -m engine.train --data DIR --config configs/finetune_captions.json --out runs/NAME \
        --init runs/default/best.safetensors --max-minutes 30
    torchrun --nproc_per_node 2 -m engine.train --data DIR --config FILE --out runs/NAME

See docs/training.md for configs, ablations and the time-budget mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from engine.training.config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine.train", description=__doc__.split("\n")[1])
    parser.add_argument(
        "--data", required=True, type=Path, help="dataset folder (python -m engine.data.synth)"
    )
    parser.add_argument("--config", required=True, type=Path, help="training config JSON (configs/*.json)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument(
        "--init",
        type=Path,
        help="fine-tune this checkpoint (.safetensors): its architecture and weights, a fresh optimizer "
        "and schedules; the config may change only loss weights, dropout and sampling_passes",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same data and epochs -> same losses")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--max-minutes", type=float, help="time budget; the schedules follow the budget")
    parser.add_argument(
        "--max-steps",
        type=int,
        help="budget in optimizer steps instead (repeats another machine's run step for step)",
    )
    parser.add_argument(
        "--stop-after", type=int, help="end this session after N epochs (continue with --resume)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one config field for this run, VALUE as JSON (repeatable): --set dual_task=false "
        '--set train_split="train-without-espeak"; a bare word is taken as a string',
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads per process")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return parser


def with_overrides(config: TrainConfig, assignments: list[str]) -> TrainConfig:
    """The config with `KEY=VALUE` fields replaced, so an ablation or a fold needs no config file of its own."""
    data = asdict(config)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {assignment!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word: a split name, a schedule name
        if key not in data:
            raise ValueError(f"--set {key}: no such config field; valid: {', '.join(sorted(data))}")
        data[key] = value
    return TrainConfig.from_dict(data)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.init is not None and args.resume:
        parser.error("--init starts a new run from a checkpoint and --resume continues one; use only one")
    try:
        config = with_overrides(TrainConfig.load(args.config), args.set)
        out = args.out if args.out is not None else Path("runs") / config.name
        from engine.training.loop import train

        result = train(
            args.data,
            config,
            out,
            resume=args.resume,
            seed=args.seed,
            device=args.device,
            max_minutes=args.max_minutes,
            threads=args.threads,
            stop_after=args.stop_after,
            progress=not args.no_progress,
            init=args.init,
            max_steps=args.max_steps,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    epochs = result["epochs"]
    if os.environ.get("RANK", "0") != "0":
        return 0  # rank 0 speaks for the run
    if epochs:
        print(f"done: {len(epochs)} epoch(s) this session, run folder {result['out']}")
    else:
        print(f"nothing to do: the run in {result['out']} has already finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
