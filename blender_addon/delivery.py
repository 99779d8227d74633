"""Hand over a take that is already in the scene -- engine files, movie, .blend -- without ever losing it.

Computing a take costs minutes; writing it out can fail for reasons that have nothing to do with it
(a full disk, a read-only folder, a path typo). Each delivery step is tried on its own, a failure is
reported with the path it concerns, and whenever a step failed the scene is saved to a fallback
.blend -- beside the requested file, or in the system temp folder when that folder refuses it -- so
the take survives the end of a background run. The opened .blend is never written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bpy

FALLBACK_SUFFIX = "_dualface_fallback"


@dataclass
class Delivery:
    written: list[str] = field(default_factory=list)  # files that now hold the take
    errors: list[str] = field(default_factory=list)  # one line per failed step, naming its path
    fallback: str | None = None  # where the take went when a step failed

    def attempt(self, what: str, step: Callable[[], list[str]]) -> None:
        """Run one step; its files join `written`, its failure joins `errors` (never raised)."""
        try:
            self.written += step()
        except Exception as error:  # noqa: BLE001 - any failure here must leave the take in place
            self.errors.append(f"could not {what}: {error}")

    def message(self) -> str:
        where = (
            f"the take is kept in {self.fallback}"
            if self.fallback
            else "no fallback .blend could be written either; the take is only in memory"
        )
        return "; ".join(self.errors) + f" -- {where}"


def opened_file() -> Path | None:
    """The .blend this session opened (None for an unsaved file)."""
    return Path(bpy.data.filepath).resolve() if bpy.data.filepath else None


def is_opened_file(path: str | Path) -> bool:
    opened = opened_file()
    return opened is not None and Path(path).expanduser().resolve() == opened


def save_copy(path: str | Path) -> list[str]:
    """Save the scene to `path` (a copy: the session keeps its own file name); refuses the opened file."""
    target = Path(path).expanduser().resolve()
    if is_opened_file(target):
        raise ValueError(f"{target} is the opened file, which DualFace never overwrites")
    bpy.ops.wm.save_as_mainfile(filepath=str(target), copy=True)
    if not target.is_file():
        raise OSError(f"Blender did not write {target}")
    return [str(target)]


def save_fallback(requested: str | None) -> str | None:
    """Save the scene beside `requested` (or the opened file), else in the system temp folder."""
    anchor = Path(requested).expanduser() if requested else opened_file()
    stem = anchor.stem if anchor is not None else "untitled"
    folders = ([anchor.parent] if anchor is not None else []) + [Path(tempfile.gettempdir())]
    for folder in folders:
        target = _free_name(folder, stem + FALLBACK_SUFFIX)
        try:
            return save_copy(target)[0]
        except (RuntimeError, OSError, ValueError):
            continue
    return None


def _free_name(folder: Path, stem: str) -> Path:
    """`folder/stem.blend`, or `stem_2.blend`, ... : an earlier fallback is never overwritten."""
    candidate, n = folder / f"{stem}.blend", 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}_{n}.blend"
    return candidate
