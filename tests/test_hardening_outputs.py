"""Output files appear whole or not at all: no partial files on any failure, Ctrl-C included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.animation import Animation, Caption
from engine.atomic_file import OutputPathError, atomic_output, write_text_atomic
from engine.captions import write_captions

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def _take(frames: int = 10) -> Animation:
    rng = np.random.default_rng(0)
    return Animation(
        fps=30.0,
        offsets=rng.standard_normal((frames, 468, 3)).astype(np.float32),
        arkit=rng.random((frames, 52)).astype(np.float32),
        captions=[Caption(0.0, 0.3, "hello", 0.9, 0.8)],
    )


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_refuses_an_existing_folder_and_writes_nothing(tmp_path):
    folder = tmp_path / "take.npz"
    folder.mkdir()
    with pytest.raises(OutputPathError, match="existing folder"):
        _take().save(folder)
    assert _entries(tmp_path) == ["take.npz"] and _entries(folder) == []


def test_save_into_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        _take().save(tmp_path / "nowhere" / "take.npz")
    assert _entries(tmp_path) == []


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.srt"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="disk full"), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous" and _entries(tmp_path) == ["out.srt"]


def test_keyboard_interrupt_inside_the_writer_removes_the_temporary(tmp_path):
    target = tmp_path / "take.npz"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temporary:
        temporary.write_bytes(b"x" * 1000)
        raise KeyboardInterrupt
    assert _entries(tmp_path) == []


def test_round_trip_and_permissions(tmp_path):
    path = _take().save(tmp_path / "take.npz")
    again = Animation.load(path)
    assert again.offsets.shape == (10, 468, 3) and again.captions[0].text == "hello"
    assert _entries(tmp_path) == ["take.npz"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    write_captions(again, tmp_path / "take.srt")
    assert "hello" in (tmp_path / "take.srt").read_text()
    with pytest.raises(OutputPathError):
        write_text_atomic(tmp_path, "x")


_SAVE_FOREVER = """
import signal, sys, numpy as np
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when launched in the background
from engine.animation import Animation
rng = np.random.default_rng(0)
take = Animation(fps=30.0, offsets=rng.standard_normal((3000, 468, 3)).astype(np.float32),
                 arkit=rng.random((3000, 52)).astype(np.float32))
print("ready", flush=True)
while True:
    take.save(sys.argv[1])
"""


def test_ctrl_c_during_a_large_save_leaves_no_partial_file(tmp_path):
    """The issue's case: Ctrl-C while an hour-long take is being written left <out>.partial.npz."""
    target = tmp_path / "take.npz"
    process = subprocess.Popen(
        [sys.executable, "-c", _SAVE_FOREVER, str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while not any(".partial" in name for name in _entries(tmp_path)):  # wait until a write is under way
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert [n for n in _entries(tmp_path) if n != "take.npz"] == []
