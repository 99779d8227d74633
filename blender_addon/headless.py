"""`blender -b scene.blend -c dualface animate ...`: takes, captions and renders without the UI.

It accepts every option of the engine's `python -m engine animate` (the same AnimateRequest:
emotion schedules, style, fps, language, text, the .npz and caption files) plus where the take
lands in Blender. The same entry point is a plain function, `main(argv) -> int`, so scripts and
tests can run it through the bpy module. Background mode has no timers or modal operators, so everything runs
synchronously. Exit codes: 0 success; 1 a take failed (bad scene data, engine error, or any job of
a batch); 2 the request itself is invalid (unknown option, missing audio file, bad value) and
nothing was done.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bpy

from engine.arkit.matching import AUTO, OUTPUT_MODES
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
from engine.request import (
    AnimateRequest,
    RequestError,
    add_request_options,
    caption_flag_files,
    emotion_from_text,
    request_fields,
    write_outputs,
)

from . import delivery, engine_bridge, pipeline, review, takes
from .core.request import DEFAULT_RESOLUTION, RENDER_ENGINES, TakeRequest, parse_resolution
from .validation import InputError, check_audio

COMMAND = "dualface"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_EXIT_CODES = {OK: EXIT_OK, FAILED: EXIT_FAILED, INVALID: EXIT_USAGE}
OWN_SCENE = "dualface_empty_scene"  # custom property: the scene came from --empty-scene


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits the process; Blender must get a code back instead
        raise RequestError(f"{message}\n{self.format_usage().strip()}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="blender -b [FILE.blend] -c dualface", description="DualFace voice-to-face animation"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    animate = commands.add_parser("animate", help="generate a take (or a batch of takes)")
    _add_engine_options(animate)
    animate.add_argument(
        "--object", dest="object_name", help="mesh to animate (ARKit shape keys or the DualFace head)"
    )
    animate.add_argument(
        "--mode", default=AUTO.lower(), choices=[m.lower() for m in OUTPUT_MODES], help="output mode"
    )
    animate.add_argument("--start-frame", type=int, help="first frame of the take (default: scene start)")
    animate.add_argument(
        "--captions", action="store_true", help="add caption markers and a captioned review scene"
    )
    animate.add_argument("--render", help="render the review scene to this .mp4 (with audio and captions)")
    size = "x".join(map(str, DEFAULT_RESOLUTION))
    animate.add_argument("--resolution", default=size, help=f"render size WxH (default {size})")
    animate.add_argument(
        "--render-engine",
        default=RENDER_ENGINES[0].lower(),
        help=f"{' or '.join(e.lower() for e in RENDER_ENGINES)}",
    )
    animate.add_argument(
        "--save", help="save the result to this .blend (the opened file is never overwritten)"
    )
    animate.add_argument("--add-head", action="store_true", help="add the DualFace head and animate it")
    animate.add_argument(
        "--look-at",
        metavar="OBJECT",
        help="the gaze layer's eyes follow this object of the file (as the panel's Look At)",
    )
    animate.add_argument(
        "--empty-scene",
        action="store_true",
        help="start from an empty scene, not the opened file or the startup cube (needs --add-head)",
    )
    animate.add_argument("--batch", help="JSON list of jobs (objects with the option names above)")
    animate.add_argument("--report", help="write a JSON result per batch job (status, error, outputs) here")
    animate.add_argument(
        "--resume",
        action="store_true",
        help="with --batch and --report: run only the jobs that did not succeed",
    )
    return parser


def _add_engine_options(animate: argparse.ArgumentParser) -> None:
    """The options of `python -m engine animate`, with the same meaning."""
    animate.add_argument("--audio", help="voice recording: wav, flac, ogg, mp3, ...")
    add_request_options(animate, fps_default="the scene's", layers_default="blinks,gaze,head")
    animate.add_argument("-o", "--output", help="also write the engine's take as this .npz")
    animate.add_argument("--weights", help="checkpoint .safetensors (default: the bundled weights)")
    animate.add_argument(
        "--python", default="", help="external Python with torch (engine worker) if Blender has none"
    )
    animate.add_argument("--device", default="auto", help="engine device: auto, cpu, cuda")
    animate.add_argument("--threads", type=int, help="CPU threads for the engine")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options = build_parser().parse_args(argv)
        requests = _requests(options)
    except RequestError as error:
        _error(str(error))
        return EXIT_USAGE
    base = engine_bridge.EngineSettings(python=options.python, device=options.device, threads=options.threads)
    if options.empty_scene:
        start_empty_scene()
    single = requests[0]
    if not options.batch and isinstance(single, TakeRequest):
        return _EXIT_CODES[_run_one(single, base, options.look_at).status]
    try:
        return _run_batch(requests, base, options)
    except (RequestError, ReportError) as error:
        _error(str(error))
        return EXIT_USAGE


Invalid = tuple[str, str]  # (what the job is, why it cannot run): reported when the batch runs


def _requests(options) -> list[TakeRequest | Invalid]:
    if options.batch:
        return _batch_requests(options)
    if not options.audio:
        raise RequestError("--audio is required (the voice recording to animate)")
    if options.empty_scene and not options.add_head:
        raise RequestError("--empty-scene leaves nothing to animate: add --add-head (and drop --object)")
    fields = request_fields(options)
    take = AnimateRequest(
        options.audio, output=options.output, caption_files=tuple(caption_flag_files(options)), **fields
    )
    request = TakeRequest(
        take,
        object_name=options.object_name,
        start_frame=options.start_frame,
        mode=options.mode,
        captions=options.captions,
        render=options.render,
        resolution=parse_resolution(options.resolution),
        render_engine=options.render_engine,
        save=options.save,
        weights=options.weights,
        add_head=options.add_head,
    )
    if options.report or options.resume:
        raise RequestError("--report and --resume are for --batch runs")
    return [_checked(request)]


def _checked(request: TakeRequest) -> TakeRequest:
    """Validated, and not about to overwrite the opened .blend (the README promises it never is)."""
    request.validate()
    if request.save and delivery.is_opened_file(request.save):
        raise RequestError(
            f"--save {request.save} is the opened file, which DualFace never overwrites: save to another path"
        )
    return request


def batch_entries(options) -> list[Any]:
    """The jobs of the batch file as written, with its `defaults` (and --weights, --layers) merged in."""
    if options.audio or options.object_name:
        raise RequestError("--batch takes its jobs from the JSON file; drop --audio/--object")
    if options.resume and not options.report:
        raise RequestError("--resume needs --report FILE: the report of the run to resume")
    path = Path(options.batch)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RequestError(f"batch file not found: {path}") from None
    except (OSError, ValueError, RecursionError) as error:
        raise RequestError(f"batch file {path} is not valid JSON: {error}") from None
    jobs = data.get("jobs") if isinstance(data, dict) else data
    defaults = data.get("defaults", {}) if isinstance(data, dict) else {}
    if not isinstance(defaults, dict):
        raise RequestError(f"{path}: 'defaults' must be an object of job fields")
    defaults = dict(defaults)
    if isinstance(data, dict) and "schema_version" in data:
        defaults["schema_version"] = data["schema_version"]
    if options.weights:
        defaults.setdefault("weights", options.weights)
    defaults.setdefault("layers", options.layers)
    if not isinstance(jobs, list) or not jobs:
        raise RequestError(f"{path} must hold a non-empty list of jobs (or {{'jobs': [...]}})")
    return [{**defaults, **job} if isinstance(job, dict) else job for job in jobs]


def _batch_requests(options) -> list[TakeRequest | Invalid]:
    """Jobs of a batch file; a job whose values are wrong fails alone when the batch runs."""
    folder = Path(options.batch).parent
    requests: list[TakeRequest | Invalid] = []
    for i, entry in enumerate(batch_entries(options), 1):
        try:
            if isinstance(entry, dict) and isinstance(entry.get("emotion"), str):
                entry = {**entry, "emotion": emotion_from_text(entry["emotion"])}
            request = TakeRequest.from_mapping(entry, f"job {i}", folder)
        except RequestError as error:
            requests.append((f"job {i}", str(error) if str(error).startswith("job") else f"job {i}: {error}"))
            continue
        if options.empty_scene and not request.add_head:
            raise RequestError(f'job {i}: --empty-scene leaves nothing to animate; set "add_head": true')
        requests.append(request)
    return requests  # each job's files are checked when it runs, so one bad job fails alone


def start_empty_scene() -> bpy.types.Scene:
    """Replace the file in memory (never on disk) by an empty scene with the preview look, for
    jobs that only want the DualFace head: no startup cube, camera or light in the way."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None  # an empty file still has one scene
    scene[OWN_SCENE] = True
    return scene


def _run_one(
    request: TakeRequest, base: engine_bridge.EngineSettings, look_at: str | None = None
) -> JobResult:
    """One take, start to finish; every failure becomes a reported result, never a traceback."""
    started = time.perf_counter()
    label = Path(str(request.take.audio)).name
    try:
        _checked(request)
        result, rendered, handed = run_request(request, base, look_at)
    except RequestError as error:
        return _failed(label, INVALID, str(error), started)
    except engine_bridge.TakeCancelled:
        return _failed(label, FAILED, "cancelled", started)
    except (InputError, engine_bridge.EngineError, ValueError, OSError) as error:
        return _failed(label, FAILED, str(error), started)
    except Exception as error:  # noqa: BLE001 - a headless run reports, it does not crash
        return _failed(label, FAILED, f"{type(error).__name__}: {error}", started)
    seconds = time.perf_counter() - started
    print(_take_line(request, result, rendered, handed, seconds), flush=True)
    outputs = handed.written + ([handed.fallback] if handed.fallback else [])
    if handed.errors:
        _error(handed.message())
        return JobResult(0, "", label, FAILED, handed.message(), outputs, seconds=round(seconds, 3))
    return JobResult(0, "", label, OK, None, outputs, seconds=round(seconds, 3))


def _failed(label: str, status: str, message: str, started: float) -> JobResult:
    _error(message)
    return JobResult(0, "", label, status, message, seconds=round(time.perf_counter() - started, 3))


def _take_line(request: TakeRequest, result, rendered, handed: delivery.Delivery, seconds: float) -> str:
    line = (
        f"DualFace: take {result.action}: frames {result.frame_start}-{result.frame_end} "
        f"({result.mode.lower()}, {result.channels} channels, {result.keys_written} keys) in {seconds:.1f} s"
    )
    moving = [name for name, info in result.parts.items() if info.get("action")]
    if moving:
        line += f"; parts: {', '.join(moving)}"
    line += "".join(f"; {note}" for note in result.notes)
    if rendered:
        path, frames, render_seconds = rendered
        line += f"; rendered {path} ({frames} frames in {render_seconds:.1f} s)"
    if handed.written:
        line += f"; wrote {', '.join(handed.written)}"
    return line


def run_request(
    request: TakeRequest, base: engine_bridge.EngineSettings, look_at: str | None = None
) -> tuple[takes.TakeResult, tuple[str, int, float] | None, delivery.Delivery]:
    """Validate, generate and write one take in the current file, then hand it over: the engine's
    files, the movie and the .blend, each step on its own (delivery.Delivery). Returns the take,
    (movie path, frames, render seconds) when rendered, and what the hand-over wrote or failed.
    ``look_at`` names the object the eyes follow (--look-at)."""
    scene = bpy.context.scene
    if scene is None:
        raise InputError("the file has no scene to animate; open a .blend file with a scene")
    settings = engine_bridge.EngineSettings(
        mode=base.mode, python=base.python, weights=request.weights, device=base.device, threads=base.threads
    )
    gaze_target = _look_at_object(look_at, request)
    obj = _target_object(scene, request, settings)
    if gaze_target is not None and gaze_target == obj:
        raise InputError(
            f"--look-at {look_at} is the mesh being animated; name the object its eyes should follow"
        )
    prepared = pipeline.prepare(
        scene,
        obj,
        request.take,
        start_frame=request.start_frame,
        mode=request.mode,
        captions=request.captions,
        settings=settings,
    )
    prepared.gaze_target = gaze_target
    animation = pipeline.generate(prepared)
    result = pipeline.apply(prepared, animation)
    handed = delivery.Delivery()
    handed.attempt("write the take's files", lambda: [str(p) for p in write_outputs(animation, request.take)])
    rendered: list[tuple[str, int, float]] = []
    if request.render:
        handed.attempt(f"render {request.render}", lambda: [_rendered(rendered, scene, obj, request, result)])
    if request.save:
        handed.attempt(f"save {request.save}", lambda: delivery.save_copy(str(request.save)))
    if handed.errors:
        handed.fallback = delivery.save_fallback(request.save)
    return result, (rendered[0] if rendered else None), handed


def _rendered(into: list, scene, obj, request: TakeRequest, result: takes.TakeResult) -> str:
    into.append(_render(scene, obj, request, result))
    return into[-1][0]


def _look_at_object(name: str | None, request: TakeRequest):
    """The --look-at object, checked before anything is added or written (None: the scene's Look At)."""
    if name is None:
        return None
    if "gaze" not in request.take.layers:
        raise RequestError(
            "--look-at aims the gaze layer: add gaze to --layers (e.g. --layers blinks,gaze,head)"
        )
    obj = bpy.data.objects.get(name)
    if obj is None:
        names = ", ".join(sorted(o.name for o in bpy.data.objects)) or "none"
        raise InputError(f"--look-at: no object named '{name}' in this file (objects: {names})")
    return obj


def _target_object(scene, request: TakeRequest, settings: engine_bridge.EngineSettings):
    """The mesh to animate; --add-head adds it, but only once every other check passed."""
    if request.add_head:
        check_audio(request.take.audio)
        try:
            engine_bridge.resolve_weights(settings.weights)
            engine_bridge.resolve_engine_mode(settings)
        except engine_bridge.EngineError as error:
            raise InputError(str(error)) from None
        from .head import HEAD_NAME, add_head, free_location

        return add_head(scene, request.object_name or HEAD_NAME, location=free_location(scene), complete=True)
    obj = bpy.data.objects.get(request.object_name or "")
    if obj is None:
        meshes = ", ".join(o.name for o in bpy.data.objects if o.type == "MESH") or "none"
        raise InputError(
            f"no object named '{request.object_name}' in this file (meshes: {meshes}); or use --add-head"
        )
    return obj


def _render(scene, obj, request: TakeRequest, result: takes.TakeResult) -> tuple[str, int, float]:
    """Render the take's review scene to request.render: (path, frames, seconds)."""
    assert request.render is not None
    meta = takes.take_metadata(bpy.data.actions[result.action])
    if meta is None:
        raise InputError(f"the take '{result.action}' lost its DualFace metadata; generate it again")
    if scene.get(OWN_SCENE):  # DualFace's own scene keeps the look: the saved file renders the same
        review.apply_preview_look(scene, request.resolution, request.render_engine)
    camera = review.review_camera(scene, obj, request.resolution)
    title = f"DualFace \u00b7 {meta['clip']} \u00b7 {_emotion_label(request.take)}"
    review_scene = review.build_review(scene, meta, captions=request.captions, camera=camera, title=title)
    started = time.perf_counter()
    review.render_review(review_scene, scene, request.render, request.resolution, request.render_engine)
    if not Path(request.render).is_file():
        raise InputError(f"Blender did not write {request.render}; check that the folder is writable")
    frames = review_scene.frame_end - review_scene.frame_start + 1
    return request.render, frames, time.perf_counter() - started


def _emotion_label(take: AnimateRequest) -> str:
    """'happy 80%', or the emotions of a schedule in order ('neutral > happy 80%')."""
    if isinstance(take.emotion, str):
        return f"{take.emotion} {round(100 * take.intensity)}%"
    names = [name for _, name, _ in take.emotion]
    steps = [name for i, name in enumerate(names) if i == 0 or name != names[i - 1]]
    return f"{' > '.join(steps)} {round(100 * take.intensity)}%"


def _run_batch(requests: list[TakeRequest | Invalid], base: engine_bridge.EngineSettings, options) -> int:
    """Every job runs, each from the file as it was opened (jobs never see each other's takes); the
    report gets one result per job after each one, and --resume skips the jobs that succeeded."""
    keys = [job_key(entry) for entry in batch_entries(options)]
    report = BatchReport(options.report, options.batch)  # refuses an unwritable path before any job
    done = succeeded_before(options.report) if options.resume else {}
    with tempfile.TemporaryDirectory(prefix="dualface_batch_") as folder:
        snapshot = str(Path(folder) / "start.blend")
        bpy.ops.wm.save_as_mainfile(filepath=snapshot, copy=True)
        dirty = False
        for i, (key, request) in enumerate(zip(keys, requests, strict=True), 1):
            if key in done:
                previous = done[key]
                report.add(JobResult(i, key, previous.label, SKIPPED, None, previous.outputs))
                continue
            if isinstance(request, tuple):
                _error(request[1])
                report.add(JobResult(i, key, request[0], INVALID, request[1]))
                continue
            if dirty:
                bpy.ops.wm.open_mainfile(filepath=snapshot)
            print(f"DualFace batch: job {i}/{len(requests)}: {Path(request.take.audio).name}", flush=True)
            result = _run_one(request, base, options.look_at)
            result.index, result.key, dirty = i, key, True
            report.add(result)
    print(f"DualFace batch: {report.summary_line()}", flush=True)
    if report.failed:
        failed = ", ".join(str(job.index) for job in report.failed)
        print(f"DualFace batch: failed jobs: {failed}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK


def _error(message: str) -> None:
    print(f"dualface: error: {message}", file=sys.stderr, flush=True)


def register() -> object | None:
    if not hasattr(bpy.utils, "register_cli_command"):
        return None
    return bpy.utils.register_cli_command(COMMAND, main)


def unregister(handle) -> None:
    if handle is not None and hasattr(bpy.utils, "unregister_cli_command"):
        bpy.utils.unregister_cli_command(handle)
