"""Write an output file all at once or not at all.

Every file the engine hands to a user (takes, captions, ARKit exports, fits) is first written to a
hidden temporary name in the destination folder and renamed over the destination only when it is
complete. Any failure on the way -- a full disk, an exception in the caller, Ctrl-C -- removes the
temporary file, so a crash never leaves a half-written file or a stray ``.partial`` behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputPathError(ValueError):
    """The destination cannot take a file (a folder, a missing folder); the message says what to do."""


def _default_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp creates files readable by the owner only)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


def check_output_path(path: str | Path, what: str = "output") -> Path:
    """``path`` as a Path after refusing destinations that can never hold the file."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is an existing folder; give a file name inside it instead")
    if not path.parent.is_dir():
        raise OutputPathError(f"{what} folder {path.parent} does not exist; create it or pick another path")
    return path


@contextmanager
def atomic_output(path: str | Path, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``, otherwise it is deleted.

    The temporary name keeps the destination's extension, so writers that append one (numpy's
    ``savez``) leave it alone.
    """
    path = check_output_path(path, what)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt and SystemExit too: no partial file survives
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`; returns the path."""
    with atomic_output(path, what) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
