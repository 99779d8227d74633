"""The stdio worker answers every line and survives it; its client never hangs on a stuck or dead worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.serve import MAX_LINE_CHARS, WorkerClient, WorkerError

ROOT = Path(__file__).resolve().parent.parent
ANSWER_S = 60  # only guards against hangs (a loaded 2-core CI machine can stall a reply for seconds)
pytestmark = pytest.mark.timeout(300)


def _checkpoint(path: Path) -> Path:
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    return save_checkpoint(DualFace(cfg), path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("worker")
    wav = root / "line.wav"
    sf.write(wav, (0.2 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    return {"weights": _checkpoint(root / "tiny.safetensors"), "wav": wav, "root": root}


@pytest.fixture(scope="module")
def worker(files):
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--stdio", "--weights", str(files["weights"]), "--device", "cpu",
         "--threads", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    assert json.loads(process.stdout.readline())["type"] == "ready"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def _ask(process, line: bytes) -> dict:
    process.stdin.write(line + b"\n")
    process.stdin.flush()
    reply = process.stdout.readline()
    assert reply, f"the worker died on {line[:80]!r}"
    return json.loads(reply)


def _animate_line(request_id: str, **params) -> bytes:
    return json.dumps(
        {"id": request_id, "method": "animate", "params": {"progress": False, **params}}
    ).encode()


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"id": 1, "method": "ping", "params": {"n": ' + b"9" * 5000 + b"}}", "parse_error"),
        (b"[" * 100_000 + b"]" * 100_000, "parse_error"),
        (b'{"id": 2, "method": "animate", "params": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001 + b"}", "parse_error"),
        (b'{"id": 3, "method": "ping", "params": {"x": "' + b"a" * (MAX_LINE_CHARS + 10) + b'"}}', "parse_error"),
        (b'{"id": ' + b"7" * 5000 + b', "method": "ping"}', "parse_error"),
        (b'{"id": {"nested": 1}, "method": "ping"}', "invalid_request"),
        (b'{"id": 4, "method": ["animate"]}', "invalid_request"),
        (b"3", "invalid_request"),
        (b"null", "invalid_request"),
    ],
    ids=["5000-digit-int", "deep-list", "deep-params", "over-long-line", "5000-digit-id", "object-id",
         "list-method", "bare-number", "null"],
)  # fmt: skip
def test_any_line_is_answered_and_the_worker_lives(worker, line, code):
    reply = _ask(worker, line)
    assert reply["type"] == "error" and reply["error"]["code"] == code, reply
    assert _ask(worker, b'{"id": "p", "method": "ping"}')["result"] == {"pong": True}


@pytest.mark.parametrize(
    "params",
    [
        {"intensity": "loud"},
        {"intensity": [1]},
        {"emotion": 5},
        {"emotion": [[None, "happy", 1]]},
        {"emotion": {"happy": 1}},
        {"style": [1, 2]},
        {"style": {"articulation": "x"}},
        {"captions": "yes"},
        {"caption_files": 7},
        {"fps": "abc"},
        {"output": 12},
        {"language": None},
        {"audio": ["a.wav"]},
    ],
)
def test_wrong_typed_params_are_invalid_params(worker, files, params):
    reply = _ask(worker, _animate_line("t", **{"audio": str(files["wav"]), **params}))
    assert reply["type"] == "error" and reply["error"]["code"] == "invalid_params", reply
    assert "TypeError" not in reply["error"]["message"]


def test_an_existing_folder_as_output_is_refused_and_nothing_is_written(worker, files):
    folder = files["root"] / "taken.npz"
    folder.mkdir()
    reply = _ask(worker, _animate_line("f", audio=str(files["wav"]), output=str(folder)))
    assert reply["type"] == "error" and reply["error"]["code"] == "invalid_params", reply
    assert "folder" in reply["error"]["message"]
    assert list(folder.iterdir()) == [] and not [p for p in files["root"].iterdir() if "partial" in p.name]


_FAKE_WORKER = """
import json, sys
print(json.dumps({"id": None, "type": "ready", "schema_version": 99}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    for junk in ("5", "[1, 2]", '"text"', "null", "garbage {", '{"id": 5}', '{"type": 3}', '{"id": [1]}'):
        print(junk, flush=True)
    if request["method"] != "ping":
        sys.exit(3)
    print(json.dumps({"id": request["id"], "type": "result", "result": {"pong": True}}), flush=True)
"""


def test_client_survives_non_protocol_stdout_and_reports_the_exit(tmp_path):
    """A bare JSON number on the worker's stdout used to kill the client's reader thread."""
    script = tmp_path / "fake_worker.py"
    script.write_text(_FAKE_WORKER)
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    python.chmod(0o755)
    client = WorkerClient(str(python), startup_timeout=ANSWER_S)
    try:
        assert client.ping(timeout=ANSWER_S)
        request = client.submit("animate", {"audio": "x.wav"})
        with pytest.raises(WorkerError) as error:
            client.wait(request, timeout=ANSWER_S)
        assert error.value.code == "worker_died" and "code 3" in error.value.message
    finally:
        client.close(kill=True)


def test_a_stopped_worker_cannot_hang_the_client(files):
    client = WorkerClient(sys.executable, weights=str(files["weights"]), device="cpu", threads=1)
    try:
        os.kill(client._process.pid, signal.SIGSTOP)
        started = time.monotonic()
        request = client.submit("animate", {"audio": str(files["wav"]), "progress": False})
        with pytest.raises(WorkerError) as error:
            client.wait(request, timeout=2)
        assert error.value.code == "timeout"
        client.close(timeout=3)
        assert time.monotonic() - started < 20 and not client.alive
    finally:
        if client._process.poll() is None:
            os.kill(client._process.pid, signal.SIGCONT)
        client.close(kill=True)
