"""Operators: Generate (threaded with a progress bar, synchronous in background mode), Cancel,
Add DualFace Head, Restore Previous Action, Open Review Scene.

Generate is a modal operator driven by a window timer: the engine runs on a worker thread, the
timer polls its progress, and the take is written on the main thread when it is done. Being a
REGISTER/UNDO operator, the whole take (action, keys, strips, markers, review scene) is one undo
step.
"""

from __future__ import annotations

import threading

import bpy

from engine.request import AnimateRequest, RequestError

from . import engine_bridge, pipeline, preferences, review, takes
from .head import add_head
from .validation import InputError, check_audio


class _Job:
    """A take being generated on a worker thread."""

    def __init__(self, prepared: pipeline.Prepared) -> None:
        self.prepared = prepared
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.progress = 0.0
        self.animation = None
        self.error: str | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.animation = pipeline.generate(self.prepared, progress=self._on_progress, cancel=self.cancel)
        except engine_bridge.TakeCancelled:
            self.cancelled = True
        except (engine_bridge.EngineError, InputError) as error:  # InputError: the head's fit failed
            self.error = str(error)
        except Exception as error:  # noqa: BLE001 - any engine failure must reach the user
            self.error = f"the engine failed: {type(error).__name__}: {error}"
        finally:
            self.done.set()

    def _on_progress(self, fraction: float) -> None:
        self.progress = float(fraction)


_job: _Job | None = None


def prepare_from_panel(context) -> pipeline.Prepared:
    """The panel's settings as a validated take request (raises InputError, writes nothing)."""
    scene = context.scene
    settings = scene.dualface
    obj = settings.target or context.active_object
    pipeline.resolve_target(obj, settings.output_mode)  # before the audio: the likelier mistake
    audio_path = bpy.path.abspath(settings.audio_path) if settings.audio_path.strip() else ""
    audio = check_audio(audio_path)
    start = scene.frame_start if settings.use_scene_start else settings.start_frame
    emotion, intensity = pipeline.scene_schedule(
        scene, start, audio.duration, settings.emotion.lower(), settings.intensity
    )
    try:
        request = AnimateRequest(
            audio_path,
            emotion=emotion,
            intensity=intensity,
            style=settings.style(),
            layers=settings.layers(),
            text=settings.script(),
            language=settings.language.lower(),
        )
    except RequestError as error:
        raise InputError(str(error)) from None
    return pipeline.prepare(
        scene,
        obj,
        request,
        start_frame=start,
        mode=settings.output_mode,
        captions=settings.captions,
        settings=preferences.engine_settings(context),
    )


def _report_result(operator, result: takes.TakeResult) -> None:
    moving = [name for name, info in result.parts.items() if info.get("action")]
    operator.report(
        {"WARNING"} if result.notes else {"INFO"},
        f"DualFace: {result.action} ({result.mode.lower()}, frames {result.frame_start}-{result.frame_end})"
        + (f"; parts: {', '.join(moving)}" if moving else "")
        + "".join(f"; {note}" for note in result.notes),
    )


class DUALFACE_OT_generate(bpy.types.Operator):
    """Animate the target mesh from the audio file as a new take (one undo step removes it)"""

    bl_idname = "dualface.generate"
    bl_label = "Generate Take"
    bl_options = {"REGISTER", "UNDO"}

    _timer = None

    @classmethod
    def poll(cls, context):
        return _job is None and context.scene is not None

    def execute(self, context):
        """Synchronous: background mode, scripts, and redo."""
        try:
            prepared = prepare_from_panel(context)
            result = pipeline.run(prepared)
        except (InputError, engine_bridge.EngineError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        except engine_bridge.TakeCancelled:
            return {"CANCELLED"}
        _report_result(self, result)
        return {"FINISHED"}

    def invoke(self, context, event):
        global _job
        if bpy.app.background:
            return self.execute(context)
        try:
            prepared = prepare_from_panel(context)
        except InputError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _job = _Job(prepared)
        _job.thread.start()
        state = context.window_manager.dualface_job
        state.running, state.progress, state.status = True, 0.0, "loading the engine"
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if _job is None:
            return self._finish(context, {"CANCELLED"})
        if event.type == "ESC":
            _job.cancel.set()
            return {"RUNNING_MODAL"}  # consumed: Esc means "stop the take", nothing else
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = context.window_manager.dualface_job
        state.progress = _job.progress
        state.status = "cancelling" if _job.cancel.is_set() else f"generating {_job.progress:.0%}"
        _redraw_panels(context)
        if not _job.done.is_set():
            return {"RUNNING_MODAL"}
        if _job.cancelled:
            self.report({"WARNING"}, "DualFace: take cancelled; nothing was changed")
            return self._finish(context, {"CANCELLED"})
        if _job.error:
            self.report({"ERROR"}, _job.error)
            return self._finish(context, {"CANCELLED"})
        try:
            prepared = _job.prepared
            prepared.target = pipeline.resolve_target(prepared.target.obj, context.scene.dualface.output_mode)
            result = pipeline.apply(prepared, _job.animation)
        except ReferenceError:
            self.report(
                {"ERROR"}, "the target mesh was deleted while the take was generated; nothing was changed"
            )
            return self._finish(context, {"CANCELLED"})
        except InputError as error:
            self.report({"ERROR"}, str(error))
            return self._finish(context, {"CANCELLED"})
        _report_result(self, result)
        return self._finish(context, {"FINISHED"})

    def _finish(self, context, outcome):
        global _job
        _job = None
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        state = context.window_manager.dualface_job
        state.running, state.progress, state.status = False, 0.0, ""
        _redraw_panels(context)
        return outcome


class DUALFACE_OT_cancel(bpy.types.Operator):
    """Stop the take being generated; nothing is written"""

    bl_idname = "dualface.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _job is not None

    def execute(self, context):
        _job.cancel.set()
        return {"FINISHED"}


class DUALFACE_OT_add_head(bpy.types.Operator):
    """Add the DualFace template face (UVs, material) and make it the target"""

    bl_idname = "dualface.add_head"
    bl_label = "Add DualFace Head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        if context.mode != "OBJECT":
            self.report({"ERROR"}, "switch to Object Mode to add the DualFace head")
            return {"CANCELLED"}
        obj = add_head(context.scene, location=tuple(context.scene.cursor.location), complete=True)
        context.scene.dualface.target = obj
        return {"FINISHED"}


class DUALFACE_OT_restore_previous(bpy.types.Operator):
    """Put back the action the shape keys had before this take (the take stays in the file)"""

    bl_idname = "dualface.restore_previous"
    bl_label = "Restore Previous Action"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.scene.dualface.target or context.active_object
        try:
            name = takes.restore_previous_action(obj)
        except InputError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"DualFace: restored {name}")
        return {"FINISHED"}


class DUALFACE_OT_open_review(bpy.types.Operator):
    """Switch this window to the review scene (the animation with audio and captions as text strips)"""

    bl_idname = "dualface.open_review"
    bl_label = "Open Review Scene"

    @classmethod
    def poll(cls, context):
        return context.window is not None and review.review_scene_for(context.scene, create=False) is not None

    def execute(self, context):
        context.window.scene = review.review_scene_for(context.scene, create=False)
        return {"FINISHED"}


def _redraw_panels(context) -> None:
    screen = context.screen
    if screen is None:
        return
    for area in screen.areas:
        if area.type == "VIEW_3D":
            area.tag_redraw()


classes = (
    DUALFACE_OT_generate,
    DUALFACE_OT_cancel,
    DUALFACE_OT_add_head,
    DUALFACE_OT_restore_previous,
    DUALFACE_OT_open_review,
)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()


def unregister() -> None:
    global _job
    if _job is not None:
        _job.cancel.set()
        _job = None
    _unregister_classes()
