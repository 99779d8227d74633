"""Which of a mesh's shape keys are ARKit blendshapes, and which output mode a mesh gets.

Name matching itself lives in one place, engine.arkit_names (vendor aliases, '_L'/'_R' sides,
export prefixes, names without word breaks, the user's override table); this module only turns its
answer into the channel table a take writes and decides the output mode.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.arkit import ARKIT_INDEX
from engine.arkit_names import map_shape_keys

ARKIT = "ARKIT"
VERTEX = "VERTEX"
AUTO = "AUTO"

# Auto mode uses ARKit keys only when the rig can actually speak with them: the jaw key plus a
# quarter of the 52 shapes. Fewer than that and vertex mode animates the face more faithfully.
MIN_ARKIT_KEYS = 13
_REQUIRED_FOR_SPEECH = ARKIT_INDEX["jawOpen"]


def match_arkit_keys(key_names: Iterable[str], overrides: dict[str, str] | None = None) -> dict[int, str]:
    """ARKit channel index -> the mesh's own key name.

    `overrides` (ARKit name -> key name, '' for "no key") is the user's table and always wins;
    shapes the engine's matcher finds ambiguous are left for the user to choose."""
    mapping = map_shape_keys(key_names, overrides)
    return {ARKIT_INDEX[arkit]: key for arkit, key in mapping.matched.items()}


def speaks_arkit(matched: dict[int, str]) -> bool:
    has_jaw = _REQUIRED_FOR_SPEECH in matched
    return has_jaw and len(matched) >= MIN_ARKIT_KEYS


def choose_mode(requested: str, matched: dict[int, str]) -> str:
    """Resolve AUTO; an explicit ARKIT request on a rig without ARKit keys is an error."""
    requested = requested.upper()
    if requested == VERTEX:
        return VERTEX
    if requested == ARKIT:
        if not matched:
            raise ValueError(
                "ARKit output needs shape keys named like ARKit blendshapes (jawOpen, eyeBlinkLeft, ...); "
                "this mesh has none -- choose Vertex output or add the keys"
            )
        return ARKIT
    if requested != AUTO:
        raise ValueError(f"unknown output mode {requested!r}; use AUTO, ARKIT or VERTEX")
    return ARKIT if speaks_arkit(matched) else VERTEX
