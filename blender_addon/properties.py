"""Scene settings of the DualFace panel and the window-manager state of a running take.

Emotion and intensity are animatable: keyframe them on the timeline and the engine receives
them as a schedule sampled over the take (see pipeline.scene_schedule).
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from engine.data.sentences import LANGUAGE_NAMES

from .core.emotion_items import enum_items


def _is_mesh(_self, obj) -> bool:
    return obj.type == "MESH"


class DUALFACE_PG_settings(bpy.types.PropertyGroup):
    target: PointerProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Target",
        type=bpy.types.Object,
        poll=_is_mesh,
        description="Mesh to animate (the active mesh when empty)",
    )
    audio_path: StringProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Audio", subtype="FILE_PATH", description="Voice recording (wav, flac, ogg, mp3)"
    )
    script_text: StringProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Script",
        description="What the recording says (optional): lip contacts land on its words and the "
        "captions spell them. Empty: a .txt beside the audio, if any",
    )
    script_block: PointerProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Script Text",
        type=bpy.types.Text,
        description="A Text datablock holding the script (wins over the Script field)",
    )
    language: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Language",
        items=[
            ("AUTO", "Auto", "From the script when unambiguous, else English"),
            *((code.upper(), name, "") for code, name in LANGUAGE_NAMES.items()),
        ],
        default="AUTO",
        description="Language of the speech",
    )
    emotion: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Emotion",
        items=enum_items(),
        default="NEUTRAL",
        description="Emotion of the performance; keyframe it to change emotion during the take",
    )
    intensity: FloatProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Intensity",
        min=0.0,
        max=1.0,
        default=1.0,
        subtype="FACTOR",
        description="Strength of the emotion; keyframable",
    )
    articulation: FloatProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Articulation", min=0.0, max=2.0, default=1.0, description="Overall size of speech movements"
    )
    jaw_ratio: FloatProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Jaw vs Lips",
        min=0.0,
        max=1.0,
        default=0.5,
        subtype="FACTOR",
        description="Share of mouth opening done by the jaw rather than the lips",
    )
    lip_rounding: FloatProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Lip Rounding", min=0.0, max=2.0, default=1.0, description="Funnel and pucker on rounded sounds"
    )
    smile_bias: FloatProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Resting Smile",
        min=-1.0,
        max=1.0,
        default=0.0,
        description="Mouth-corner set: positive smiles, negative frowns",
    )
    use_scene_start: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Use Scene Start", default=True, description="Start the take at the scene's first frame"
    )
    start_frame: IntProperty(name="Start Frame", default=1, description="First frame of the take")  # type: ignore[valid-type]  # Blender property annotation
    output_mode: EnumProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Output",
        items=[
            ("AUTO", "Auto", "ARKit shape keys when the mesh has them, else vertex mode"),
            ("ARKIT", "ARKit Keys", "Keyframe the mesh's existing ARKit-named shape keys"),
            ("VERTEX", "Vertex", "A compact basis of DF_ shape keys reproducing the engine's face exactly"),
        ],
        default="AUTO",
    )
    captions: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Captions", default=True, description="Caption markers, review scene and viewport overlay"
    )
    show_overlay: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Caption Overlay", default=True, description="Show the current caption in the viewport"
    )
    layer_blinks: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Blinks", default=True, description="Blink layer: its own NLA track, mute it to drop the blinks"
    )
    layer_gaze: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Gaze", default=True, description="Eye movement layer (saccades, glances, a target to look at)"
    )
    layer_head: BoolProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Head", default=True, description="Head nods, turns and brow raises that follow the voice"
    )
    gaze_target: PointerProperty(  # type: ignore[valid-type]  # Blender property annotation
        name="Look At", type=bpy.types.Object, description="Object the eyes follow (empty: the camera's way)"
    )

    def layers(self) -> tuple[str, ...]:
        """The optional layers switched on (engine.layers.OPTIONAL_LAYERS)."""
        return tuple(name for name in ("blinks", "gaze", "head") if getattr(self, f"layer_{name}"))

    def script(self) -> str | None:
        """The take's script: the Text datablock, else the field; None lets the engine use a .txt
        beside the audio."""
        if self.script_block is not None:
            return self.script_block.as_string()
        return self.script_text if self.script_text.strip() else None

    def style(self) -> dict[str, float]:
        return {
            "articulation": self.articulation,
            "jaw_ratio": self.jaw_ratio,
            "lip_rounding": self.lip_rounding,
            "smile_bias": self.smile_bias,
        }


class DUALFACE_PG_job(bpy.types.PropertyGroup):
    """Live state of a take being generated (window manager: never saved, never undone)."""

    running: BoolProperty(default=False)  # type: ignore[valid-type]  # Blender property annotation
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")  # type: ignore[valid-type]  # Blender property annotation
    status: StringProperty(default="")  # type: ignore[valid-type]  # Blender property annotation


classes = (DUALFACE_PG_settings, DUALFACE_PG_job)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    # Properties registered at run time: no stub can know them.
    bpy.types.Scene.dualface = PointerProperty(type=DUALFACE_PG_settings)  # type: ignore[attr-defined]
    bpy.types.WindowManager.dualface_job = PointerProperty(type=DUALFACE_PG_job)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.WindowManager.dualface_job  # type: ignore[attr-defined]
    del bpy.types.Scene.dualface  # type: ignore[attr-defined]
    _unregister_classes()
