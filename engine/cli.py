"""Command line: `python -m engine animate ...` and `python -m engine serve --stdio`.

Every path and option is checked before the model loads, and results are written only after the
whole take succeeded (temporary files renamed into place), so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.batch_report import (
    FAILED,
    INVALID,
    OK,
    SKIPPED,
    BatchReport,
    JobResult,
    ReportError,
    job_key,
    succeeded_before,
)
from engine.inference.device import BACKENDS
from engine.request import (
    SCHEMA_VERSION,
    AnimateRequest,
    RequestError,
    add_request_options,
    caption_flag_files,
    emotion_from_text,
    request_fields,
    resolve_paths,
    upgrade,
)

FORMAT_SUFFIXES = {"srt": ".srt", "vtt": ".vtt", "json": ".json"}  # --captions srt,vtt,json
TIMING_SUFFIXES = {"json": ".timing.json", "tsv": ".tsv"}  # --timing json,tsv (scripted takes)

BACKEND_HELP = "numpy (CPU, no torch), torch, or auto: torch on a CUDA GPU, else numpy (default auto)"
Failed = tuple[str, str]  # (audio, error) of a batch job that cannot run


def request_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields the command-line options set for every take of this run."""
    defaults = request_fields(args)
    timing = {f.strip().lower() for f in (args.timing or "").split(",") if f.strip()}
    if timing - set(TIMING_SUFFIXES):
        raise RequestError(f"--timing takes json and/or tsv, got {args.timing!r}")
    return defaults


def build_requests(args: argparse.Namespace) -> list[AnimateRequest | Failed]:
    """Every take of this run, validated (inputs exist, outputs writable, options valid) before any
    work. A single take fails with RequestError; in a batch, an invalid job becomes `(audio, error)`
    and is reported with the others while the valid jobs run."""
    defaults = request_defaults(args)
    formats = {f.strip().lower() for f in (args.captions or "").split(",") if f.strip()}
    if formats - set(FORMAT_SUFFIXES):
        raise RequestError(f"--captions takes srt, vtt and/or json, got {args.captions!r}")
    if args.out_dir is not None and not args.out_dir.is_dir():
        raise RequestError(f"--out-dir {args.out_dir} does not exist; create it first")
    if args.batch is None:
        if args.input is None:
            raise RequestError("give an audio file (python -m engine animate IN.wav) or --batch LIST")
        entries: list[Any] = [
            {"audio": str(args.input), "output": args.output, "caption_files": caption_flag_files(args)}
        ]
    else:
        if args.input is not None or args.output is not None:
            raise RequestError("--batch takes its inputs from the list; drop IN and -o (use --out-dir)")
        if args.srt or args.vtt or args.captions_json:
            raise RequestError("with --batch use --captions srt,vtt,json (written next to each output)")
        entries = read_batch(args.batch)

    requests: list[AnimateRequest | Failed] = []
    seen: set[Path] = set()
    for index, entry in enumerate(entries, start=1):
        try:
            requests.append(_job_request(entry, args, defaults, formats, seen))
        except RequestError as error:
            if args.batch is None:
                raise
            audio = entry.get("audio", f"job {index}") if isinstance(entry, dict) else f"job {index}"
            requests.append((str(audio), str(error)))
    return requests


def _job_request(
    entry: Any, args: argparse.Namespace, defaults: dict[str, Any], formats: set[str], seen: set[Path]
) -> AnimateRequest:
    if not isinstance(entry, dict) or "audio" not in entry:
        raise RequestError("each job needs an 'audio' path")
    entry = upgrade(entry)
    if args.batch is not None:  # paths in a batch file are relative to the file
        entry = resolve_paths(entry, args.batch.parent)
    audio = Path(str(entry["audio"]))
    output = entry.get("output")
    if output is None:
        folder = args.out_dir if args.out_dir is not None else audio.parent
        output = folder / (audio.stem + ".npz")
    caption_files = [str(p) for p in entry.get("caption_files", [])]
    given = {Path(p).suffix.lower() for p in caption_files}
    caption_files += [
        str(Path(output).with_suffix(suffix))
        for name, suffix in FORMAT_SUFFIXES.items()
        if name in formats and suffix not in given
    ]
    if isinstance(entry.get("emotion"), str):
        entry["emotion"] = emotion_from_text(entry["emotion"])
    fields = {
        **entry,
        "schema_version": SCHEMA_VERSION,  # upgraded above
        "audio": str(audio),
        "output": str(output),
        "caption_files": caption_files,
    }
    request = AnimateRequest.from_mapping(fields, defaults)
    request.check_files()
    resolved = Path(str(request.output)).resolve()
    if resolved in seen:
        raise RequestError(f"output {request.output} is written by an earlier job too")
    seen.add(resolved)
    return request


def read_batch(path: Path) -> list[Any]:
    """Jobs of a batch file: a text file of audio paths, or JSON (a list of jobs, or an object with
    `jobs` and optionally `schema_version` and `defaults` shared by every job)."""
    if not path.is_file():
        raise RequestError(f"batch list {path} not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RequestError(f"batch file {path} is not valid JSON: {error}") from None
        shared: dict[str, Any] = {}
        if isinstance(data, dict):
            shared = dict(data.get("defaults") or {})
            if "schema_version" in data:
                shared["schema_version"] = data["schema_version"]
            data = data.get("jobs")
        if not isinstance(data, list):
            raise RequestError(f'batch file {path} must hold a list of jobs (or {{"jobs": [...]}})')
        jobs = [{"audio": item} if isinstance(item, str) else item for item in data]
        return [{**shared, **job} if isinstance(job, dict) else job for job in jobs]
    lines = [line.strip() for line in text.splitlines()]
    entries = [{"audio": line} for line in lines if line and not line.startswith("#")]
    if not entries:
        raise RequestError(f"batch list {path} has no audio paths")
    return entries


def run_animate(args: argparse.Namespace) -> int:
    try:
        requests = build_requests(args)
        keys, done = _resume_state(args)
        report = BatchReport(args.report, args.batch)
    except (RequestError, ReportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    engine = None
    if any(not isinstance(job, tuple) and key not in done for key, job in zip(keys, requests, strict=True)):
        from engine.api import Engine

        try:
            engine = Engine(
                weights=args.weights, device=args.device, threads=args.threads, backend=args.backend
            )
        except (ValueError, FileNotFoundError, OSError, RuntimeError) as error:
            print(f"error: cannot load the model: {error}", file=sys.stderr)
            return 2
    summary: list[dict[str, Any]] = []
    for index, (key, job) in enumerate(zip(keys, requests, strict=True), start=1):
        entry: dict[str, Any]
        if key in done:  # --resume: this job succeeded before and its files are still there
            entry = {"audio": done[key].label, "ok": True, "skipped": True, "outputs": done[key].outputs}
            status = SKIPPED
        elif isinstance(job, tuple):
            entry, status = {"audio": job[0], "ok": False, "error": job[1]}, INVALID
        else:
            entry = _run_one(engine, job, args)
            status = OK if entry["ok"] else FAILED
        summary.append(entry)
        report.add(JobResult(index, key, entry["audio"], status, entry.get("error"), entry.get("outputs", []),
                             seconds=entry.get("seconds", 0.0)))  # fmt: skip
    failed = [s for s in summary if not s["ok"]]
    if args.json:
        print(json.dumps({"jobs": summary, "failed": len(failed)}, indent=1))
    else:
        _print_summary(summary, len(failed))
    return 1 if failed else 0


def _resume_state(args: argparse.Namespace) -> tuple[list[str], dict[str, JobResult]]:
    """The identity of every job, and (with --resume) the jobs the report says already succeeded."""
    if (args.report or args.resume) and args.batch is None:
        raise RequestError("--report and --resume are for --batch runs")
    if args.resume and not args.report:
        raise RequestError("--resume needs --report FILE: the report of the run to resume")
    entries = read_batch(args.batch) if args.batch is not None else [{"audio": str(args.input)}]
    keys = [job_key(entry) for entry in entries]
    return keys, succeeded_before(args.report) if args.resume else {}


def _run_one(engine, request: AnimateRequest, args: argparse.Namespace) -> dict[str, Any]:
    """Animate one take and write its files; a failure becomes a summary line, not an exception."""
    from tqdm import tqdm

    from engine.audio.io import AudioError

    audio = str(request.audio)
    started = time.perf_counter()
    bar = tqdm(total=100, desc=Path(audio).name, unit="%", disable=args.quiet, leave=False, file=sys.stderr)
    last = [0]

    def progress(fraction: float) -> None:
        step = int(fraction * 100)
        if step > last[0]:
            bar.update(step - last[0])
            last[0] = step

    try:
        animation, written = engine.write_take(request, progress=progress)  # long takes stream to disk
        written += _write_timing(animation, request, args.timing)
    except Exception as error:  # noqa: BLE001 - one failed take must not stop the batch
        if not isinstance(error, (AudioError, ValueError, OSError)):
            error = RuntimeError(f"{type(error).__name__}: {error}")
        if not args.quiet:
            tqdm.write(f"FAILED {audio}: {error}", file=sys.stderr)
        return {"audio": audio, "ok": False, "error": str(error)}
    finally:
        bar.close()
    syncs = [c.sync for c in animation.captions]
    return {
        "audio": audio,
        "ok": True,
        "outputs": [str(p) for p in written],
        "frames": animation.n_frames,
        "duration_s": round(animation.duration, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "captions": len(animation.captions),
        "mean_sync": round(sum(syncs) / max(1, len(syncs)), 3),
        "notes": list(animation.meta.get("notes", [])),
    }


def _write_timing(animation, request: AnimateRequest, formats: str | None) -> list[Path]:
    """--timing json,tsv: the script's word and phone times next to the take (scripted takes only)."""
    if not formats or "script" not in animation.meta or request.output is None:
        return []
    from engine.script.words import write_timing

    wanted = dict.fromkeys(f.strip().lower() for f in formats.split(",") if f.strip())
    stem = Path(request.output).with_suffix("")
    return [write_timing(animation, stem.with_name(stem.name + TIMING_SUFFIXES[f])) for f in wanted]


def _print_summary(summary: list[dict[str, Any]], failed: int) -> None:
    for s in summary:
        if s.get("skipped"):
            print(f"skipped {s['audio']}: done in the resumed run")
        elif s["ok"]:
            print(
                f"ok      {s['audio']} -> {s['outputs'][0]}  ({s['duration_s']:.1f} s of audio in "
                f"{s['seconds']:.2f} s, {s['captions']} captions, mean sync {s['mean_sync']:.2f})"
            )
            for note in s.get("notes", []):
                print(f"        note: {note}")
        else:
            print(f"FAILED  {s['audio']}: {s['error']}")
    if len(summary) > 1:
        print(f"{len(summary) - failed} of {len(summary)} succeeded")


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
    add_request_options(animate, fps_default="30")
    animate.add_argument(
        "--timing", help="with a script, also write its word/phone timing next to each output: json,tsv"
    )
    animate.add_argument("--captions", help="caption formats to write next to each output: srt,vtt,json")
    animate.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    animate.add_argument(
        "--report", type=Path, help="write a JSON result per batch job (status, error, outputs)"
    )
    animate.add_argument(
        "--resume",
        action="store_true",
        help="with --batch and --report: run only the jobs that did not succeed",
    )
    animate.add_argument("--weights", help="checkpoint .safetensors (default: the shipped weights)")
    animate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    animate.add_argument("--threads", type=int, help="CPU threads for torch")
    animate.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    animate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    serve = commands.add_parser("serve", help="run the persistent JSON worker (see engine.serve)")
    serve.add_argument(
        "--stdio", action="store_true", required=True, help="speak the protocol on stdin/stdout"
    )
    serve.add_argument("--weights", help="checkpoint .safetensors (default: the shipped weights)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    serve.add_argument("--threads", type=int, help="CPU threads for torch")
    serve.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "animate":
        return run_animate(args)
    from engine.serve import serve_stdio

    return serve_stdio(weights=args.weights, device=args.device, threads=args.threads, backend=args.backend)
