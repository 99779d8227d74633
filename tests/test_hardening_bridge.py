"""Blender's side of the worker: Cancel and a dead or stuck worker never hang a take or fail the next one."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from blender_addon import engine_bridge
from engine.request import AnimateRequest

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("bridge")
    cfg = ModelConfig(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    rng = np.random.default_rng(0)
    short, long = root / "short.wav", root / "long.wav"
    sf.write(short, (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    sf.write(long, (0.2 * rng.standard_normal(16000 * 240)).astype(np.float32), 16000)
    weights = save_checkpoint(DualFace(cfg), root / "tiny.safetensors")
    settings = engine_bridge.EngineSettings(mode=engine_bridge.WORKER, python=sys.executable, weights=str(weights),
                                            device="cpu", threads=1)  # fmt: skip
    yield {"short": str(short), "long": str(long), "settings": settings}
    engine_bridge.shutdown()


def _worker_pid(settings) -> int:
    (client,) = [c for key, c in engine_bridge._workers.items() if key[0] == settings.python]
    return client._process.pid


def _take(files, audio="short", **kwargs):
    return engine_bridge.animate(
        AnimateRequest(audio=files[audio], captions=False), files["settings"], **kwargs
    )


def test_cancel_kills_a_worker_that_stopped_answering_and_the_next_take_works(files):
    assert _take(files).n_frames == 30
    pid = _worker_pid(files["settings"])
    cancel, running, outcome = threading.Event(), threading.Event(), []

    def run() -> None:
        try:
            _take(files, "long", progress=lambda fraction: running.set(), cancel=cancel)
            outcome.append("finished")
        except engine_bridge.TakeCancelled:
            outcome.append("cancelled")
        except engine_bridge.EngineError as error:
            outcome.append(f"error: {error}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert running.wait(120)
    os.kill(pid, signal.SIGSTOP)  # the worker hangs mid-take
    cancelled_at = time.monotonic()
    cancel.set()
    thread.join(30)
    assert not thread.is_alive() and outcome == ["cancelled"]
    assert time.monotonic() - cancelled_at < 15  # 3 s grace, then the kill
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _take(files).n_frames == 30 and _worker_pid(files["settings"]) != pid


def test_a_dead_idle_worker_is_replaced_without_a_failed_take(files):
    assert _take(files).n_frames == 30
    pid = _worker_pid(files["settings"])
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert _take(files).n_frames == 30  # not one failed take in between
    assert _worker_pid(files["settings"]) != pid


def test_a_worker_that_goes_silent_mid_take_is_reported_not_waited_on(files, monkeypatch):
    monkeypatch.setattr(engine_bridge, "STALL_S", 1.0)
    monkeypatch.setattr(engine_bridge, "PING_TIMEOUT_S", 1.0)
    assert _take(files).n_frames == 30
    pid = _worker_pid(files["settings"])
    running = threading.Event()

    def stop_on_first_progress(fraction: float) -> None:
        if not running.is_set():
            running.set()
            os.kill(pid, signal.SIGSTOP)

    started = time.monotonic()
    with pytest.raises(engine_bridge.EngineError, match="stopped answering"):
        _take(files, "long", progress=stop_on_first_progress)
    assert time.monotonic() - started < 60
    assert _take(files).n_frames == 30
