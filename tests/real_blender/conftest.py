"""The real-Blender lane: a stock Blender executable, its own Python (numpy only) and its UI.

`bash scripts/real_blender.sh` provisions a cached Debian trixie root with Debian's Blender, then
runs these tests with DUALFACE_BLENDER_ROOT set. Each test starts Blender inside that root through
`scripts/real_blender.sh exec` (the checkout and /tmp are shared at the same paths), runs a script
from inside/ that writes a JSON report, and checks the report, the files and the screenshots here.
The extension is installed from the zip build_addon.py makes, into a temporary
BLENDER_USER_RESOURCES, with a startup script that makes torch, scipy, librosa and soundfile
unimportable and logs every attempt. The engine is the documented External Python worker: the
checkout's .venv Python, started through a wrapper that leaves the root.

Without the root (a plain `pytest tests`) every test here is skipped with that command as reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
INSIDE = Path(__file__).resolve().parent / "inside"
ROOT = os.environ.get("DUALFACE_BLENDER_ROOT", "")
HOST_PYTHON = os.environ.get("DUALFACE_HOST_PYTHON", "/usr/local/bin/dualface-host-python")
BLOCKED = ("torch", "scipy", "librosa", "soundfile")
SCREEN = "1280x800x24"


LONG_SPEECH_COPIES = 40  # the cancel tests' take, in copies of the 7.7 s sample


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    if ROOT and Path(ROOT, ".dualface-ready").is_file():
        return
    reason = "needs the real-Blender root: run `bash scripts/real_blender.sh` (as root)"
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Run:
    returncode: int
    output: str
    report: dict
    imports: list[dict] = field(default_factory=list)

    def blocked(self, *names: str) -> list[dict]:
        """Attempts to import the given blocked packages (all of them without names)."""
        names = names or BLOCKED
        return [entry for entry in self.imports if entry["module"].split(".")[0] in names]


@dataclass
class Lane:
    user: Path  # BLENDER_USER_RESOURCES with the extension installed
    work: Path
    python: str = HOST_PYTHON  # the External Python, as Blender in the root sees it
    counter: list[int] = field(default_factory=lambda: [0])

    def blender(
        self, args: list[str], timeout: float = 120, ui: bool = False, env: dict | None = None
    ) -> Run:
        """Run the real Blender with ARGS inside the root, bounded by TIMEOUT seconds (the whole
        process group is killed when it runs over). A script may write its JSON report to
        $DUALFACE_REPORT; import attempts of blocked packages are collected from the guard's log."""
        self.counter[0] += 1
        folder = self.work / f"run{self.counter[0]}"
        folder.mkdir()
        report, imports = folder / "report.json", folder / "imports.jsonl"
        command = ["blender", *args]
        if ui:
            command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", *command]
        full_env = {
            **os.environ,
            "BLENDER_USER_RESOURCES": str(self.user),
            "DUALFACE_REPORT": str(report),
            "DUALFACE_IMPORT_LOG": str(imports),
            "DUALFACE_RUN_DIR": str(folder),
            "TMPDIR": str(folder),  # Blender's and xvfb-run's temporary files stay with the run
            "DUALFACE_CACHE": str(self.work / "cache"),  # fits of foreign heads
            **(env or {}),
        }
        process = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "real_blender.sh"), "exec", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"Blender ran over {timeout} s: {' '.join(args)}\n{output[-4000:]}")
        data = json.loads(report.read_text()) if report.is_file() else {}
        lines = imports.read_text().splitlines() if imports.is_file() else []
        return Run(process.returncode, output, data, [json.loads(line) for line in lines])

    def script(self, name: str, *args: str, timeout: float = 120, ui: bool = False, blend: str = "") -> Run:
        """Run inside/NAME with ARGS (after `--`); background mode unless UI."""
        head = [blend] if blend else []
        mode = [] if ui else ["-b"]
        argv = [*mode, *head, "--python-exit-code", "1", "--python", str(INSIDE / name), "--", *args]
        return self.blender(argv, timeout=timeout, ui=ui)


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def lane(tmp_path_factory) -> Lane:
    """The extension built from this checkout and installed into a fresh user folder, once."""
    work = tmp_path_factory.mktemp("real_blender")
    built = subprocess.run(
        [sys.executable, str(REPO / "build_addon.py"), "--out", str(work / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (zip_path,) = (work / "dist").glob("dualface-*.zip")
    user = work / "user"
    (user / "scripts" / "startup").mkdir(parents=True)
    shutil.copy(INSIDE / "dualface_import_guard.py", user / "scripts" / "startup")
    result = Lane(user, work)
    run = result.script("install_addon.py", str(zip_path), HOST_PYTHON, timeout=120)
    assert run.returncode == 0 and "DUALFACE_INSTALLED" in run.output, run.output[-4000:]
    assert not run.blocked(), run.imports
    return result


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> Path:
    """The bundled 7.7 s sample of speech (real words, so the lip-reader writes captions)."""
    return REPO / "engine" / "assets" / "sample_speech.wav"


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory, speech) -> Path:
    """LONG_SPEECH_COPIES copies of the sample (about five minutes): a take slow enough to cancel
    midway even on the fast numpy runtime with a warm worker."""
    with wave.open(str(speech), "rb") as handle:
        rate, frames = handle.getframerate(), handle.readframes(handle.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32767
    return write_wav(
        tmp_path_factory.mktemp("audio") / "long_speech.wav", np.tile(audio, LONG_SPEECH_COPIES), rate
    )
