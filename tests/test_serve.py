"""The stdio worker and its stdlib client: round trip, inline arrays, errors, cancel, a killed worker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.animation import Animation
from engine.request import SCHEMA_VERSION
from engine.serve import WorkerClient, WorkerError, decode_array

ROOT = Path(__file__).resolve().parent.parent
# Round trips to the worker process only guard against hangs: generous, since a loaded 2-core CI
# machine can stall a busy worker's reply for seconds.
ANSWER_S = 60


def _checkpoint(path: Path) -> Path:
    """A small random model (output heads randomised so the motion is not the rest face)."""
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    model = DualFace(cfg)
    torch.nn.init.normal_(model.decoder.offset_head.weight, std=0.02)
    return save_checkpoint(model, path)


def _wav(path: Path, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    audio = 0.3 * np.clip(np.sin(2 * np.pi * 3 * t), 0, None) * rng.standard_normal(n)
    sf.write(path, audio.astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve")
    return {
        "weights": _checkpoint(root / "tiny.safetensors"),
        "short": _wav(root / "short.wav", 1.5),
        "long": _wav(root / "long.wav", 240.0, seed=1),
        "root": root,
    }


@pytest.fixture(scope="module")
def client(files):
    worker = WorkerClient(sys.executable, weights=str(files["weights"]), device="cpu", threads=1)
    yield worker
    worker.close()


def test_round_trip_to_npz_and_inline(client, files):
    assert client.ping(timeout=ANSWER_S)
    assert client.info["type"] == "ready" and client.info["device"] == "cpu"
    assert client.info["schema_version"] == SCHEMA_VERSION
    out = files["root"] / "take.npz"
    progress = []
    result = client.animate(
        str(files["short"]), output=str(out), emotion="happy", caption_files=[str(files["root"] / "take.srt")],
        on_progress=progress.append, timeout=120,
    )  # fmt: skip
    assert result["output"] == str(out) and result["n_frames"] == 45
    take = Animation.load(out)
    assert take.offsets.shape == (45, 468, 3)
    assert (files["root"] / "take.srt").exists()
    assert progress and progress[-1] == 1.0
    inline = client.animate(str(files["short"]), emotion="happy", progress=False, timeout=120)
    offsets = decode_array(inline["arrays"]["offsets"])
    assert offsets.shape == (45, 468, 3)
    assert np.abs(offsets - take.offsets).max() < 1e-6  # same request, same motion
    assert decode_array(inline["arrays"]["arkit"]).shape == (45, 52)


def test_errors_are_answers_not_hangs(client, files):
    with pytest.raises(WorkerError) as error:
        client.animate(str(files["root"] / "missing.wav"), timeout=30)
    assert error.value.code == "audio_error" and "not found" in error.value.message
    with pytest.raises(WorkerError) as error:
        client.animate(str(files["short"]), fps=29, timeout=30)
    assert error.value.code == "invalid_params"
    with pytest.raises(WorkerError) as error:
        client.animate(str(files["short"]), output=str(files["root"] / "no_dir" / "x.npz"), timeout=30)
    assert error.value.code == "invalid_params" and "does not exist" in error.value.message
    with pytest.raises(WorkerError) as error:
        client.request("dance", timeout=30)
    assert error.value.code == "invalid_request"
    with pytest.raises(WorkerError) as error:
        client.request("animate", {"audio": str(files["short"]), "bogus": 1}, timeout=30)
    assert error.value.code == "invalid_params"
    with pytest.raises(WorkerError) as error:
        client.request(
            "animate", {"schema_version": SCHEMA_VERSION + 1, "audio": str(files["short"])}, timeout=30
        )
    assert (
        error.value.code == "unsupported_version" and f"versions 1 to {SCHEMA_VERSION}" in error.value.message
    )
    assert client.ping(timeout=ANSWER_S)  # still alive and answering


def test_requests_without_a_schema_version_are_read_as_version_1(client, files):
    """Clients from before the request contract sent caption paths in `captions`."""
    srt = files["root"] / "old_client.srt"
    params = {"audio": str(files["short"]), "captions": [str(srt)], "progress": False}
    result = client.request("animate", params, timeout=120)
    assert result["caption_files"] == [str(srt)] and srt.read_text().strip()
    assert result["n_frames"] == 45 and "arrays" in result


def test_cancel_mid_request(client, files):
    started = time.monotonic()
    request = client.submit("animate", {"audio": str(files["long"])})
    first_progress = None
    while first_progress is None and time.monotonic() - started < 120:
        messages = client.poll(request)
        if messages:
            first_progress = messages[0]  # the earliest one, however late this loop got to run
            assert all(message["type"] == "progress" for message in messages), messages
        time.sleep(0.01)
    assert first_progress is not None and first_progress["fraction"] < 0.5
    assert client.ping(timeout=ANSWER_S)  # answered while the animation runs
    assert client.cancel(request, timeout=ANSWER_S)
    with pytest.raises(WorkerError) as error:
        client.wait(request, timeout=ANSWER_S)
    assert error.value.code == "cancelled"
    assert client.ping(timeout=ANSWER_S)


def test_raw_protocol_bad_lines(files):
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--stdio", "--weights", str(files["weights"]), "--device", "cpu"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert json.loads(process.stdout.readline())["type"] == "ready"
        for line, code in [
            (b"this is not json", "parse_error"),
            (b'{"id": "\xff\xfe broken utf-8', "parse_error"),
            (b"[1, 2]", "invalid_request"),
            (b'{"method": "ping"}', "invalid_request"),
            (b'{"id": 7, "method": "animate", "params": 3}', "invalid_request"),
            (b'{"id": 8, "method": "animate", "params": {}}', "invalid_params"),
        ]:
            process.stdin.buffer.write(line + b"\n")
            process.stdin.flush()
            reply = json.loads(process.stdout.readline())
            assert reply["type"] == "error" and reply["error"]["code"] == code, (line, reply)
        process.stdin.write('{"id": "bye", "method": "shutdown"}\n')
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["result"] == {"bye": True}
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_killed_worker_is_reported(files):
    worker = WorkerClient(sys.executable, weights=str(files["weights"]), device="cpu", threads=1)
    try:
        request = worker.submit("animate", {"audio": str(files["long"])})
        time.sleep(0.5)
        worker._process.kill()
        with pytest.raises(WorkerError) as error:
            worker.wait(request, timeout=30)
        assert error.value.code == "worker_died"
        assert not worker.alive
        with pytest.raises(WorkerError):
            worker.ping()
    finally:
        worker.close(kill=True)


def test_bad_weights_fail_at_start(files):
    with pytest.raises(WorkerError) as error:
        WorkerClient(sys.executable, weights=str(files["root"] / "nope.safetensors"), device="cpu")
    assert error.value.code == "worker_start_failed"
    assert "nope.safetensors" in error.value.message
