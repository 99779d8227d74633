"""The DualFace tab of the 3D View sidebar."""

from __future__ import annotations

import bpy

from engine.arkit import matching

from . import engine_bridge, preferences, retargeting, review, takes, validation


class DualFaceSidebar(bpy.types.Panel):
    """Base of every DualFace panel (never registered itself): the DualFace tab of the 3D View sidebar."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DualFace"


class DualFaceSubPanel(DualFaceSidebar):
    """Base of the collapsed sections under the main DualFace panel."""

    bl_parent_id = "DUALFACE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}


class DUALFACE_PT_main(DualFaceSidebar):
    bl_label = "DualFace"
    bl_idname = "DUALFACE_PT_main"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.dualface
        layout.use_property_split = True
        layout.use_property_decorate = True  # the keyframe dots for emotion and intensity

        layout.prop(settings, "target")
        obj = settings.target or context.active_object
        _draw_target_info(layout, obj, settings.output_mode)
        layout.operator("dualface.add_head", icon="USER")
        layout.prop(settings, "audio_path")
        layout.prop(settings, "script_text")
        layout.prop(settings, "script_block")
        layout.prop(settings, "language")
        layout.prop(settings, "emotion")
        layout.prop(settings, "intensity")
        layout.prop(settings, "output_mode")
        row = layout.row(heading="Start")
        row.prop(settings, "use_scene_start", text="Scene Start")
        sub = row.row()
        sub.active = not settings.use_scene_start
        sub.prop(settings, "start_frame", text="")
        fps = scene.render.fps / scene.render.fps_base
        layout.label(text=f"Frame rate: {fps:g} fps (from the scene)")
        layout.prop(settings, "captions")
        layout.prop(settings, "show_overlay")
        row = layout.row(heading="Layers")
        for name in ("layer_blinks", "layer_gaze", "layer_head"):
            row.prop(settings, name, toggle=True)
        if settings.layer_gaze:
            layout.prop(settings, "gaze_target")

        job = context.window_manager.dualface_job
        if job.running:
            if hasattr(layout, "progress"):
                layout.progress(factor=job.progress, type="BAR", text=job.status)
            else:
                layout.label(text=job.status)
            layout.operator("dualface.cancel", icon="CANCEL")
        else:
            layout.operator("dualface.generate", icon="PLAY_SOUND")

        found = takes.active_take(obj) if obj is not None and obj.type == "MESH" else None
        if found is not None:
            action, meta = found
            box = layout.box()
            box.label(text=f"Take: {action.name} ({meta['mode'].lower()})", icon="ACTION")
            if meta.get("previous_action"):
                box.operator("dualface.restore_previous", icon="LOOP_BACK")
            if review.review_scene_for(scene, create=False) is not None:
                box.operator("dualface.open_review", icon="SEQUENCE")
        status = engine_bridge.describe(preferences.engine_settings(context))
        layout.label(text=f"Engine: {status}", icon="INFO")
        if settings.script_text.strip() or settings.script_block is not None:
            layout.label(text=_script_status(preferences.engine_settings(context)), icon="TEXT")


class DUALFACE_PT_style(DualFaceSubPanel):
    bl_label = "Speaker Style"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.dualface
        for name in ("articulation", "jaw_ratio", "lip_rounding", "smile_bias"):
            layout.prop(settings, name)


def _draw_target_info(layout, obj, requested: str) -> None:
    if obj is None or obj.type != "MESH":
        layout.label(text="Pick a mesh, or add the DualFace head", icon="ERROR")
        return
    key = obj.data.shape_keys
    names = [b.name for b in key.key_blocks] if key else []
    matched = matching.match_arkit_keys(names, retargeting.arkit_overrides(obj))
    try:
        mode = matching.resolve_output_mode(requested, matched)
    except ValueError:
        layout.label(text="No ARKit-named shape keys on this mesh", icon="ERROR")
        return
    if mode == matching.ARKIT:
        layout.label(text=f"ARKit keys: {len(matched)} of 52 matched", icon="SHAPEKEY_DATA")
    elif len(obj.data.vertices) == validation.template_vertex_count() or retargeting.can_retarget(obj):
        layout.label(text=f"Vertex mode ({len(obj.data.vertices)} vertices)", icon="MESH_DATA")
    else:
        layout.label(text="Vertex mode: the first take fits DualFace to this mesh", icon="MESH_DATA")


CLASSES = (DUALFACE_PT_main, DUALFACE_PT_style)
register, unregister = bpy.utils.register_classes_factory(CLASSES)


def _script_status(settings) -> str:
    """What script mode uses with this engine setup, and what is missing (engine.script.status)."""
    from engine.script.status import describe_script_tools

    worker = engine_bridge.resolve_engine_mode(settings, raise_error=False) == engine_bridge.WORKER
    return describe_script_tools(through_worker=worker)
