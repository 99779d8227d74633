"""The "Any Head" sub-panel: fit, ARKit shape keys, the ARKit mapping table and export."""

from __future__ import annotations

import bpy

from . import retarget_ops
from .panel import DualFaceSubPanel

MAX_MISSING_SHOWN = 12


class DUALFACE_UL_arkit_map(bpy.types.UIList):
    """One row per ARKit shape: its name and the mesh's key for it (editable)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        keys = data.data.shape_keys if data.type == "MESH" else None
        row = layout.row(align=True)
        row.label(text=item.arkit_name)
        if keys is not None:
            row.prop_search(item, "key_name", keys, "key_blocks", text="")
        else:
            row.prop(item, "key_name", text="")


class DUALFACE_PT_retarget(DualFaceSubPanel):
    bl_label = "Any Head (Retarget, ARKit)"
    bl_idname = "DUALFACE_PT_retarget"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            layout.label(text="Select a head mesh", icon="INFO")
            return
        fitted = retarget_ops.correspondence_for(obj) is not None
        layout.label(
            text="Fitted: takes and ARKit keys carry over" if fitted else "Not fitted yet (a take fits it)",
            icon="CHECKMARK" if fitted else "DOT",
        )
        layout.operator("dualface.fit_mesh", icon="MOD_SHRINKWRAP")
        layout.operator("dualface.make_arkit_keys", icon="SHAPEKEY_DATA")
        head = getattr(obj, "dualface_head", None)
        if head is not None:
            box = layout.box()
            box.label(text=f"Part of {head.name}: {retarget_ops.part_of(obj, head)}")
            box.prop(obj, "dualface_part")

        box = layout.box()
        row = box.row()
        row.label(text="ARKit Mapping")
        row.operator("dualface.refresh_arkit_map", text="", icon="FILE_REFRESH")
        if len(obj.dualface_arkit_map):
            box.template_list(
                "DUALFACE_UL_arkit_map",
                "",
                obj,
                "dualface_arkit_map",
                obj,
                "dualface_arkit_map_index",
                rows=6,
            )
        mapping = retarget_ops.current_mapping(obj)
        box.label(text=f"{len(mapping.matched)} of 52 matched")
        if mapping.ambiguous:
            col = box.column(align=True)
            for arkit, candidates in list(mapping.ambiguous.items())[:MAX_MISSING_SHOWN]:
                col.label(text=f"{arkit}: choose one of {', '.join(candidates)}", icon="QUESTION")
        if mapping.missing:
            col = box.column(align=True)
            col.label(text="Missing:", icon="ERROR")
            shown = mapping.missing[:MAX_MISSING_SHOWN]
            for start in range(0, len(shown), 2):
                col.label(text=", ".join(shown[start : start + 2]))
            if len(mapping.missing) > MAX_MISSING_SHOWN:
                col.label(text=f"... and {len(mapping.missing) - MAX_MISSING_SHOWN} more")
        layout.operator("dualface.export_arkit", icon="EXPORT")


CLASSES = (DUALFACE_UL_arkit_map, DUALFACE_PT_retarget)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
