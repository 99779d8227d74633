"""Add-on preferences: where the engine runs, which weights it loads, and the engine set-up."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import engine_bridge, engine_setup


def addon_name() -> str:
    return __package__


def user_folder(create: bool = True) -> str:
    """The extension's user folder (survives upgrades); a plain add-on gets an equivalent folder."""
    if __package__.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user"):
        return bpy.utils.extension_path_user(__package__, create=create)
    return bpy.utils.user_resource("EXTENSIONS", path=".user/dualface", create=create)


def get(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(addon_name())
    return addon.preferences if addon is not None else None


def engine_settings(context=None, weights: str | None = None) -> engine_bridge.EngineSettings:
    prefs = get(context)
    if prefs is None:
        return engine_bridge.EngineSettings(weights=weights)
    return engine_bridge.EngineSettings(
        mode=prefs.engine_mode,
        python=bpy.path.abspath(prefs.external_python) if prefs.external_python else "",
        weights=weights or (bpy.path.abspath(prefs.weights_path) if prefs.weights_path else None),
        device=prefs.device.lower(),
    )


class DUALFACE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_mode: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Engine",
        items=[
            ("AUTO", "Automatic", "In Blender, unless an external Python is set and torch is not installed"),
            ("IN_PROCESS", "In Blender", "Inside Blender: the numpy runtime on the CPU, torch on a GPU"),
            (
                "WORKER",
                "External Python",
                "Run the engine in a separate Python (CUDA, or tools Blender lacks)",
            ),
        ],
        default="AUTO",
    )
    external_python: StringProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="External Python",
        subtype="FILE_PATH",
        description="A Python 3.11 with torch; DualFace starts its engine worker with it",
    )
    weights_path: StringProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Weights",
        subtype="FILE_PATH",
        description="A .safetensors checkpoint; empty uses the bundled weights",
    )
    device: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Device",
        items=[("AUTO", "Auto", "GPU when available"), ("CPU", "CPU", ""), ("CUDA", "CUDA", "NVIDIA GPU")],
        default="AUTO",
    )
    torch_variant: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Download",
        items=[
            ("CUDA", "NVIDIA CUDA (about 3 GB)", "Faster on NVIDIA GPUs"),
            (
                "CPU",
                "CPU (about 200 MB)",
                "Not needed for animating: the built-in numpy runtime runs on the CPU",
            ),
        ],
        default="CUDA",
    )

    def draw(self, context):
        layout = self.layout
        layout.label(text=f"Engine: {engine_bridge.describe(engine_settings(context))}")
        layout.prop(self, "engine_mode")
        if self.engine_mode != "IN_PROCESS":
            layout.prop(self, "external_python")
        layout.prop(self, "weights_path")
        layout.prop(self, "device")
        box = layout.box()
        box.label(text="Optional, for NVIDIA GPUs: Set Up Engine installs torch into DualFace's folder")
        row = box.row()
        row.prop(self, "torch_variant")
        state = engine_setup.state
        if state.running:
            if hasattr(box, "progress"):
                box.progress(factor=state.fraction, type="BAR", text=state.message)
            else:
                box.label(text=f"{state.fraction:.0%} {state.message}")
            box.operator("dualface.setup_engine_cancel", icon="CANCEL")
        else:
            row.operator("dualface.setup_engine", icon="IMPORT")
            if state.error:
                box.label(text=state.error, icon="ERROR")
            elif state.message:
                box.label(text=state.message, icon="CHECKMARK")
        if not bpy.app.online_access:
            box.label(
                text="Blender is offline: allow online access (System > Network) to download", icon="INFO"
            )


class DUALFACE_OT_setup_engine(bpy.types.Operator):
    """Download torch and the engine's packages into DualFace's user folder (needs online access)"""

    bl_idname = "dualface.setup_engine"
    bl_label = "Set Up Engine"

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(
            self,
            event,
            title="Download the DualFace engine?",
            message="pip will download torch and librosa from the internet into DualFace's folder.",
        )

    def execute(self, context):
        prefs = get(context)
        variant = prefs.torch_variant if prefs else "CUDA"
        try:
            engine_setup.start(user_folder(), variant, bpy.app.online_access)
        except (PermissionError, RuntimeError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not bpy.app.background:
            bpy.app.timers.register(_redraw_while_installing, first_interval=0.5)
        self.report({"INFO"}, "DualFace: engine set-up started")
        return {"FINISHED"}


class DUALFACE_OT_setup_engine_cancel(bpy.types.Operator):
    """Stop the engine download"""

    bl_idname = "dualface.setup_engine_cancel"
    bl_label = "Cancel Set-Up"

    def execute(self, context):
        engine_setup.cancel()
        return {"FINISHED"}


def _redraw_while_installing():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    return 0.5 if engine_setup.state.running else None


classes = (DUALFACE_AP_preferences, DUALFACE_OT_setup_engine, DUALFACE_OT_setup_engine_cancel)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    try:
        engine_setup.activate(user_folder(create=False))
    except (OSError, ValueError):
        pass  # no user folder yet: nothing installed


def unregister() -> None:
    _unregister_classes()
