"""The review scene: the animated scene seen through its camera, with the take's audio and captions.

Text strips in the artist's own scene would replace its 3D render (Blender renders the sequencer
instead of the scene as soon as it holds a visual strip, and a scene strip cannot show its own
scene), so captions go into a companion scene 'DF Review - <scene>' that DualFace owns entirely:
a scene strip of the artist's scene, the take's sound strip and one text strip per caption,
coloured by sync score. Rendering that scene gives an MP4 with audio and burned-in captions.
"""

from __future__ import annotations

import math

import bpy

from . import sequencer
from .core.captions_style import caption_label, sync_colour

REVIEW_OF = "dualface_review_of"  # custom property: the name of the scene a review scene shows
SOURCE_CAMERA = "DF_Camera"
SOURCE_LIGHT = "DF_Light"


def review_scene_for(scene: bpy.types.Scene, create: bool = True) -> bpy.types.Scene | None:
    for candidate in bpy.data.scenes:
        if candidate.get(REVIEW_OF) == scene.name and candidate != scene:
            return candidate
    if not create:
        return None
    review = bpy.data.scenes.new(f"DF Review - {scene.name}"[:63])
    review[REVIEW_OF] = scene.name
    return review


def build_review(scene: bpy.types.Scene, take_meta: dict, captions: bool) -> bpy.types.Scene:
    """(Re)build the review scene for the take described by `take_meta` (see takes.META_KEY)."""
    review = review_scene_for(scene)
    strips = sequencer.strips_of(review)
    for strip in list(strips):
        strips.remove(strip)
    start, end = int(take_meta["start_frame"]), int(take_meta["frame_end"])
    review.render.fps, review.render.fps_base = scene.render.fps, scene.render.fps_base
    review.render.resolution_x = scene.render.resolution_x
    review.render.resolution_y = scene.render.resolution_y
    review.render.resolution_percentage = scene.render.resolution_percentage
    review.frame_start, review.frame_end = start, end
    view = sequencer.strips_of(review).new_scene(scene.name, scene, 1, scene.frame_start)
    if scene.camera is not None:
        view.scene_camera = scene.camera
    view.volume = 0.0  # the review's own sound strip carries the take's audio exactly once
    sequencer.add_sound(review, "audio", take_meta["audio"], 2, start)
    if captions:
        add_caption_strips(review, take_meta, start)
    return review


def add_caption_strips(review: bpy.types.Scene, take_meta: dict, start: int) -> int:
    fps = float(take_meta["fps"])
    count = 0
    last_end = {3: -math.inf, 4: -math.inf}
    for caption in take_meta["captions"]:
        if not caption["text"].strip():
            continue
        first = start + int(round(caption["start"] * fps))
        length = max(1, int(round((caption["end"] - caption["start"]) * fps)))
        channel = 3 if last_end[3] <= first else 4  # overlapping captions stack instead of colliding
        last_end[channel] = first + length
        strip = sequencer.add_text(
            review,
            f"caption {count + 1}",
            caption_label(caption["text"], caption["sync"]),
            channel,
            first,
            length,
        )
        strip.color = sync_colour(caption["sync"])
        strip.location = (0.5, 0.04 if channel == 3 else 0.16)
        if hasattr(strip, "anchor_y"):
            strip.anchor_y = "BOTTOM"
        strip.wrap_width = 0.95
        strip.use_box = True
        strip.box_color = (0.0, 0.0, 0.0, 0.6)
        count += 1
    fit_captions(review)
    return count


def fit_captions(review: bpy.types.Scene) -> None:
    """Text strip sizes are in output pixels: keep captions at 7% of the frame height."""
    height = review.render.resolution_y * review.render.resolution_percentage / 100
    for strip in sequencer.all_strips(review):
        if strip.type == "TEXT":
            strip.font_size = max(8, int(round(height * 0.07)))


def ensure_camera_and_light(scene: bpy.types.Scene, target: bpy.types.Object) -> list[str]:
    """Frame `target` from the front (it looks toward -y) when the scene has no camera; add a light
    when it has none. Returns the names of what was created."""
    created: list[str] = []
    corners = [target.matrix_world @ _vector(c) for c in target.bound_box]
    low = [min(c[i] for c in corners) for i in range(3)]
    high = [max(c[i] for c in corners) for i in range(3)]
    centre = [(a + b) / 2 for a, b in zip(low, high)]
    size = max(high[0] - low[0], high[2] - low[2], 1e-3)
    if scene.camera is None:
        data = bpy.data.cameras.new(SOURCE_CAMERA)
        data.lens = 50.0
        camera = bpy.data.objects.new(SOURCE_CAMERA, data)
        sensor = data.sensor_width
        distance = 1.35 * size * data.lens / sensor + (high[1] - low[1]) / 2
        camera.location = (centre[0], low[1] - distance, centre[2])
        camera.rotation_euler = (math.pi / 2, 0.0, 0.0)  # looks along +y, at the face
        scene.collection.objects.link(camera)
        scene.camera = camera
        created.append(camera.name)
    if not any(o.type == "LIGHT" for o in scene.objects):
        data = bpy.data.lights.new(SOURCE_LIGHT, type="SUN")
        data.energy = 3.0
        light = bpy.data.objects.new(SOURCE_LIGHT, data)
        light.rotation_euler = (math.radians(60), 0.0, math.radians(-25))
        scene.collection.objects.link(light)
        created.append(light.name)
    return created


def render_review(
    review: bpy.types.Scene,
    source: bpy.types.Scene,
    filepath: str,
    resolution: tuple[int, int],
    engine: str = "WORKBENCH",
) -> None:
    """Render the review scene to an H.264/AAC MP4. The source scene's render settings are
    restored afterwards; the review scene keeps its own."""
    render = review.render
    render.resolution_x, render.resolution_y = resolution
    render.resolution_percentage = 100
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0 splits images from video
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format = "MPEG4"
    render.ffmpeg.codec = "H264"
    render.ffmpeg.constant_rate_factor = "MEDIUM"
    render.ffmpeg.audio_codec = "AAC"
    render.ffmpeg.audio_channels = "MONO"
    render.use_sequencer = True
    render.filepath = filepath
    fit_captions(review)
    review.render.engine = source.render.engine
    saved = (
        source.render.engine,
        source.render.resolution_x,
        source.render.resolution_y,
        source.render.resolution_percentage,
    )
    source.render.engine = "BLENDER_WORKBENCH" if engine == "WORKBENCH" else _eevee_id()
    source.render.resolution_x, source.render.resolution_y = resolution
    source.render.resolution_percentage = 100
    try:
        with bpy.context.temp_override(scene=review):
            bpy.ops.render.render(animation=True, scene=review.name)
    finally:
        (
            source.render.engine,
            source.render.resolution_x,
            source.render.resolution_y,
            source.render.resolution_percentage,
        ) = saved


def _eevee_id() -> str:
    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"


def _vector(values):
    from mathutils import Vector

    return Vector(values)
