"""Everything ARKit in one package: the 52 names, name matching, solving, export, the template rig.

    names     the 52 blendshape names in Apple's order (the one output vocabulary) and their mirror
    matching  a rig's shape-key names -> ARKit names, and the output mode a mesh gets
    solve     ARKit weights from vertex motion (box-constrained least squares)
    export    Live Link Face CSV and JSON files of a take's weights
    basis     the procedural ARKit blendshape rig of the template face

Importing the package loads only the names (no numpy), so the Blender add-on can use it freely.
"""

from __future__ import annotations

from engine.arkit.names import ARKIT_INDEX, ARKIT_NAMES, MIRROR_INDEX, mirror_name

__all__ = ["ARKIT_INDEX", "ARKIT_NAMES", "MIRROR_INDEX", "mirror_name"]
