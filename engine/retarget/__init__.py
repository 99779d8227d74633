"""Retarget DualFace's template motion to any head mesh, and give any head the 52 ARKit shapes.

    corr = fit_head(vertices, faces)             # landmarks, alignment, fit, correspondence (cached)
    user_offsets = corr.transfer(anim.offsets)   # [T, V_user, 3]
    shapes = corr.arkit_shapes()                 # [52, V_user, 3] deltas for shape keys

See docs/retargeting.md.

The names below load on first use (PEP 562): a take on the DualFace head inside a stock Blender
(numpy only) reaches ``engine.retarget.errors`` without importing the fitting modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.retarget.align import Similarity, umeyama
    from engine.retarget.attachments import Part, classify_part, jaw_motion, part_from_name, part_offsets
    from engine.retarget.correspondence import Correspondence, TransferSettings
    from engine.retarget.errors import RetargetError
    from engine.retarget.fit import FitSettings, nonrigid_fit
    from engine.retarget.head import align_landmarks, attach_mesh, default_cache_dir, fit_head
    from engine.retarget.landmarks import FIT_LANDMARKS, find_landmarks

_HOME = {
    "Similarity": "align",
    "umeyama": "align",
    "Part": "attachments",
    "classify_part": "attachments",
    "jaw_motion": "attachments",
    "part_from_name": "attachments",
    "part_offsets": "attachments",
    "Correspondence": "correspondence",
    "TransferSettings": "correspondence",
    "RetargetError": "errors",
    "FitSettings": "fit",
    "nonrigid_fit": "fit",
    "align_landmarks": "head",
    "attach_mesh": "head",
    "default_cache_dir": "head",
    "fit_head": "head",
    "FIT_LANDMARKS": "landmarks",
    "find_landmarks": "landmarks",
}

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


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.retarget' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"engine.retarget.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
