"""`blender -b scene.blend -c dualface animate ...`: takes, captions and renders without the UI.

The same entry point is a plain function, `main(argv) -> int`, so scripts and tests can run it
through the bpy module. Background mode has no timers or modal operators, so everything runs
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

import bpy

from . import engine_bridge, pipeline, review, takes
from .core.request import RENDER_ENGINES, RequestError, TakeRequest, parse_resolution
from .validation import InputError, check_audio

COMMAND = "dualface"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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
    animate.add_argument(
        "--object", dest="object_name", help="mesh to animate (ARKit shape keys or the DualFace head)"
    )
    animate.add_argument("--audio", help="voice recording: wav, flac, ogg, mp3, ...")
    animate.add_argument(
        "--emotion", default="neutral", help="neutral, calm, happy, sad, angry, fearful, disgust, surprised"
    )
    animate.add_argument("--intensity", type=float, default=1.0, help="emotion intensity 0..1 (default 1)")
    animate.add_argument("--style", default="", help="speaker style, e.g. articulation=1.2,jaw_ratio=0.6")
    animate.add_argument("--mode", default="auto", choices=["auto", "arkit", "vertex"], help="output mode")
    animate.add_argument("--start-frame", type=int, help="first frame of the take (default: scene start)")
    animate.add_argument(
        "--captions", action="store_true", help="add caption markers and a captioned review scene"
    )
    animate.add_argument("--render", help="render the review scene to this .mp4 (with audio and captions)")
    animate.add_argument("--resolution", default="640x480", help="render size WxH (default 640x480)")
    animate.add_argument(
        "--render-engine", default="workbench", help=f"{' or '.join(e.lower() for e in RENDER_ENGINES)}"
    )
    animate.add_argument(
        "--save", help="save the result to this .blend (the opened file is never overwritten)"
    )
    animate.add_argument("--weights", help="checkpoint .safetensors (default: the bundled weights)")
    animate.add_argument("--add-head", action="store_true", help="add the DualFace head and animate it")
    animate.add_argument(
        "--empty-scene",
        action="store_true",
        help="start from an empty scene, not the opened file or the startup cube (needs --add-head)",
    )
    animate.add_argument(
        "--python", default="", help="external Python with torch (engine worker) if Blender has none"
    )
    animate.add_argument("--device", default="auto", help="engine device: auto, cpu, cuda")
    animate.add_argument("--batch", help="JSON list of jobs (objects with the option names above)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options = build_parser().parse_args(argv)
        requests = _requests(options)
    except RequestError as error:
        _error(str(error))
        return EXIT_USAGE
    base = engine_bridge.EngineSettings(python=options.python, device=options.device)
    if options.empty_scene:
        start_empty_scene()
    if len(requests) == 1 and not options.batch:
        return EXIT_OK if _run_one(requests[0], base) else EXIT_FAILED
    return _run_batch(requests, base)


def _requests(options) -> list[TakeRequest]:
    if options.batch:
        if options.audio or options.object_name:
            raise RequestError("--batch takes its jobs from the JSON file; drop --audio/--object")
        path = Path(options.batch)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RequestError(f"batch file not found: {path}") from None
        except (OSError, ValueError) as error:
            raise RequestError(f"batch file {path} is not valid JSON: {error}") from None
        jobs = data.get("jobs") if isinstance(data, dict) else data
        defaults = data.get("defaults", {}) if isinstance(data, dict) else {}
        if not isinstance(jobs, list) or not jobs:
            raise RequestError(f"{path} must hold a non-empty list of jobs (or {{'jobs': [...]}})")
        base = path.parent
        requests = []
        for i, job in enumerate(jobs, 1):
            request = TakeRequest.from_dict({**defaults, **job} if isinstance(job, dict) else job, f"job {i}")
            if options.empty_scene and not request.add_head:
                raise RequestError(f'job {i}: --empty-scene leaves nothing to animate; set "add_head": true')
            _resolve_paths(request, base)
            requests.append(request)
        return requests  # each job is validated when it runs, so one bad job fails alone
    if not options.audio:
        raise RequestError("--audio is required (the voice recording to animate)")
    if options.empty_scene and not options.add_head:
        raise RequestError("--empty-scene leaves nothing to animate: add --add-head (and drop --object)")
    request = TakeRequest(
        audio=options.audio,
        object_name=options.object_name,
        emotion=options.emotion,
        intensity=options.intensity,
        style=_parse_style(options.style),
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
    return [request.validate()]


def start_empty_scene() -> bpy.types.Scene:
    """Replace the file in memory (never on disk) by an empty scene with the preview look, for
    jobs that only want the DualFace head: no startup cube, camera or light in the way."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    assert scene is not None  # an empty file still has one scene
    scene[OWN_SCENE] = True
    return scene


def _resolve_paths(request: TakeRequest, base: Path) -> None:
    """Relative paths in a batch file are relative to the file, not to wherever Blender started."""
    for name in ("audio", "render", "save", "weights"):
        value = getattr(request, name)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            setattr(request, name, str(base / value))


def _parse_style(text: str) -> dict[str, float]:
    style: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            style[name.strip()] = float(value)
        except ValueError:
            raise RequestError(f"--style entry {part!r} must look like name=number") from None
    return style


def _run_one(request: TakeRequest, base: engine_bridge.EngineSettings) -> bool:
    started = time.perf_counter()
    try:
        request.validate()
        result, rendered = run_request(request, base)
    except (InputError, RequestError, engine_bridge.EngineError) as error:
        _error(str(error))
        return False
    except engine_bridge.TakeCancelled:
        _error("cancelled")
        return False
    seconds = time.perf_counter() - started
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
    if request.save:
        line += f"; saved {request.save}"
    print(line, flush=True)
    return True


def run_request(
    request: TakeRequest, base: engine_bridge.EngineSettings
) -> tuple[takes.TakeResult, tuple[str, int, float] | None]:
    """Validate, generate and write one take in the current file; render and save if asked.

    Returns the take and, when rendered, (movie path, frames, seconds spent rendering)."""
    scene = bpy.context.scene
    if scene is None:
        raise InputError("the file has no scene to animate; open a .blend file with a scene")
    settings = engine_bridge.EngineSettings(
        mode=base.mode, python=base.python, weights=request.weights, device=base.device, threads=base.threads
    )
    if request.add_head:
        obj = None  # the head is created only after every other check passed
        check_audio(request.audio)
        try:
            engine_bridge.resolve_weights(settings.weights)
            engine_bridge.choose_mode(settings)
        except engine_bridge.EngineError as error:
            raise InputError(str(error)) from None
        from .head import HEAD_NAME, add_head, free_location

        obj = add_head(scene, request.object_name or HEAD_NAME, location=free_location(scene))
    else:
        obj = bpy.data.objects.get(request.object_name or "")
        if obj is None:
            meshes = ", ".join(o.name for o in bpy.data.objects if o.type == "MESH") or "none"
            raise InputError(
                f"no object named '{request.object_name}' in this file (meshes: {meshes}); or use --add-head"
            )
    prepared = pipeline.prepare(
        scene,
        obj,
        request.audio,
        emotion=request.emotion,
        intensity=request.intensity,
        style=request.style,
        start_frame=request.start_frame,
        mode=request.mode,
        captions=request.captions,
        settings=settings,
    )
    result = pipeline.run(prepared)
    rendered = None
    if request.render:
        meta = takes.take_metadata(bpy.data.actions[result.action])
        if meta is None:
            raise InputError(f"the take '{result.action}' lost its DualFace metadata; generate it again")
        if scene.get(OWN_SCENE):  # DualFace's own scene keeps the look: the saved file renders the same
            review.apply_preview_look(scene, request.resolution, request.render_engine)
        camera = review.review_camera(scene, obj, request.resolution)
        title = f"DualFace \u00b7 {meta['clip']} \u00b7 {request.emotion} {round(100 * request.intensity)}%"
        review_scene = review.build_review(scene, meta, captions=request.captions, camera=camera, title=title)
        render_started = time.perf_counter()
        review.render_review(review_scene, scene, request.render, request.resolution, request.render_engine)
        if not Path(request.render).is_file():
            raise InputError(f"Blender did not write {request.render}; check that the folder is writable")
        frames = review_scene.frame_end - review_scene.frame_start + 1
        rendered = (request.render, frames, time.perf_counter() - render_started)
    if request.save:
        bpy.ops.wm.save_as_mainfile(filepath=str(Path(request.save).resolve()), copy=True)
    return result, rendered


def _run_batch(requests: list[TakeRequest], base: engine_bridge.EngineSettings) -> int:
    """Each job starts from the file as it was opened, so jobs never see each other's takes."""
    with tempfile.TemporaryDirectory(prefix="dualface_batch_") as folder:
        snapshot = str(Path(folder) / "start.blend")
        bpy.ops.wm.save_as_mainfile(filepath=snapshot, copy=True)
        outcomes = []
        for i, request in enumerate(requests, 1):
            if i > 1:
                bpy.ops.wm.open_mainfile(filepath=snapshot)
            print(f"DualFace batch: job {i}/{len(requests)}: {Path(request.audio).name}", flush=True)
            outcomes.append(_run_one(request, base))
    failed = [i for i, ok in enumerate(outcomes, 1) if not ok]
    print(f"DualFace batch: {len(requests) - len(failed)} of {len(requests)} jobs succeeded", flush=True)
    if failed:
        print(f"DualFace batch: failed jobs: {', '.join(map(str, failed))}", file=sys.stderr, flush=True)
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
