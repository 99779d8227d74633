"""The demo: the bundled sample speech on the complete DualFace head, in a three-quarter portrait.

Builds the scene (the head with eyes, teeth, tongue, skull and neck; a camera 35 degrees to the
subject's left; key and fill lights), then runs the headless command on it -- the same take,
layers (blinks, gaze, head motion), captions and review render an artist gets:

    .venv/bin/python scripts/demo.py [--frames docs/img] [extra headless options, e.g. --resolution 512x512]

``--frames DIR`` also saves a few frames of the movie there as small PNGs (for the docs).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

YAW_DEGREES = 35.0  # three-quarter view, the camera toward the subject's left
PITCH_DEGREES = 4.0
LENS_MM = 85.0
FRAME_HEIGHT = 0.34  # metres of the subject the frame shows: head and a little neck
FRAME_TIMES = (0.8, 1.9, 3.1, 4.3)  # seconds of the movie saved with --frames


def build_scene():
    """An empty scene with the complete head, a three-quarter portrait camera and two lights."""
    import bpy
    from mathutils import Vector

    from blender_addon import headless, review
    from blender_addon.head import add_head

    scene = headless.start_empty_scene()
    head = add_head(scene, complete=True)
    centre = Vector((0.0, -0.035, 0.0))  # just behind the face, level with the cheekbones
    data = bpy.data.cameras.new("Demo Camera")
    data.lens, data.sensor_fit, data.sensor_height = LENS_MM, "VERTICAL", 24.0
    camera = bpy.data.objects.new("Demo Camera", data)
    distance = FRAME_HEIGHT * LENS_MM / 24.0
    yaw, pitch = math.radians(YAW_DEGREES), math.radians(PITCH_DEGREES)
    toward = Vector((math.sin(yaw) * math.cos(pitch), -math.cos(yaw) * math.cos(pitch), math.sin(pitch)))
    camera.location = centre + toward * distance
    aim = centre - Vector((0.0, 0.0, 0.012))  # the face a little above the middle, clear of captions
    camera.rotation_mode = "QUATERNION"
    camera.rotation_quaternion = (aim - camera.location).to_track_quat("-Z", "Y")
    scene.collection.objects.link(camera)
    scene.camera = camera
    review.add_portrait_lights(scene, head)
    return scene, head


def save_frames(movie: Path, folder: Path, width: int = 480) -> list[Path]:
    """A few frames of the movie as small PNGs (ffmpeg)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, seconds in enumerate(FRAME_TIMES, 1):
        path = folder / f"demo_{k}.png"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-ss", str(seconds), "-i", str(movie), "-frames:v", "1",
             "-vf", f"scale={width}:-1", "-compression_level", "100", str(path)],
            check=True, timeout=60,
        )  # fmt: skip
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", default=str(ROOT / "engine" / "assets" / "sample_speech.wav"))
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--frames", type=Path, help="also save a few frames of the movie in this folder")
    args, extra = parser.parse_known_args(argv)
    import blender_addon
    from blender_addon import headless

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    movie = args.out / "demo.mp4"
    blender_addon.register()
    try:
        _, head = build_scene()
        code = headless.main(
            ["animate", "--object", head.name, "--audio", args.audio, "--emotion", "happy", "--intensity", "0.6",
             "--captions", "--render", str(movie), "--save", str(args.out / "demo.blend"), *extra]
        )  # fmt: skip
    finally:
        blender_addon.unregister()
    if code == 0 and args.frames is not None:
        for path in save_frames(movie, args.frames):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
