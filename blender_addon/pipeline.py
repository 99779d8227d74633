"""One take from request to scene, in three steps the UI and the headless command share.

prepare (main thread: every check, nothing written) -> generate (any thread: the head's fit when
one is needed, then the engine; no bpy) -> apply (main thread: the take is written). The Generate
operator runs `generate` on a worker thread; headless and background mode call all three in a row.

A mesh that is not the DualFace template and has no ARKit keys is animated in vertex mode through
the retargeting correspondence: the first take fits the template to it (cached on disk, so later
takes start at once). Teeth, tongue and eyes that are separate meshes move in the same take.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

import bpy
import numpy as np

from engine.arkit.matching import AUTO, VERTEX
from engine.request import AnimateRequest, RequestError

from . import engine_bridge, retarget_ops, retargeting, review, take_layers, takes
from .core import timing
from .validation import (
    AudioInfo,
    InputError,
    Target,
    check_audio,
    check_editable_mesh,
    check_frames,
    check_target,
    mesh_of,
    template_vertex_count,
)


@dataclass
class Prepared:
    """A checked take on its way into the scene: the engine request and where its result goes."""

    scene: bpy.types.Scene
    target: Target
    audio: AudioInfo
    start_frame: int
    request: AnimateRequest  # with the frame rate settled
    settings: engine_bridge.EngineSettings
    captions: bool
    notes: list[str] = field(default_factory=list)
    # The head's geometry when this take must fit it first (copied here, fitted in `generate`).
    fit: retarget_ops.FitInputs | None = None
    correspondence: object | None = None  # engine.retarget.Correspondence once fitted
    gaze_target: bpy.types.Object | None = None  # where the eyes look; None: the scene's Look At


def prepare(
    scene: bpy.types.Scene,
    obj,
    request: AnimateRequest | str,
    *,
    start_frame: int | None = None,
    mode: str = AUTO,
    captions: bool = False,
    settings: engine_bridge.EngineSettings | None = None,
) -> Prepared:
    """Validate everything a take needs; raises InputError / EngineError and changes nothing.

    `request` is what the engine is asked (an audio path alone means the defaults); a request
    without a frame rate gets the engine rate nearest the scene's."""
    settings = settings or engine_bridge.EngineSettings()
    target = resolve_target(obj, mode)
    try:
        request = AnimateRequest(audio=request) if isinstance(request, str) else request
        if request.fps is None:
            request = dataclasses.replace(request, fps=timing.engine_rate_for(takes.scene_fps(scene)))
    except RequestError as error:
        raise InputError(str(error)) from None
    audio = check_audio(request.audio)
    start = scene.frame_start if start_frame is None else int(start_frame)
    check_frames(scene, start, audio.duration)
    try:
        engine_bridge.resolve_weights(settings.weights)
        engine_bridge.resolve_engine_mode(settings)
    except engine_bridge.EngineError as error:
        raise InputError(str(error)) from None
    request = dataclasses.replace(request, audio=str(audio.path))
    prepared = Prepared(scene, target, audio, start, request, settings, captions)
    prepared.fit = _fit_needed(scene, target)
    if prepared.fit is not None and _needs_transfer(target):
        _check_fittable(prepared.fit)
    return prepared


def resolve_target(obj, mode: str) -> Target:
    """check_target with what the retargeting modules know (the user's ARKit table); any mesh can
    take vertex output, because a take fits the template to it when it has no fit yet."""
    return check_target(obj, mode, retargetable=_is_mesh, arkit_overrides=retargeting.arkit_overrides(obj))


def _is_mesh(obj) -> bool:
    return obj is not None and obj.type == "MESH"


def _needs_transfer(target: Target) -> bool:
    """Vertex output on a mesh that is not the template itself goes through a correspondence."""
    return target.mode == VERTEX and not is_template_shape(target.obj)


def is_template_shape(obj) -> bool:
    """The DualFace template, recognised by its shape (size, landmark layout, finite coordinates) and
    not its vertex count: a scaled, rotated or damaged copy goes through the fit (or is refused)."""
    from engine.face.template_shape import is_template_shape as matches

    mesh = mesh_of(obj)
    if len(mesh.vertices) != template_vertex_count():
        return False
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return matches(co.reshape(-1, 3))


def _fit_needed(scene, target: Target) -> retarget_ops.FitInputs | None:
    """The head's geometry when the take needs a fit it does not have yet, else None.

    Needed for vertex output on a foreign mesh, and for the separate parts (teeth, eyes) of the
    template head, whose fit is cheap and always succeeds. A foreign ARKit rig is never fitted
    behind the user's back (a failure would block a take that does not need it): fit it with
    *Fit DualFace to Mesh* to animate its teeth.
    """
    obj = target.obj
    if retarget_ops.correspondence_for(obj) is not None:
        return None
    if _needs_transfer(target):
        return retarget_ops.fit_inputs(obj)
    if is_template_shape(obj) and retarget_ops.part_candidates(obj, scene.objects):
        return retarget_ops.fit_inputs(obj)
    return None


def _fit_failed(name: str, error) -> InputError:
    return InputError(
        f"vertex output animates the {template_vertex_count()}-vertex DualFace head, and DualFace "
        f"could not be fitted to '{name}': {error} -- or give the mesh ARKit shape keys (jawOpen, ...)"
    )


def _check_fittable(fit: retarget_ops.FitInputs) -> None:
    """The cheap part of the fit's checks (size, finite, triangles), before the engine starts."""
    from engine.retarget import RetargetError
    from engine.retarget.mesh import check_mesh

    try:
        check_mesh(fit.world, fit.triangles, "the mesh")
    except RetargetError as error:
        raise _fit_failed(fit.name, error) from None


def fit_head(prepared: Prepared) -> None:
    """Fit the template to the head when the take needs it (no bpy: any thread; cached on disk)."""
    if prepared.fit is None or prepared.correspondence is not None:
        return
    from engine.retarget import RetargetError

    try:
        prepared.correspondence = retarget_ops.fit_correspondence(prepared.fit)
    except RetargetError as error:
        if _needs_transfer(prepared.target):
            raise _fit_failed(prepared.fit.name, error) from None
        # Only the separate parts needed the fit: the take goes on without them.
        prepared.notes.append(f"teeth/eyes not animated: DualFace could not be fitted to the head ({error})")
        prepared.fit = None


def generate(prepared: Prepared, progress=None, cancel=None):
    """The slow part; safe off the main thread (touches no Blender data)."""
    fit_head(prepared)
    lips = dataclasses.replace(prepared.request, layers=())  # layers: made at the scene's rate in apply
    return engine_bridge.animate(lips, prepared.settings, progress=progress, cancel=cancel)


def apply(prepared: Prepared, animation) -> takes.TakeResult:
    scene = prepared.scene
    animation = timing.resample_animation(animation, takes.scene_fps(scene))
    fit_head(prepared)  # a no-op after `generate`
    obj = prepared.target.obj
    corr = prepared.correspondence
    if corr is None:
        corr = retarget_ops.correspondence_for(obj)
    wanted = getattr(prepared.request, "layers", ())
    layers = take_layers.compute_layers_for(prepared.request, animation) if wanted else None
    offsets = None
    if _needs_transfer(prepared.target) or (
        prepared.target.mode == VERTEX and len(mesh_of(obj).vertices) != animation.offsets.shape[1]
    ):
        if corr is None:
            raise InputError(f"'{obj.name}' has no DualFace fit: use Fit DualFace to Mesh, then Generate")
        offsets = retarget_ops.vertex_offsets_for(obj, _lips_only(animation, layers), corr)
    parts = _part_motion(scene, obj, animation, corr)
    with _fit_known_to_layers(obj, prepared.correspondence if layers is not None else None):
        result = takes.write_take(
            scene,
            prepared.target,
            animation,
            prepared.audio,
            prepared.start_frame,
            prepared.captions,
            offsets,
            parts=parts,
            layers=layers,
            gaze_target=prepared.gaze_target
            or getattr(getattr(scene, "dualface", None), "gaze_target", None),
        )
    if layers is not None:
        fitted = offsets is not None
        moving = [motion.obj for motion in parts]
        result.notes.extend(
            take_layers.layer_notes(obj, result.action, layers, result.layers, fitted, moving)
        )
    result.notes.extend(prepared.notes)
    result.notes.extend(animation.meta.get("notes", []))  # the engine's: a script picked up, unaligned words
    if prepared.correspondence is not None:
        retarget_ops.remember_fit(obj, prepared.correspondence)
    if prepared.captions:
        meta = takes.take_metadata(bpy.data.actions[result.action])
        if meta is not None:  # always: the take was just written with its metadata
            resolution = (scene.render.resolution_x, scene.render.resolution_y)
            camera = review.review_camera(scene, obj, resolution)  # the review must show the face
            review.build_review(scene, meta, captions=True, camera=camera)
    return result


def _lips_only(animation, layers):
    """The take without the channels the layers own (they get keys of their own), as the template
    head's lips leave them out: a fitted head's lips carry the rest through its fit."""
    if layers is None or not layers.owned_channels():
        return animation
    owned = take_layers.layer_offsets(layers, np.asarray(animation.arkit, np.float32))
    return dataclasses.replace(animation, offsets=np.asarray(animation.offsets, np.float32) - owned)


@contextlib.contextmanager
def _fit_known_to_layers(obj, corr):
    """A fit made for this take, tied to the mesh while the take is written (the layers find the
    eyes and carry their keys through it); untied again if writing the take fails."""
    if corr is None:
        yield
        return
    before = obj.get(retarget_ops.FIT_PROPERTY)
    retarget_ops.remember_fit(obj, corr)
    try:
        yield
    except BaseException:
        if before is None:
            del obj[retarget_ops.FIT_PROPERTY]
        else:
            obj[retarget_ops.FIT_PROPERTY] = before
        raise


def _part_motion(scene, head, animation, corr) -> list[takes.PartMotion]:
    """Teeth and tongue riding the jaw, eyes held rigid: the head's separate meshes in this take."""
    if corr is None:
        return []
    motions = []
    for obj, part in retarget_ops.find_parts(head, scene.objects, corr):
        try:
            check_editable_mesh(obj)
        except InputError as error:
            raise InputError(f"{error} (or set its DualFace Part to Ignore)") from None
        offsets = retarget_ops.part_offsets_for(obj, head, animation, corr, part)
        if offsets is not None:
            motions.append(takes.PartMotion(obj, part, offsets))
    return motions


def run(prepared: Prepared, progress=None, cancel=None) -> takes.TakeResult:
    """All steps synchronously (headless, background mode, scripts)."""
    return apply(prepared, generate(prepared, progress, cancel))


def scene_schedule(scene: bpy.types.Scene, start_frame: int, duration: float, emotion: str, intensity: float):
    """The panel's emotion and intensity over the take, from their F-curves when keyframed.

    Returns a plain emotion name when nothing is animated (the engine's cheapest form)."""
    from . import keyframes
    from .core.emotion_items import EMOTION_NAMES

    emotion_curve = keyframes.find_fcurve(scene, "dualface.emotion")
    intensity_curve = keyframes.find_fcurve(scene, "dualface.intensity")
    if emotion_curve is None and intensity_curve is None:
        return emotion, float(intensity)
    fps = takes.scene_fps(scene)
    n_frames = max(1, int(duration * fps) + 1)
    names, values = [], []
    for i in range(n_frames):
        frame = start_frame + i
        if emotion_curve is not None:
            index = int(round(emotion_curve.evaluate(frame)))
            names.append(EMOTION_NAMES[min(max(index, 0), len(EMOTION_NAMES) - 1)])
        else:
            names.append(emotion)
        values.append(
            float(intensity_curve.evaluate(frame)) if intensity_curve is not None else float(intensity)
        )
    return timing.reduce_schedule(names, values, fps), 1.0
