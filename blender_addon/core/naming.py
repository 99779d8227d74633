"""Names of the things a take creates, so every take is recognisable and never collides."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

TAKE_PREFIX = "DF_"
MAX_ID_NAME = 63  # Blender ID and key-block names hold 63 bytes
_MAX_CLIP_PART = 40


def clip_label(audio_path: str | Path) -> str:
    """A short, Blender-safe label for an audio file: 'My Take (2).wav' -> 'My_Take_2'."""
    stem = Path(str(audio_path)).stem
    label = re.sub(r"[^0-9A-Za-z]+", "_", stem).strip("_")
    return (label or "clip")[:_MAX_CLIP_PART]


def take_name(clip: str, existing: Iterable[str]) -> str:
    """The next free 'DF_<clip>_NNN' name; numbering continues after the highest existing take."""
    pattern = re.compile(rf"^{re.escape(TAKE_PREFIX + clip)}_(\d+)$")
    numbers = [int(m.group(1)) for name in existing if (m := pattern.match(name))]
    return f"{TAKE_PREFIX}{clip}_{max(numbers, default=0) + 1:03d}"


def part_action_name(take: str, mesh_name: str) -> str:
    """The action a separate part (teeth, tongue) gets in a take: 'DF_<clip>_NNN_<mesh>'."""
    label = re.sub(r"[^0-9A-Za-z]+", "_", mesh_name).strip("_") or "part"
    return f"{take}_{label}"[:MAX_ID_NAME]


def basis_key_name(take: str, component: int) -> str:
    """Shape-key name of one vertex-mode basis component of a take."""
    suffix = f"_{component:02d}"
    return take[: MAX_ID_NAME - len(suffix)] + suffix


_BASIS_KEY = re.compile(rf"^{re.escape(TAKE_PREFIX)}.+_\d{{3}}_\d{{2}}$")


def is_basis_key_name(name: str) -> bool:
    """A vertex-mode key DualFace created ('DF_<clip>_NNN_KK'), never an artist's own 'DF_...' key."""
    return bool(_BASIS_KEY.match(name))
