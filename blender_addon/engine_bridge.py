"""Run the engine from Blender: in-process when torch imports, else through the engine worker.

Nothing here touches bpy, so it is safe on the background thread the Generate operator uses.
Loaded engines and workers are cached: loading the model costs seconds, a take should not.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.serve import WorkerClient  # imports no torch, but only the worker path needs it

ADDON_DIR = Path(__file__).resolve().parent
BUNDLED_WEIGHTS = ADDON_DIR / "weights" / "dualface.safetensors"
WEIGHTS_NAME = "dualface.safetensors"
WEIGHTS_ENV = "DUALFACE_WEIGHTS"  # engine.weights.WEIGHTS_ENV

IN_PROCESS = "IN_PROCESS"
WORKER = "WORKER"
AUTO = "AUTO"


class EngineError(RuntimeError):
    """The engine could not produce a take; the message says what to do."""


class TakeCancelled(RuntimeError):
    """The user cancelled the take."""


@dataclass(frozen=True)
class EngineSettings:
    mode: str = AUTO  # AUTO, IN_PROCESS or WORKER
    python: str = ""  # the external Python of WORKER mode
    weights: str | None = None
    device: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class EngineJob:
    audio: str
    fps: float
    emotion: str | list = "neutral"  # a name or [(time_s, emotion, intensity), ...]
    intensity: float = 1.0
    style: dict = field(default_factory=dict)


def torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def resolve_weights(explicit: str | None) -> str | None:
    """The checkpoint to load, checked before any work; None means the engine's shipped default."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EngineError(
                f"weights file not found: {path} -- fix the path in the DualFace preferences or --weights"
            )
        return str(path)
    if BUNDLED_WEIGHTS.is_file():
        return str(BUNDLED_WEIGHTS)
    engine_default = _engine_default_weights()
    if engine_default is not None and engine_default.is_file():
        return str(engine_default)
    raise EngineError(
        "no DualFace weights found: install the release zip (it bundles weights/dualface.safetensors), "
        "or set a checkpoint path in Preferences > Add-ons > DualFace (headless: --weights PATH)"
    )


def _engine_default_weights() -> Path | None:
    """engine.weights.default_weights_path() without importing it (it imports torch)."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override).expanduser()
    spec = importlib.util.find_spec("engine")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent.parent / "weights" / WEIGHTS_NAME


def describe(settings: EngineSettings) -> str:
    mode = choose_mode(settings, raise_error=False)
    if mode == IN_PROCESS:
        return "in-process (torch found)"
    if mode == WORKER:
        return f"worker: {settings.python}"
    return "not set up: open Preferences > Add-ons > DualFace and press Set Up Engine"


def choose_mode(settings: EngineSettings, raise_error: bool = True) -> str | None:
    if settings.mode == IN_PROCESS or (settings.mode == AUTO and torch_available()):
        if torch_available():
            return IN_PROCESS
        if raise_error:
            raise EngineError(
                "torch is not importable in Blender's Python: press Set Up Engine in the preferences"
            )
        return None
    if settings.python:
        if not Path(settings.python).is_file():
            if raise_error:
                raise EngineError(
                    f"engine Python {settings.python} does not exist: fix it in the DualFace preferences"
                )
            return None
        return WORKER
    if raise_error:
        raise EngineError(
            "the engine is not set up: in Preferences > Add-ons > DualFace press Set Up Engine "
            "(downloads torch), or point 'External Python' at a Python that has torch"
        )
    return None


_lock = threading.Lock()
_engines: dict[tuple, object] = {}
_workers: dict[tuple, WorkerClient] = {}


def animate(job: EngineJob, settings: EngineSettings, progress=None, cancel: threading.Event | None = None):
    """Run one take; returns an engine.animation.Animation. Raises EngineError or TakeCancelled."""
    weights = resolve_weights(settings.weights)
    mode = choose_mode(settings)
    cancel = cancel or threading.Event()
    if mode == IN_PROCESS:
        return _animate_in_process(job, settings, weights, progress, cancel)
    return _animate_with_worker(job, settings, weights, progress, cancel)


def _animate_in_process(job, settings, weights, progress, cancel):
    from engine.api import Cancelled, Engine
    from engine.audio.io import AudioError

    key = (weights, settings.device, settings.threads)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            try:
                engine = Engine(weights=weights, device=settings.device, threads=settings.threads)
            except (OSError, ValueError, RuntimeError) as error:
                raise EngineError(
                    f"cannot load the engine weights {weights or '(shipped)'}: {error}"
                ) from None
            _engines.clear()  # one model in memory at a time
            _engines[key] = engine
    try:
        return engine.animate(
            job.audio,
            fps=job.fps,
            emotion=job.emotion,
            intensity=job.intensity,
            style=job.style or None,
            progress=progress,
            cancel=cancel,
        )
    except Cancelled:
        raise TakeCancelled("cancelled") from None
    except AudioError as error:
        raise EngineError(str(error)) from None
    except ValueError as error:
        raise EngineError(f"the engine rejected the request: {error}") from None


def _animate_with_worker(job, settings, weights, progress, cancel):
    from engine.animation import Animation
    from engine.serve import WorkerClient, WorkerError

    key = (settings.python, weights, settings.device)
    with _lock:
        client = _workers.get(key)
        if client is None or not client.alive:
            try:
                client = WorkerClient(
                    settings.python, weights=weights, device=settings.device, threads=settings.threads
                )
            except WorkerError as error:
                raise EngineError(
                    f"cannot start the engine worker with {settings.python}: {error.message}"
                ) from None
            _workers[key] = client
    with tempfile.TemporaryDirectory(prefix="dualface_") as folder:
        output = str(Path(folder) / "take.npz")
        params = {
            "audio": job.audio,
            "fps": job.fps,
            "emotion": job.emotion,
            "intensity": job.intensity,
            "output": output,
        }
        if job.style:
            params["style"] = job.style
        request_id = client.submit("animate", params)
        done = threading.Event()

        def forward_cancel() -> None:
            while not done.is_set():
                if cancel.wait(0.1):
                    try:
                        client.cancel(request_id)
                    except WorkerError:
                        pass
                    return

        watcher = threading.Thread(target=forward_cancel, daemon=True)
        watcher.start()
        try:
            client.wait(request_id, on_progress=progress)
        except WorkerError as error:
            if error.code == "cancelled" or cancel.is_set():
                raise TakeCancelled("cancelled") from None
            raise EngineError(f"the engine worker failed: {error.message}") from None
        finally:
            done.set()
        return Animation.load(output)


def shutdown() -> None:
    """Stop workers and drop loaded models (add-on unregister)."""
    with _lock:
        for client in _workers.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - a dying worker must not break unregister
                pass
        _workers.clear()
        _engines.clear()
