"""The template face (MediaPipe canonical mesh); its ARKit blendshape rig lives in engine.arkit.basis."""

from __future__ import annotations

from engine.face.template import FaceTemplate, load_template

__all__ = ["FaceTemplate", "load_template"]
