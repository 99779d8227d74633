"""A head that is not DualFace's template, in a stock Blender: fit, ARKit keys and a take.

    blender -b --python foreign_head.py -- SPEECH

Builds a synthetic 8,000-vertex head (the template face, subdivided, on a closed back-of-head
shell), then runs what an artist clicks: Fit DualFace to Mesh, Make ARKit Shape Keys, and Generate
Take in vertex output (the fit carries the engine's motion onto the head). Writes what happened
to $DUALFACE_REPORT.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np

from engine.retarget.bench import synthetic_head

SPEECH = sys.argv[sys.argv.index("--") + 1]
takes = sys.modules["bl_ext.user_default.dualface.takes"]
report: dict = {}

bpy.ops.wm.read_homefile(use_empty=True)
vertices, faces = synthetic_head(8000)
mesh = bpy.data.meshes.new("Scan Head")
mesh.from_pydata(vertices.tolist(), [], faces.tolist())
head = bpy.data.objects.new("Scan Head", mesh)
scene = bpy.context.scene
scene.collection.objects.link(head)
bpy.context.view_layer.objects.active = head
head.select_set(True)
report["vertices"] = len(mesh.vertices)

clock = time.perf_counter()
report["fit"] = sorted(bpy.ops.dualface.fit_mesh())
report["fit_seconds"] = time.perf_counter() - clock
report["fit_key"] = head.get("dualface_fit", "")
report["arkit"] = sorted(bpy.ops.dualface.make_arkit_keys())
keys = head.data.shape_keys
report["shape_keys"] = len(keys.key_blocks) if keys else 0
basis = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
jaw = np.empty_like(basis)
keys.reference_key.data.foreach_get("co", basis)
keys.key_blocks["jawOpen"].data.foreach_get("co", jaw)
moved = np.linalg.norm((jaw - basis).reshape(-1, 3), axis=1)
report["jaw_open_moves"] = int((moved > 1e-4).sum())

settings = scene.dualface
settings.target = head
settings.audio_path = SPEECH
settings.output_mode = "VERTEX"
clock = time.perf_counter()
report["take"] = sorted(bpy.ops.dualface.generate())
report["take_seconds"] = time.perf_counter() - clock
found = takes.active_take(head)
report["take_action"] = found[0].name if found else None
report["take_mode"] = found[1]["mode"] if found else None
Path(os.environ["DUALFACE_REPORT"]).write_text(json.dumps(report, indent=1))
