"""Render the template face and all 52 ARKit shapes into one labelled PNG grid for a visual check.

Runs Blender as a Python module (bpy) with the Workbench engine, so it is quick (well under a
minute on 2 cores) and needs no GPU:

    .venv/bin/python scripts/contact_sheet.py --out out/rig_contact_sheet.png \
        [--view front|side|three-quarter] [--zoom face|mouth|eyes] [--weight 1.0]

`--emotions` renders the 8 emotions of the emotion layer (the face each holds in silence) at
intensities 0.3, 0.6 and 1.0, one row per intensity: docs/img/emotions.png is made this way.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES  # noqa: E402
from engine.arkit.basis import apply_arkit  # noqa: E402
from engine.face import landmarks as lm  # noqa: E402
from engine.face.template import load_template  # noqa: E402

VIEWS = {  # camera yaw around the vertical axis, degrees (0 = looking at the face)
    "front": 0.0,
    "three-quarter": 35.0,
    "side": 90.0,
}


ZOOMS = {"face": (180, 210), "mouth": (200, 200), "eyes": (270, 150)}  # zoom -> tile size in pixels

# Speech and expression combinations the motion synthesis relies on (ARKit weights).
COMBOS: tuple[tuple[str, dict[str, float]], ...] = (
    ("rest", {}),
    (
        "p/b/m jaw.15+close",
        {"jawOpen": 0.15, "mouthClose": 0.15, "mouthPressLeft": 0.3, "mouthPressRight": 0.3},
    ),
    ("jawOpen .3", {"jawOpen": 0.3}),
    ("jaw .6 + close .6", {"jawOpen": 0.6, "mouthClose": 0.6}),
    ("f/v", {"jawOpen": 0.08, "mouthRollLower": 0.6, "mouthUpperUpLeft": 0.3, "mouthUpperUpRight": 0.3}),
    ("oo", {"jawOpen": 0.15, "mouthPucker": 0.7, "mouthFunnel": 0.3}),
    ("aa", {"jawOpen": 0.45, "mouthLowerDownLeft": 0.2, "mouthLowerDownRight": 0.2}),
    (
        "ee",
        {
            "jawOpen": 0.1,
            "mouthStretchLeft": 0.4,
            "mouthStretchRight": 0.4,
            "mouthSmileLeft": 0.2,
            "mouthSmileRight": 0.2,
        },
    ),
    (
        "happy",
        {
            "mouthSmileLeft": 0.8,
            "mouthSmileRight": 0.8,
            "cheekSquintLeft": 0.5,
            "cheekSquintRight": 0.5,
            "eyeSquintLeft": 0.3,
            "eyeSquintRight": 0.3,
        },
    ),
    ("sad", {"mouthFrownLeft": 0.7, "mouthFrownRight": 0.7, "browInnerUp": 0.8, "mouthShrugLower": 0.3}),
    (
        "angry",
        {
            "browDownLeft": 0.9,
            "browDownRight": 0.9,
            "noseSneerLeft": 0.4,
            "noseSneerRight": 0.4,
            "mouthPressLeft": 0.5,
            "mouthPressRight": 0.5,
        },
    ),
    (
        "surprised",
        {
            "browInnerUp": 0.9,
            "browOuterUpLeft": 0.9,
            "browOuterUpRight": 0.9,
            "eyeWideLeft": 0.8,
            "eyeWideRight": 0.8,
            "jawOpen": 0.35,
        },
    ),
    ("blink both", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
    ("blink .5", {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5}),
)


def _weights(mapping: dict[str, float]) -> np.ndarray:
    w = np.zeros(len(ARKIT_NAMES), dtype=np.float32)
    for name, value in mapping.items():
        w[ARKIT_INDEX[name]] = value
    return w


def shape_poses(weight: float = 1.0) -> list[tuple[str, np.ndarray]]:
    """The rest face and every ARKit shape alone at ``weight``."""
    poses = [("rest", _weights({}))]
    poses += [(name, _weights({name: weight})) for name in ARKIT_NAMES]
    return poses


EMOTION_INTENSITIES = (0.3, 0.6, 1.0)


def emotion_poses(intensities: tuple[float, ...] = EMOTION_INTENSITIES) -> list[tuple[str, np.ndarray]]:
    """Each emotion's held face (expression plus the jaw it drops) at each intensity, row by row."""
    from engine.data import emotion_layer
    from engine.emotions import EMOTIONS

    poses = []
    for intensity in intensities:
        for emotion in EMOTIONS:
            curve = np.full(1, intensity, np.float32)
            weights = emotion_layer.expression(emotion, curve)[0].astype(np.float32)
            weights[ARKIT_INDEX["jawOpen"]] += float(emotion_layer.articulation_gain(emotion, curve)[2][0])
            poses.append((f"{emotion} {round(intensity * 100)}%", weights))
    return poses


def combo_poses() -> list[tuple[str, np.ndarray]]:
    return [(label, _weights(mapping)) for label, mapping in COMBOS]


def _framing(zoom: str) -> tuple[np.ndarray, float]:
    """Centre of the shot and its height in metres (the label strip is included in the height)."""
    template = load_template()
    v = template.vertices
    if zoom == "mouth":
        part = v[template.regions["lips"]]
        return part.mean(axis=0), 0.075
    if zoom == "eyes":
        part = v[np.concatenate([template.regions["eye_left"], template.regions["eye_right"]])]
        return part.mean(axis=0) + np.array([0.0, 0.0, 0.006]), 0.065
    height = float(np.ptp(v[:, 2]))
    return v.mean(axis=0) - np.array([0.0, 0.0, 0.08 * height]), 1.25 * height


def _scene(tile: tuple[int, int], yaw_degrees: float, zoom: str):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = tile
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_cavity = False
    scene.display.render_aa = "8"
    scene.world = bpy.data.worlds.new("sheet")
    scene.world.color = (0.08, 0.08, 0.09)

    template = load_template()
    mesh = bpy.data.meshes.new("face")
    mesh.from_pydata(template.vertices.tolist(), [], template.faces.tolist())
    mesh.update()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    skin = bpy.data.materials.new("skin")
    skin.diffuse_color = (0.80, 0.60, 0.50, 1.0)
    eye = bpy.data.materials.new("eye")
    eye.diffuse_color = (0.10, 0.12, 0.16, 1.0)
    mesh.materials.append(skin)
    mesh.materials.append(eye)
    # the canonical mesh covers each eye opening with skin; paint those triangles dark so blinks read
    eye_opening = set(template.regions["eye_left"]) | set(template.regions["eye_right"])
    eye_margin = (
        eye_opening - set(template.regions["eyelid_upper_left"]) - set(template.regions["eyelid_upper_right"])
    )
    eye_margin |= set(lm.EYELID_UPPER_LEFT_0) | set(lm.EYELID_UPPER_RIGHT_0)
    eye_margin -= set(lm.EYELID_LOWER_LEFT_1) | set(lm.EYELID_LOWER_RIGHT_1)
    brow = bpy.data.materials.new("brow")  # darker brows, so that their motion reads
    brow.diffuse_color = (0.30, 0.20, 0.15, 1.0)
    mesh.materials.append(brow)
    brows = (
        set(lm.BROW_UPPER_LEFT)
        | set(lm.BROW_LOWER_LEFT)
        | set(lm.BROW_UPPER_RIGHT)
        | set(lm.BROW_LOWER_RIGHT)
    )
    for polygon in mesh.polygons:
        if set(polygon.vertices) <= eye_margin:
            polygon.material_index = 1
        elif set(polygon.vertices) <= brows:
            polygon.material_index = 2
    face = bpy.data.objects.new("face", mesh)
    scene.collection.objects.link(face)

    centre, frame = _framing(zoom)
    camera_data = bpy.data.cameras.new("camera")
    camera_data.type = "ORTHO"
    camera_data.ortho_scale = frame * max(tile) / tile[1]  # Blender scales the longer side
    camera = bpy.data.objects.new("camera", camera_data)
    yaw = math.radians(yaw_degrees)
    distance = 0.6
    # face looks toward -y; a positive yaw swings the camera toward the subject's left (+x)
    camera.location = (
        float(centre[0] + distance * math.sin(yaw)),
        float(centre[1] - distance * math.cos(yaw)),
        float(centre[2]),
    )
    camera.rotation_euler = (math.pi / 2, 0.0, yaw)
    scene.collection.objects.link(camera)
    scene.camera = camera

    text_data = bpy.data.curves.new("label", type="FONT")
    text_data.size = frame * 0.06
    text_data.align_x = "CENTER"
    label = bpy.data.objects.new("label", text_data)
    text_data.materials.append(bpy.data.materials.new("ink"))
    text_data.materials[0].diffuse_color = (1.0, 1.0, 1.0, 1.0)
    label.rotation_euler = (math.pi / 2, 0.0, yaw)
    # in front of the face, at the bottom of the frame
    forward = np.array([math.sin(yaw), -math.cos(yaw), 0.0]) * 0.2
    bottom = centre[2] - 0.47 * frame
    label.location = (float(centre[0] + forward[0]), float(centre[1] + forward[1]), float(bottom))
    scene.collection.objects.link(label)
    return scene, mesh, text_data


def render_sheet(
    out: Path,
    poses: list[tuple[str, np.ndarray]],
    view: str = "front",
    zoom: str = "face",
    columns: int = 9,
    highlights: list[np.ndarray] | None = None,
) -> Path:
    """Render each ``(label, arkit_weights[52])`` pose as one tile of a grid PNG at ``out``.

    ``highlights`` (one vertex-index array per pose) paints those vertices red, to check regions.
    """
    import bpy

    template = load_template()
    tile = ZOOMS[zoom]
    scene, mesh, label = _scene(tile, VIEWS[view], zoom)
    if highlights is not None:
        paint = mesh.color_attributes.new("highlight", "FLOAT_COLOR", "POINT")
        scene.display.shading.color_type = "VERTEX"
    columns = min(columns, len(poses))
    rows = math.ceil(len(poses) / columns)
    width, height = tile
    sheet = np.zeros((rows * height, columns * width, 4), dtype=np.float32)
    sheet[...] = (0.05, 0.05, 0.05, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, weights) in enumerate(poses):
            coords = (template.vertices + apply_arkit(weights)).astype(np.float32)
            mesh.vertices.foreach_set("co", coords.ravel())
            if highlights is not None:
                colours = np.tile(np.array([0.80, 0.60, 0.50, 1.0], dtype=np.float32), (len(coords), 1))
                colours[highlights[k]] = (0.9, 0.1, 0.1, 1.0)
                paint.data.foreach_set("color", colours.ravel())
            mesh.update()
            label.body = name
            path = Path(tmp) / f"{k:02d}.png"
            scene.render.filepath = str(path)
            bpy.ops.render.render(write_still=True)
            image = bpy.data.images.load(str(path))
            pixels = np.empty(width * height * 4, dtype=np.float32)
            image.pixels.foreach_get(pixels)
            bpy.data.images.remove(image)
            r, c = divmod(k, columns)
            # Blender stores image rows bottom-up; the sheet is assembled top-down then flipped once
            sheet[r * height : (r + 1) * height, c * width : (c + 1) * width] = pixels.reshape(
                height, width, 4
            )[::-1]
    out.parent.mkdir(parents=True, exist_ok=True)
    result = bpy.data.images.new("sheet", width=sheet.shape[1], height=sheet.shape[0], alpha=False)
    result.pixels.foreach_set(sheet[::-1].ravel())
    result.filepath_raw = str(out)
    result.file_format = "PNG"
    result.save()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "rig_contact_sheet.png")
    parser.add_argument("--view", choices=sorted(VIEWS), default="front")
    parser.add_argument("--combos", action="store_true", help="render speech/expression combinations instead")
    parser.add_argument(
        "--emotions", action="store_true", help="render the 8 emotions at intensity 0.3, 0.6 and 1.0 instead"
    )
    parser.add_argument("--regions", action="store_true", help="paint each template region on the rest face")
    parser.add_argument("--columns", type=int, default=9, help="tiles per row (default 9)")
    parser.add_argument("--shapes", help="comma-separated ARKit names to render (default: all 52)")
    parser.add_argument(
        "--zoom", choices=sorted(ZOOMS), default="face", help="frame the whole face or one part"
    )
    parser.add_argument("--weight", type=float, default=1.0, help="weight of every shape (default 1)")
    args = parser.parse_args(argv)
    if not -2.0 <= args.weight <= 2.0:
        parser.error("--weight must be between -2 and 2")
    start = time.perf_counter()
    poses = combo_poses() if args.combos else shape_poses(args.weight)
    if args.emotions:
        poses = emotion_poses()
        args.columns = 8
    if args.shapes:
        wanted = [name.strip() for name in args.shapes.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(ARKIT_NAMES))
        if unknown:
            parser.error(f"unknown ARKit names {unknown}; see engine.arkit.ARKIT_NAMES")
        poses = [pose for pose in poses if pose[0] in ("rest", *wanted)]
    highlights = None
    if args.regions:
        regions = load_template().regions
        poses = [(name, _weights({})) for name in regions]
        highlights = list(regions.values())
    if args.columns < 1:
        parser.error("--columns must be at least 1")
    path = render_sheet(args.out, poses, args.view, args.zoom, args.columns, highlights)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
