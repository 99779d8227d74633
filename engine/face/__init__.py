"""The template face (MediaPipe canonical mesh) and its procedural ARKit blendshape rig."""

from __future__ import annotations

from engine.face.arkit_basis import apply_arkit, arkit_basis, eyelid_gap, inner_lip_gap
from engine.face.template import FaceTemplate, load_template

__all__ = ["FaceTemplate", "apply_arkit", "arkit_basis", "eyelid_gap", "inner_lip_gap", "load_template"]
