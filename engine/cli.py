"""Command line: `python -m engine animate ...` and `python -m engine serve --stdio`.

Every path and option is checked before the model loads, and results are written only after the
whole take succeeded (temporary files renamed into place), so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CAPTION_SUFFIXES = {"srt": ".srt", "vtt": ".vtt", "captions_json": ".json"}


class UsageError(ValueError):
    """A bad argument or path: reported before any work, exit code 2."""


@dataclass
class Job:
    audio: Path
    output: Path
    options: dict[str, Any] = field(default_factory=dict)
    captions: dict[str, Path] = field(default_factory=dict)  # "srt"/"vtt"/"captions_json" -> path


def parse_emotion(text: str) -> str | list[tuple[float, str, float]]:
    """`happy`, `0:neutral,2.5:happy:0.8,5:sad`, or a JSON file of `[[time, emotion, intensity], ...]`."""
    text = text.strip()
    if text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise UsageError(f"emotion schedule file {path} not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise UsageError(f"emotion schedule {path} is not valid JSON: {error}") from None
        return [tuple(k) if isinstance(k, list) else k for k in data]
    if ":" not in text:
        return text
    keys = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (2, 3):
            raise UsageError(f"schedule entry {part!r}: write time:emotion or time:emotion:intensity")
        try:
            keys.append((float(fields[0]), fields[1], float(fields[2]) if len(fields) == 3 else 1.0))
        except ValueError:
            raise UsageError(f"schedule entry {part!r}: time and intensity must be numbers") from None
    return keys


def _check_output(path: Path, suffix: str, what: str) -> Path:
    if path.suffix.lower() != suffix:
        raise UsageError(f"{what} {path} must end in {suffix}")
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} for {what} {path.name} does not exist; create it first")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder")
    return path


def _options_from(source: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    from engine.api import parse_animate_options

    unknown = sorted(set(source) - {"fps", "emotion", "intensity", "style", "language"})
    if unknown:
        raise UsageError(
            f"unknown job field(s) {unknown}; a job has audio, output, srt, vtt, captions_json, "
            "fps, emotion, intensity, style, language"
        )
    options = {**defaults, **source}
    if isinstance(options.get("emotion"), str):
        options["emotion"] = parse_emotion(options["emotion"])
    try:
        return parse_animate_options(options)
    except ValueError as error:
        raise UsageError(str(error)) from None


def build_jobs(args: argparse.Namespace) -> list[Job | tuple[str, str]]:
    """Every job of this run, validated (inputs exist, outputs writable, options valid) before any
    work. A single take fails with UsageError; in a batch, an invalid job becomes `(audio, error)` and
    is reported with the others while the valid jobs run."""
    defaults: dict[str, Any] = {"fps": args.fps, "intensity": args.intensity}
    if args.emotion is not None:
        defaults["emotion"] = parse_emotion(args.emotion)
    if args.style is not None:
        try:
            defaults["style"] = json.loads(args.style)
        except json.JSONDecodeError as error:
            raise UsageError(f"--style must be JSON (an object of SpeakerStyle fields): {error}") from None
    formats = {f.strip().lower() for f in (args.captions or "").split(",") if f.strip()}
    if formats - {"srt", "vtt", "json"}:
        raise UsageError(f"--captions takes srt, vtt and/or json, got {args.captions!r}")
    if args.out_dir is not None and not args.out_dir.is_dir():
        raise UsageError(f"--out-dir {args.out_dir} does not exist; create it first")

    if args.batch is None:
        if args.input is None:
            raise UsageError("give an audio file (python -m engine animate IN.wav) or --batch LIST")
        entries: list[dict[str, Any]] = [
            {"audio": str(args.input), "output": args.output, "srt": args.srt, "vtt": args.vtt,
             "captions_json": args.captions_json}
        ]  # fmt: skip
    else:
        if args.input is not None or args.output is not None:
            raise UsageError("--batch takes its inputs from the list; drop IN and -o (use --out-dir)")
        if args.srt or args.vtt or args.captions_json:
            raise UsageError("with --batch use --captions srt,vtt,json (written next to each output)")
        entries = _read_batch(args.batch)

    jobs: list[Job | tuple[str, str]] = []
    seen: set[Path] = set()
    for index, entry in enumerate(entries, start=1):
        try:
            jobs.append(_build_job(entry, args, defaults, formats, seen))
        except UsageError as error:
            if args.batch is None:
                raise
            jobs.append(
                (
                    str(entry.get("audio", f"job {index}")) if isinstance(entry, dict) else f"job {index}",
                    str(error),
                )
            )
    return jobs


def _build_job(
    entry: Any, args: argparse.Namespace, defaults: dict, formats: set[str], seen: set[Path]
) -> Job:
    if not isinstance(entry, dict) or "audio" not in entry:
        raise UsageError("each job needs an 'audio' path")
    audio = Path(str(entry["audio"]))
    if args.batch is not None and not audio.is_absolute() and not audio.exists():
        audio = args.batch.parent / audio  # relative to the list file
    if not audio.is_file():
        raise UsageError(f"audio file {audio} not found")
    output = entry.get("output")
    if output is None:
        folder = args.out_dir if args.out_dir is not None else audio.parent
        output = folder / (audio.stem + ".npz")
    output = _check_output(Path(output), ".npz", "output")
    if output.resolve() in seen:
        raise UsageError(f"output {output} is written by an earlier job too")
    seen.add(output.resolve())
    captions = {}
    for key, suffix in CAPTION_SUFFIXES.items():
        value = entry.get(key)
        if value is None and key.replace("captions_", "") in formats:
            value = output.with_suffix(suffix)
        if value is not None:
            captions[key] = _check_output(Path(value), suffix, key.replace("_", " "))
    extra = {k: v for k, v in entry.items() if k not in {"audio", "output", *CAPTION_SUFFIXES}}
    return Job(audio, output, _options_from(extra, defaults), captions)


def _read_batch(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UsageError(f"batch list {path} not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"batch file {path} is not valid JSON: {error}") from None
        if isinstance(data, dict):
            data = data.get("jobs")
        if not isinstance(data, list):
            raise UsageError(f'batch file {path} must hold a list of jobs (or {{"jobs": [...]}})')
        return [{"audio": item} if isinstance(item, str) else item for item in data]
    lines = [line.strip() for line in text.splitlines()]
    entries = [{"audio": line} for line in lines if line and not line.startswith("#")]
    if not entries:
        raise UsageError(f"batch list {path} has no audio paths")
    return entries


def _write_outputs(animation, job: Job) -> list[Path]:
    """Render everything first, then rename into place: a failure leaves no partial files."""
    from engine.captions import to_json, to_srt, to_vtt

    renders = {
        "srt": lambda: to_srt(animation.captions),
        "vtt": lambda: to_vtt(animation.captions),
        "captions_json": lambda: to_json(animation),
    }
    texts = {key: renders[key]() for key in job.captions}
    temporary = []
    try:
        for key, text in texts.items():
            tmp = job.captions[key].with_name(job.captions[key].name + ".partial")
            tmp.write_text(text, encoding="utf-8")
            temporary.append((tmp, job.captions[key]))
        animation.save(job.output)
        for tmp, final in temporary:
            tmp.replace(final)
    except BaseException:
        for tmp, _ in temporary:
            tmp.unlink(missing_ok=True)
        raise
    return [job.output, *job.captions.values()]


def run_animate(args: argparse.Namespace) -> int:
    try:
        jobs = build_jobs(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from engine.api import Engine
    from engine.audio.io import AudioError

    try:
        engine = Engine(weights=args.weights, device=args.device, threads=args.threads)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as error:
        print(f"error: cannot load the model: {error}", file=sys.stderr)
        return 2

    from tqdm import tqdm

    summary: list[dict[str, Any]] = [
        {"audio": job[0], "ok": False, "error": job[1]} for job in jobs if isinstance(job, tuple)
    ]
    for job in jobs:
        if isinstance(job, tuple):
            continue
        started = time.perf_counter()
        bar = tqdm(total=100, desc=job.audio.name, unit="%", disable=args.quiet, leave=False, file=sys.stderr)
        last = [0]

        def progress(fraction: float, bar=bar, last=last) -> None:
            step = int(fraction * 100)
            if step > last[0]:
                bar.update(step - last[0])
                last[0] = step

        try:
            animation = engine.animate(str(job.audio), progress=progress, **job.options)
            written = _write_outputs(animation, job)
        except Exception as error:  # noqa: BLE001 - one failed take must not stop the batch
            if not isinstance(error, (AudioError, ValueError, OSError)):
                error = RuntimeError(f"{type(error).__name__}: {error}")
            summary.append({"audio": str(job.audio), "ok": False, "error": str(error)})
            if not args.quiet:
                tqdm.write(f"FAILED {job.audio}: {error}", file=sys.stderr)
            continue
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        summary.append(
            {
                "audio": str(job.audio),
                "ok": True,
                "outputs": [str(p) for p in written],
                "frames": animation.n_frames,
                "duration_s": round(animation.duration, 3),
                "seconds": round(seconds, 3),
                "captions": len(animation.captions),
                "mean_sync": round(
                    sum(c.sync for c in animation.captions) / max(1, len(animation.captions)), 3
                ),
            }
        )
    failed = [s for s in summary if not s["ok"]]
    if args.json:
        print(json.dumps({"jobs": summary, "failed": len(failed)}, indent=1))
    else:
        for s in summary:
            if s["ok"]:
                print(
                    f"ok      {s['audio']} -> {s['outputs'][0]}  ({s['duration_s']:.1f} s of audio in "
                    f"{s['seconds']:.2f} s, {s['captions']} captions, mean sync {s['mean_sync']:.2f})"
                )
            else:
                print(f"FAILED  {s['audio']}: {s['error']}")
        if len(summary) > 1:
            print(f"{len(summary) - len(failed)} of {len(summary)} succeeded")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine", description="DualFace: voice to facial animation."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    animate = commands.add_parser("animate", help="animate audio files into .npz takes (+ captions)")
    animate.add_argument("input", nargs="?", type=Path, help="audio file (wav, flac, ogg, mp3)")
    animate.add_argument("-o", "--output", type=Path, help="output .npz (default: next to the input)")
    animate.add_argument("--batch", type=Path, help="text file of audio paths, or JSON list of jobs")
    animate.add_argument(
        "--out-dir", type=Path, help="folder for batch outputs (default: next to each input)"
    )
    animate.add_argument(
        "--emotion", help="emotion name, or a schedule 'time:emotion[:intensity],...', or a .json schedule"
    )
    animate.add_argument("--intensity", type=float, default=1.0, help="emotion intensity 0..1 (default 1)")
    animate.add_argument("--style", help="speaker style as JSON, e.g. '{\"articulation\": 1.2}'")
    animate.add_argument(
        "--fps", type=float, default=30.0, help="frame rate: 24, 25, 30, 50 or 60 (default 30)"
    )
    animate.add_argument("--captions", help="caption formats to write next to each output: srt,vtt,json")
    animate.add_argument("--srt", type=Path, help="write captions as SubRip to this path")
    animate.add_argument("--vtt", type=Path, help="write captions as WebVTT")
    animate.add_argument("--captions-json", type=Path, help="write captions and phonemes as JSON")
    animate.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    animate.add_argument("--weights", help="checkpoint .safetensors (default: the shipped weights)")
    animate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    animate.add_argument("--threads", type=int, help="CPU threads for torch")
    animate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    serve = commands.add_parser("serve", help="run the persistent JSON worker (see engine.serve)")
    serve.add_argument(
        "--stdio", action="store_true", required=True, help="speak the protocol on stdin/stdout"
    )
    serve.add_argument("--weights", help="checkpoint .safetensors (default: the shipped weights)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    serve.add_argument("--threads", type=int, help="CPU threads for torch")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "animate":
        return run_animate(args)
    from engine.serve import serve_stdio

    return serve_stdio(weights=args.weights, device=args.device, threads=args.threads)
