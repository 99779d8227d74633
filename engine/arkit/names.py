"""The 52 ARKit blendshape names, in Apple's order: the one output vocabulary every part shares.

This is the only place the names are written; every other order (Live Link Face's CSV columns)
is derived from it.
"""

from __future__ import annotations

# One face region per line; the formatter would split this into 52 lines.
# fmt: off
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
# fmt: on
assert len(ARKIT_NAMES) == 52
ARKIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}


def mirror_name(name: str) -> str:
    """The name of the left/right twin of a shape (itself for symmetric shapes)."""
    if name.endswith("Left"):
        return name[: -len("Left")] + "Right"
    if name.endswith("Right"):
        return name[: -len("Right")] + "Left"
    return name


MIRROR_INDEX: tuple[int, ...] = tuple(ARKIT_INDEX[mirror_name(n)] for n in ARKIT_NAMES)
