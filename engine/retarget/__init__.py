"""Retarget DualFace's template motion to any head mesh, and give any head the 52 ARKit shapes.

    corr = fit_head(vertices, faces)             # landmarks, alignment, fit, correspondence (cached)
    user_offsets = corr.transfer(anim.offsets)   # [T, V_user, 3]
    shapes = corr.arkit_shapes()                 # [52, V_user, 3] deltas for shape keys

See docs/readme/retarget.md.
"""

from __future__ import annotations

from engine.retarget.align import Similarity, umeyama
from engine.retarget.attachments import Part, classify_part, jaw_motion, part_from_name, part_offsets
from engine.retarget.correspondence import Correspondence, TransferSettings
from engine.retarget.errors import RetargetError
from engine.retarget.fit import FitSettings, nonrigid_fit
from engine.retarget.head import align_landmarks, attach_mesh, default_cache_dir, fit_head
from engine.retarget.landmarks import FIT_LANDMARKS, find_landmarks

__all__ = [
    "FIT_LANDMARKS",
    "Correspondence",
    "FitSettings",
    "Part",
    "RetargetError",
    "Similarity",
    "TransferSettings",
    "align_landmarks",
    "attach_mesh",
    "classify_part",
    "default_cache_dir",
    "find_landmarks",
    "fit_head",
    "jaw_motion",
    "nonrigid_fit",
    "part_from_name",
    "part_offsets",
    "umeyama",
]
