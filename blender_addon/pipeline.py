"""One take from request to scene, in three steps the UI and the headless command share.

prepare (main thread: every check, nothing written) -> generate (any thread: the engine, no bpy)
-> apply (main thread: the take is written). The Generate operator runs `generate` on a worker
thread; headless and background mode call all three in a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy

from . import engine_bridge, retargeting, review, takes
from .core import timing
from .core.arkit_match import VERTEX
from .validation import AudioInfo, InputError, Target, check_audio, check_frames, check_target


@dataclass
class Prepared:
    scene: bpy.types.Scene
    target: Target
    audio: AudioInfo
    start_frame: int
    job: engine_bridge.EngineJob
    settings: engine_bridge.EngineSettings
    captions: bool
    notes: list[str] = field(default_factory=list)


def prepare(
    scene: bpy.types.Scene,
    obj,
    audio_path: str,
    *,
    emotion: str | list = "neutral",
    intensity: float = 1.0,
    style: dict | None = None,
    start_frame: int | None = None,
    mode: str = "AUTO",
    captions: bool = False,
    settings: engine_bridge.EngineSettings | None = None,
) -> Prepared:
    """Validate everything a take needs; raises InputError / EngineError and changes nothing."""
    settings = settings or engine_bridge.EngineSettings()
    target = resolve_target(obj, mode)
    audio = check_audio(audio_path)
    start = scene.frame_start if start_frame is None else int(start_frame)
    check_frames(scene, start, audio.duration)
    try:
        engine_bridge.resolve_weights(settings.weights)
        engine_bridge.choose_mode(settings)
    except engine_bridge.EngineError as error:
        raise InputError(str(error)) from None
    fps = takes.scene_fps(scene)
    job = engine_bridge.EngineJob(
        audio=str(audio.path),
        fps=timing.engine_rate_for(fps),
        emotion=emotion,
        intensity=float(intensity),
        style=dict(style or {}),
    )
    return Prepared(scene, target, audio, start, job, settings, captions)


def resolve_target(obj, mode: str) -> Target:
    """check_target with what the retargeting modules know (fitted heads, the user's ARKit table)."""
    return check_target(
        obj, mode, retargetable=retargeting.can_retarget, arkit_overrides=retargeting.arkit_overrides(obj)
    )


def generate(prepared: Prepared, progress=None, cancel=None):
    """The slow part; safe off the main thread (touches no Blender data)."""
    return engine_bridge.animate(prepared.job, prepared.settings, progress=progress, cancel=cancel)


def apply(prepared: Prepared, animation) -> takes.TakeResult:
    scene = prepared.scene
    animation = timing.resample_animation(animation, takes.scene_fps(scene))
    offsets = None
    obj = prepared.target.obj
    if prepared.target.mode == VERTEX and len(obj.data.vertices) != animation.offsets.shape[1]:
        offsets = retargeting.vertex_offsets_for(obj, animation)
        if offsets is None:
            raise InputError(f"no retargeting module could map the take onto '{obj.name}'")
    result = takes.write_take(
        scene, prepared.target, animation, prepared.audio, prepared.start_frame, prepared.captions, offsets
    )
    if prepared.captions:
        action = bpy.data.actions[result.action]
        review.build_review(scene, takes.take_metadata(action), captions=True)
    return result


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
