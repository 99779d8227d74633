"""The review scene: the animated scene seen through a camera, with the take's audio and captions.

Text strips in the artist's own scene would replace its 3D render (Blender renders the sequencer
instead of the scene as soon as it holds a visual strip, and a scene strip cannot show its own
scene), so captions go into a companion scene 'DF Review - <scene>' that DualFace owns entirely:
a scene strip of the artist's scene, the take's sound strip and the captions as text strips
coloured by sync score (a scripted line word by word, each word in its own colour). Rendering that
scene gives an MP4 with audio and burned-in captions.

When the scene's camera does not show the animated face (no camera, the face out of frame, too
small, or hidden behind something), the review uses a DualFace portrait camera instead; the
artist's camera, objects and settings are never changed. The preview look (studio light, skin
material colours, a neutral backdrop) is applied only while rendering and restored afterwards.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from typing import cast

import bpy

from . import sequencer
from .core.captions_style import caption_label, sync_colour
from .core.word_captions import WordRow, caption_words, colour_runs, word_rows

REVIEW_OF = "dualface_review_of"  # custom property: the name of the scene a review scene shows
FRAMES_KEY = "dualface_frames"  # custom property on DualFace cameras/lights: the object they frame
ROLE_KEY = "dualface_role"  # custom property on review text strips: "caption", WORDS_ROLE or "title"
WORDS_ROLE = "caption words"  # a run of a scripted line's words in one sync colour
ROW_KEY = "dualface_row"  # custom property on a scripted line's strips: the row of words they show
SYNC_KEY = "dualface_sync"  # ... on a run of words: each word's sync score
WORD_SPANS_KEY = "dualface_word_rows"  # custom property on the review scene: what add_word_rows laid out
BACKDROP_WORLD = "DF Backdrop"
BACKDROP_COLOUR = (0.03, 0.032, 0.038)  # linear charcoal: skin stands out, an open mouth reads dark

PORTRAIT_LENS = 85.0  # mm: the classic portrait focal length, flattering and barely distorted
FACE_FILL = 0.66  # share of the frame height the face covers
FACE_RAISE = 0.06  # frame heights the face sits above centre, leaving room for the captions
PORTRAIT_YAW = math.radians(14.0)  # a slight three-quarter view shows the lips' depth
PORTRAIT_PITCH = math.radians(4.0)  # from just above the eyes, as a person would look
MIN_VISIBLE_FILL = 0.25  # a scene camera that shows the face smaller than this is not a close-up

CAPTION_HEIGHT = 0.065  # caption font size as a share of the frame height
CAPTION_CHANNEL = 3  # the bottom caption row; a caption stacked above it goes higher
CAPTION_WIDTH = 0.92  # a caption line (a row of script words) may fill this share of the frame width
TITLE_HEIGHT = 0.04
PREVIEW_AA = "OFF"  # Workbench anti-aliasing: "8" costs about 7x the render time on a CPU rasteriser


def review_scene_for(scene: bpy.types.Scene, create: bool = True) -> bpy.types.Scene | None:
    for candidate in bpy.data.scenes:
        if candidate.get(REVIEW_OF) == scene.name and candidate != scene:
            return candidate
    if not create:
        return None
    review = bpy.data.scenes.new(f"DF Review - {scene.name}"[:63])
    review[REVIEW_OF] = scene.name
    return review


def build_review(
    scene: bpy.types.Scene,
    take_meta: dict,
    captions: bool,
    camera: bpy.types.Object | None = None,
    title: str | None = None,
) -> bpy.types.Scene:
    """(Re)build the review scene for the take described by `take_meta` (see takes.META_KEY).

    `camera` overrides the scene's camera for the review only; `title` adds a small title line."""
    review = review_scene_for(scene)
    assert review is not None  # create=True
    strips = sequencer.strips_of(review)
    for strip in list(strips):
        strips.remove(strip)
    if review.get(WORD_SPANS_KEY) is not None:
        del review[WORD_SPANS_KEY]  # the rows of the take this scene showed before
    start, end = int(take_meta["start_frame"]), int(take_meta["frame_end"])
    review.render.fps, review.render.fps_base = scene.render.fps, scene.render.fps_base
    review.render.resolution_x = scene.render.resolution_x
    review.render.resolution_y = scene.render.resolution_y
    review.render.resolution_percentage = scene.render.resolution_percentage
    _set_standard_view(review)  # caption colours must come out as chosen, not tone-mapped
    review.frame_start, review.frame_end = start, end
    view = sequencer.strips_of(review).new_scene(scene.name, scene, 1, scene.frame_start)
    if (camera or scene.camera) is not None:
        view.scene_camera = camera or scene.camera
    view.volume = 0.0  # the review's own sound strip carries the take's audio exactly once
    sequencer.add_sound(review, "audio", take_meta["audio"], 2, start)
    if captions:
        add_caption_strips(review, take_meta, start)
    if title:
        add_title_strip(review, title, start, end - start + 1)
    return review


def add_caption_strips(review: bpy.types.Scene, take_meta: dict, start: int) -> int:
    """Text strips for the take's captions; returns how many. A caption that runs into the next one
    ends where the next begins, as subtitles do; only captions that start together stack (a second
    line above). A line without words is one strip coloured by its sync; a scripted line's words
    are coloured one by one (see add_word_rows)."""
    fps = float(take_meta["fps"])
    spans = []
    for caption in take_meta["captions"]:
        if caption["text"].strip():
            first = start + int(round(caption["start"] * fps))
            last = max(first + 1, start + int(round(caption["end"] * fps)))  # exclusive
            spans.append([first, last, caption])
    spans.sort(key=lambda span: span[0])
    for current, following in zip(spans, spans[1:]):
        if current[0] < following[0] < current[1]:
            current[1] = following[0]
    by_word = _word_measure(review) is not None  # stock Blender always ships its interface font
    word_spans: list[list] = []
    lines: list[list] = []
    for span in spans:
        (word_spans if by_word and caption_words(span[2]) else lines).append(span)
    plan = _ChannelPlan(review)
    for count, (first, last, caption) in enumerate(lines, 1):
        _add_line_strip(review, f"caption {count}", caption, first, last, plan.take(first, last, 1))
    count = len(lines)
    if word_spans:
        layout = {"start": start, "fps": fps, "spans": word_spans, "size": _output_size(review)}
        review[WORD_SPANS_KEY] = json.dumps(layout)
        count += add_word_rows(review, layout, plan)
    fit_captions(review)
    return count


def _add_line_strip(review, name: str, caption: dict, first: int, last: int, channel: int) -> None:
    """A whole caption line with its score, coloured by the line's sync."""
    label = caption_label(caption["text"], caption["sync"])
    strip = sequencer.add_text(review, name, label, channel, first, last - first)
    strip[ROLE_KEY] = "caption"
    strip.color = sync_colour(caption["sync"])
    strip.location = (0.5, _caption_y(channel))
    _anchor(strip, "CENTER", "BOTTOM")
    strip.wrap_width = CAPTION_WIDTH
    _legible(strip, box_alpha=0.62)


def add_word_rows(review: bpy.types.Scene, layout: dict, plan: _ChannelPlan | None = None) -> int:
    """Scripted lines word by word, each word in its sync colour, laid out for the frame's size.

    `layout`: the take's start frame and fps and the lines' [first, last) frames. Per row of words
    (core.word_captions pages a line too wide for the frame into rows): a 'row' strip with the
    whole row in black on the translucent box, and above it one strip per run of same-coloured
    words placed exactly over its words (a text strip advances glyph by glyph, so summing blf's
    glyph widths gives the pixels Blender renders). A well-synced row is a single run, so a long
    take needs about one strip per row plus one per change of colour. Returns the strips added."""
    measure = _word_measure(review)
    assert measure is not None  # callers check that the interface font is there
    plan = plan or _ChannelPlan(review)
    start, fps = int(layout["start"]), float(layout["fps"])
    frame_width, _ = _output_size(review)
    count = 0
    for first, last, caption in layout["spans"]:
        rows = word_rows(caption, measure, frame_width * CAPTION_WIDTH)
        begins = [first]
        for row in rows[1:]:
            begins.append(max(begins[-1] + 1, start + int(round(row.start * fps))))
        ends = begins[1:] + [max(last, begins[-1] + 1)]
        for row, begin, end in zip(rows, begins, ends):
            count += _add_row(review, row, begin, end, plan, measure)
    return count


def _add_row(review, row: WordRow, first: int, last: int, plan: _ChannelPlan, measure) -> int:
    runs = colour_runs(row)
    base = plan.take(first, last, 1 + len(runs))
    frame_width, _ = _output_size(review)
    left = 0.5 - measure(row.text) / (2 * frame_width)
    y, size = _caption_y(base), _font_size(review, CAPTION_HEIGHT)
    back = sequencer.add_text(review, f"row {first}", row.text, base, first, last - first)
    back[ROLE_KEY], back[ROW_KEY] = "caption", row.text
    back.color = (0.0, 0.0, 0.0, 1.0)  # hidden under the coloured words; it sizes the box
    _place_word_strip(back, left, y, size)
    _legible(back, box_alpha=0.62)
    back.use_outline = back.use_bold = False  # bold glyphs are wider than the ones measured
    for index, run in enumerate(runs, 1):
        strip = sequencer.add_text(
            review, f"words {first}.{index}", run.text, base + index, first, last - first
        )
        strip[ROLE_KEY], strip[ROW_KEY] = WORDS_ROLE, row.text
        strip[SYNC_KEY] = [word.sync for word in run.words]
        strip.color = run.colour
        _place_word_strip(strip, left + measure(run.prefix) / frame_width, y, size)
        _legible(strip, box_alpha=0.0)
        strip.use_box = strip.use_bold = False
    return 1 + len(runs)


def _place_word_strip(strip, x: float, y: float, size: int) -> None:
    strip.location = (x, y)
    _anchor(strip, "LEFT", "BOTTOM")
    strip.wrap_width = 0.0  # never wrapped: the row was measured to fit
    strip.font_size = size


def _caption_y(channel: int) -> float:
    return 0.035 if channel == CAPTION_CHANNEL else 0.145


class _ChannelPlan:
    """Which channels are busy when, so a row and its word strips get channels of their own."""

    def __init__(self, review: bpy.types.Scene) -> None:
        self._busy: dict[int, list[tuple[int, int]]] = {}
        for strip in sequencer.all_strips(review):
            self._mark(strip.channel, strip.frame_final_start, strip.frame_final_end)

    def _mark(self, channel: int, first: int, last: int) -> None:
        self._busy.setdefault(channel, []).append((first, last))

    def _free(self, channel: int, first: int, last: int) -> bool:
        return all(end <= first or begin >= last for begin, end in self._busy.get(channel, ()))

    def take(self, first: int, last: int, count: int) -> int:
        """The lowest channel from CAPTION_CHANNEL up with `count` free channels from it on."""
        base = CAPTION_CHANNEL
        while not all(self._free(base + k, first, last) for k in range(count)):
            base += 1
        if base + count - 1 > sequencer.MAX_CHANNEL:
            raise RuntimeError("the review scene has no free sequencer channels left for the captions")
        for k in range(count):
            self._mark(base + k, first, last)
        return base


def add_title_strip(review: bpy.types.Scene, title: str, start: int, length: int):
    """A small top-left line (clip, emotion) so a movie says what it shows when it is shared."""
    channel = sequencer.free_channel(review, start, start + length, above=4)
    strip = sequencer.add_text(review, "title", title, channel, start, max(1, length))
    strip[ROLE_KEY] = "title"
    strip.color = (0.92, 0.92, 0.92, 1.0)
    strip.location = (0.025, 0.965)
    _anchor(strip, "LEFT", "TOP")
    strip.wrap_width = 0.95
    _legible(strip, box_alpha=0.35)
    fit_captions(review)
    return strip


def fit_captions(review: bpy.types.Scene) -> None:
    """Text strip sizes are in output pixels: keep them a fixed share of the frame height. Rows of
    script words are laid out again when the output size changed since they were laid out."""
    for strip in sequencer.all_strips(review):
        if strip.type == "TEXT":
            share = TITLE_HEIGHT if strip.get(ROLE_KEY) == "title" else CAPTION_HEIGHT
            strip.font_size = _font_size(review, share)
    stored = review.get(WORD_SPANS_KEY)
    if not stored:
        return
    layout = json.loads(stored)
    if list(layout["size"]) == list(_output_size(review)) or _word_measure(review) is None:
        return
    strips = sequencer.strips_of(review)
    for strip in sequencer.all_strips(review):
        if ROW_KEY in strip.keys():
            strips.remove(strip)
    layout["size"] = _output_size(review)
    review[WORD_SPANS_KEY] = json.dumps(layout)
    add_word_rows(review, layout)


def _output_size(review: bpy.types.Scene) -> list[int]:
    render = review.render
    scale = render.resolution_percentage / 100
    return [int(render.resolution_x * scale), int(render.resolution_y * scale)]


def _font_size(review: bpy.types.Scene, share: float) -> int:
    return max(8, int(round(_output_size(review)[1] * share)))


_blf_fonts: dict[str, int] = {}


def _word_measure(review: bpy.types.Scene):
    """Width in output pixels of a text in a caption strip (the interface font at the caption
    size), summed glyph by glyph as the text strip lays it out; None without the font."""
    import blf

    path = _interface_font_path()
    if path is None:
        return None
    if path not in _blf_fonts:
        font_id = blf.load(path)
        if font_id < 0:
            return None
        _blf_fonts[path] = font_id
    font_id, size = _blf_fonts[path], _font_size(review, CAPTION_HEIGHT)
    widths: dict[str, float] = {}

    def measure(text: str) -> float:
        total = 0.0
        for character in text:
            if character not in widths:
                blf.size(font_id, size)
                widths[character] = blf.dimensions(font_id, character)[0]
            total += widths[character]
        return total

    return measure


def _interface_font_path() -> str | None:
    from pathlib import Path

    folder = bpy.utils.system_resource("DATAFILES", path="fonts")  # type: ignore[attr-defined]
    path = Path(folder) / "Inter.woff2" if folder else None
    return str(path) if path is not None and path.is_file() else None


def _interface_font():
    """Blender's own proportional UI font (Inter); a text strip without a font uses a monospace one."""
    path = _interface_font_path()
    if path is None:
        return None
    try:
        return bpy.data.fonts.load(path, check_existing=True)
    except (RuntimeError, OSError):
        return None


def _anchor(strip, horizontal: str, vertical: str) -> None:
    if hasattr(strip, "anchor_x"):
        strip.anchor_x, strip.anchor_y = horizontal, vertical
    if hasattr(strip, "alignment_x"):
        strip.alignment_x = horizontal


def _legible(strip, box_alpha: float) -> None:
    """A dark outline and a translucent box keep text readable on any frame."""
    strip.font = _interface_font()
    strip.use_box = True
    strip.box_color = (0.0, 0.0, 0.0, box_alpha)
    if hasattr(strip, "box_margin"):
        strip.box_margin = 0.012
    if hasattr(strip, "use_outline"):
        strip.use_outline = True
        strip.outline_color = (0.0, 0.0, 0.0, 1.0)
        strip.outline_width = 0.08
    if hasattr(strip, "use_bold"):
        strip.use_bold = strip.get(ROLE_KEY) == "caption"


# -- framing ------------------------------------------------------------------------------------


def review_camera(
    scene: bpy.types.Scene, target: bpy.types.Object, resolution: tuple[int, int]
) -> bpy.types.Object:
    """The scene's camera when it shows `target` well at this resolution, else a DualFace
    portrait camera framing it (created or re-aimed; it becomes the scene camera only when the
    scene has none). Key and fill lights are added when the scene has no light."""
    scene.view_layers[0].update()  # world matrices of objects moved since the last evaluation
    if scene.camera is not None and camera_sees(scene, scene.camera, target, resolution):
        return scene.camera
    camera = portrait_camera(scene, target, resolution)
    if scene.camera is None:
        scene.camera = camera
    if not any(o.type == "LIGHT" for o in scene.objects):
        add_portrait_lights(scene, target)
    return camera


def camera_sees(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    target: bpy.types.Object,
    resolution: tuple[int, int],
    min_fill: float = MIN_VISIBLE_FILL,
) -> bool:
    """Whether `target`'s bounds lie inside the camera's frame, cover at least `min_fill` of its
    height or width, and nothing else sits between the camera and the target's centre."""
    scene.view_layers[0].update()
    box = frame_box(scene, camera, target, resolution)
    if box is None:
        return False
    left, bottom, right, top = box
    if left < 0.0 or bottom < 0.0 or right > 1.0 or top > 1.0:
        return False
    if max(top - bottom, right - left) < min_fill:
        return False
    return not _occluded(scene, camera, target)


def frame_box(scene, camera, target, resolution) -> tuple[float, float, float, float] | None:
    """Target bounds in the camera frame as (left, bottom, right, top), 0..1 across the frame;
    None when part of it is behind the camera."""
    from bpy_extras.object_utils import world_to_camera_view

    render = scene.render
    saved = render.resolution_x, render.resolution_y, render.resolution_percentage
    render.resolution_x, render.resolution_y = resolution
    render.resolution_percentage = 100
    try:
        points = [world_to_camera_view(scene, camera, c) for c in _world_corners(target)]
    finally:
        render.resolution_x, render.resolution_y, render.resolution_percentage = saved
    if any(p.z <= camera.data.clip_start for p in points):
        return None
    xs, ys = [p.x for p in points], [p.y for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def portrait_camera(
    scene: bpy.types.Scene, target: bpy.types.Object, resolution: tuple[int, int]
) -> bpy.types.Object:
    """A camera that frames `target` (a face looking toward its local -y, up +z) as a portrait."""
    from mathutils import Vector

    name = f"DF Camera - {target.name}"[:63]
    camera = _owned(scene, "CAMERA", target)
    if camera is None:
        camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        camera[FRAMES_KEY] = target.name
        scene.collection.objects.link(camera)
    data = camera.data
    data.lens = PORTRAIT_LENS
    data.sensor_fit = "VERTICAL"
    data.sensor_height = 24.0
    data.clip_start, data.clip_end = 0.01, 500.0
    centre, axes, size = _local_frame(target)
    width, height = resolution
    frame_height_per_metre = data.sensor_height / data.lens
    distance = max(
        size["height"] / (FACE_FILL * frame_height_per_metre),
        size["width"] / (0.8 * frame_height_per_metre * width / height),
    )
    distance += size["depth"] / 2  # measured from the tip of the nose, not the middle of the head
    toward = (
        axes["x"] * (math.sin(PORTRAIT_YAW) * math.cos(PORTRAIT_PITCH))
        - axes["y"] * (math.cos(PORTRAIT_YAW) * math.cos(PORTRAIT_PITCH))
        + axes["z"] * math.sin(PORTRAIT_PITCH)
    )
    location = centre + toward * distance
    # Aim below the face so it sits above centre, clear of the captions.
    aim = centre - axes["z"] * (FACE_RAISE * frame_height_per_metre * distance)
    camera.location = location
    camera.rotation_mode = "QUATERNION"
    camera.rotation_quaternion = Vector(aim - location).to_track_quat("-Z", "Y")
    return camera


def add_portrait_lights(scene: bpy.types.Scene, target: bpy.types.Object) -> list[bpy.types.Object]:
    """A soft key (front left, above) and a dimmer fill (front right) for EEVEE and the viewport;
    Workbench renders use its studio light instead."""
    from mathutils import Vector

    centre, axes, size = _local_frame(target)
    reach = 6.0 * max(size.values())
    lights = []
    for label, side, rise, power in (("Key", -1.0, 0.6, 60.0), ("Fill", 1.0, 0.1, 20.0)):
        name = f"DF {label} Light - {target.name}"[:63]
        data = cast(bpy.types.AreaLight, bpy.data.lights.new(name, type="AREA"))
        data.energy = power * reach * reach  # W: keeps the face's exposure independent of its size
        data.size = reach * 0.8
        light = bpy.data.objects.new(name, data)
        light[FRAMES_KEY] = target.name
        direction = (axes["x"] * side - axes["y"] + axes["z"] * rise).normalized()
        light.location = centre + direction * reach
        light.rotation_mode = "QUATERNION"
        light.rotation_quaternion = Vector(centre - light.location).to_track_quat("-Z", "Y")
        scene.collection.objects.link(light)
        lights.append(light)
    return lights


def _owned(scene, kind: str, target):
    for obj in scene.objects:
        if obj.type == kind and obj.get(FRAMES_KEY) == target.name:
            return obj
    return None


def _local_frame(target):
    """World centre of the target's bounds, its world axes, and its size along them (metres)."""
    from mathutils import Vector

    corners = [Vector(c) for c in target.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    matrix = target.matrix_world
    basis = matrix.to_3x3()
    axes = {name: (basis @ Vector(axis)) for name, axis in zip("xyz", ((1, 0, 0), (0, 1, 0), (0, 0, 1)))}
    extent = high - low
    size = {
        "width": max(extent.x * axes["x"].length, 1e-4),
        "depth": max(extent.y * axes["y"].length, 1e-4),
        "height": max(extent.z * axes["z"].length, 1e-4),
    }
    return matrix @ ((low + high) / 2), {k: v.normalized() for k, v in axes.items()}, size


def _world_corners(target):
    from mathutils import Vector

    return [target.matrix_world @ Vector(c) for c in target.bound_box]


def _occluded(scene, camera, target) -> bool:
    centre, _, _ = _local_frame(target)
    origin = camera.matrix_world.translation
    ray = centre - origin
    view_layer = scene.view_layers[0]
    depsgraph = view_layer.depsgraph
    depsgraph.update()
    hit, _, _, _, obj, _ = scene.ray_cast(depsgraph, origin, ray.normalized(), distance=ray.length)
    return bool(hit) and obj is not None and obj.original.name != target.name


# -- rendering ----------------------------------------------------------------------------------


def render_review(
    review: bpy.types.Scene,
    source: bpy.types.Scene,
    filepath: str,
    resolution: tuple[int, int],
    engine: str = "WORKBENCH",
) -> None:
    """Render the review scene to an H.264/AAC MP4. The source scene's settings are restored
    afterwards; the review scene keeps its own."""
    render = review.render
    render.resolution_x, render.resolution_y = resolution
    render.resolution_percentage = 100
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0 splits images from video
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    ffmpeg = render.ffmpeg
    assert ffmpeg is not None  # always present on a scene's render settings
    ffmpeg.format = "MPEG4"
    ffmpeg.codec = "H264"
    ffmpeg.constant_rate_factor = "HIGH"
    ffmpeg.ffmpeg_preset = "REALTIME"  # the encoder is a rounding error next to the renderer
    ffmpeg.audio_codec = "AAC"
    ffmpeg.audio_channels = "MONO"
    ffmpeg.audio_bitrate = 128
    render.use_sequencer = True
    render.use_motion_blur = False
    render.filepath = filepath
    _set_standard_view(review)
    fit_captions(review)
    with preview_look(source, resolution, engine):
        review.render.engine = source.render.engine
        with bpy.context.temp_override(scene=review):
            bpy.ops.render.render(animation=True, scene=review.name)


@contextmanager
def preview_look(source: bpy.types.Scene, resolution: tuple[int, int], engine: str = "WORKBENCH"):
    """The source scene set up for a fast, readable preview while the block runs, then restored."""
    changes = _Changes()
    try:
        apply_preview_look(source, resolution, engine, changes)
        yield
    finally:
        changes.undo()


def apply_preview_look(
    scene: bpy.types.Scene,
    resolution: tuple[int, int] | None = None,
    engine: str = "WORKBENCH",
    changes: _Changes | None = None,
) -> None:
    """Workbench with a studio light and material colours, a neutral backdrop when the scene has no
    world, no motion blur, cheap anti-aliasing. Without `changes` the look stays (for a scene
    DualFace created itself, so a saved file renders like the movie)."""
    changes = changes or _Changes()
    render = scene.render
    changes.set(render, "engine", "BLENDER_WORKBENCH" if engine == "WORKBENCH" else _eevee_id())
    if resolution is not None:
        changes.set(render, "resolution_x", resolution[0])
        changes.set(render, "resolution_y", resolution[1])
        changes.set(render, "resolution_percentage", 100)
    changes.set(render, "use_motion_blur", False)
    display = scene.display
    assert display is not None  # always present on a scene
    changes.set(display, "render_aa", PREVIEW_AA)
    shading = display.shading
    for name, value in (
        ("light", "STUDIO"),
        ("studio_light", "Default"),  # soft, even key and fill
        ("color_type", "MATERIAL"),
        ("show_specular_highlight", True),
        ("show_cavity", False),
        ("show_shadows", False),
        ("show_object_outline", False),
    ):
        changes.set(shading, name, value)
    if hasattr(scene, "eevee") and hasattr(scene.eevee, "taa_render_samples"):
        changes.set(scene.eevee, "taa_render_samples", 16)
    if scene.world is None:
        changes.set(scene, "world", _backdrop_world())
    changes.set(scene.view_settings, "view_transform", "Standard")
    changes.set(scene.view_settings, "look", "None")


class _Changes:
    """Attribute changes that can be undone in reverse order."""

    def __init__(self) -> None:
        self._done: list[tuple[object, str, object]] = []

    def set(self, owner, name: str, value) -> None:
        try:
            old = getattr(owner, name)
            setattr(owner, name, value)
        except (AttributeError, TypeError, ValueError):
            return  # a setting this Blender does not have (or an unknown enum item): keep its own
        self._done.append((owner, name, old))

    def undo(self) -> None:
        while self._done:
            owner, name, old = self._done.pop()
            try:
                setattr(owner, name, old)
            except (AttributeError, TypeError, ValueError, ReferenceError):
                pass


def _backdrop_world() -> bpy.types.World:
    world = bpy.data.worlds.get(BACKDROP_WORLD)
    if world is None or world.library is not None:
        world = bpy.data.worlds.new(BACKDROP_WORLD)
    world.color = BACKDROP_COLOUR  # what Workbench shows behind the face
    if world.node_tree is not None:
        background = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None)
        if background is not None:  # EEVEE sees the same backdrop
            background.inputs["Color"].default_value = (*BACKDROP_COLOUR, 1.0)  # type: ignore[attr-defined]
    return world


def _set_standard_view(scene) -> None:
    try:
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
    except (TypeError, ValueError):
        pass


def _eevee_id() -> str:
    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()  # type: ignore[attr-defined]
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"
