"""Run the engine from Blender: in-process (the numpy runtime, or torch on a GPU), or a worker.

A stock Blender has numpy but neither torch nor soundfile: in-process takes then run on the engine's
numpy backend (engine.audio reads the audio with `wave` or Blender's `aud`), so Generate works
straight after installing the extension. torch (Set Up Engine) is only for CUDA; an
external Python runs the engine as a worker when one is set up (CUDA, or tools Blender lacks).
Nothing here touches bpy, so it is safe on the background thread the Generate operator uses.
Loaded engines and workers are cached: loading the model costs a take's time, twice over.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.request import DEFAULT_WEIGHTS, AnimateRequest, default_weights_path

if TYPE_CHECKING:
    from engine.api import Engine  # imported lazily: only in-process mode needs it
    from engine.serve import WorkerClient  # imports no torch, but only the worker path needs it

ADDON_DIR = Path(__file__).resolve().parent
BUNDLED_WEIGHTS = ADDON_DIR / "weights" / DEFAULT_WEIGHTS.name  # bundled by build_addon.py

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


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def torch_available() -> bool:
    return installed("torch")


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
    engine_default = default_weights_path()
    if engine_default.is_file():
        return str(engine_default)
    raise EngineError(
        "no DualFace weights found: install the release zip (it bundles weights/dualface.safetensors), "
        "or set a checkpoint path in Preferences > Add-ons > DualFace (headless: --weights PATH)"
    )


def describe(settings: EngineSettings) -> str:
    """Which engine runs a take, in the panel's words."""
    mode = resolve_engine_mode(settings, raise_error=False)
    if mode == IN_PROCESS:
        from engine.inference.device import choose_backend

        try:
            backend = choose_backend("auto", settings.device)
        except ValueError:
            return "CUDA needs torch: press Set Up Engine in Preferences > Add-ons > DualFace"
        if backend == "torch":
            return "in Blender, torch (GPU)"
        return "in Blender, numpy runtime (CPU; Set Up Engine adds CUDA)"
    if mode == WORKER:
        return f"external Python: {settings.python}"
    return "external Python not found: fix it in Preferences > Add-ons > DualFace"


def resolve_engine_mode(settings: EngineSettings, raise_error: bool = True) -> str | None:
    """Where the engine runs: IN_PROCESS (numpy, or torch when set up) or WORKER (the external Python).

    AUTO uses the external Python when one is set and torch is not installed in Blender, else runs
    in Blender. None, or EngineError when `raise_error`, when the chosen worker cannot start."""
    if settings.mode == IN_PROCESS or (settings.mode == AUTO and (torch_available() or not settings.python)):
        return IN_PROCESS
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
            "the external Python engine is not set: in Preferences > Add-ons > DualFace point "
            "'External Python' at a Python that has the engine, or choose Engine: Automatic"
        )
    return None


_lock = threading.Lock()
_engines: dict[tuple, Engine] = {}
_workers: dict[tuple, WorkerClient] = {}

CANCEL_GRACE_S = 3.0  # a worker that has not stopped this long after Cancel is killed
PING_TIMEOUT_S = 5.0  # a live worker answers a ping at once, even while it animates
STALL_S = 30.0  # no word from a busy worker for this long: ping it
POLL_S = 0.1  # how often the waiting thread looks at Cancel


def animate(
    request: AnimateRequest, settings: EngineSettings, progress=None, cancel: threading.Event | None = None
):
    """Run one take; returns an engine.animation.Animation. Raises EngineError or TakeCancelled.

    Only the animation comes back: the files the request names (output, caption files) are the
    caller's to write once the take is in the scene."""
    weights = resolve_weights(settings.weights)
    mode = resolve_engine_mode(settings)
    cancel = cancel or threading.Event()
    request = dataclasses.replace(request, output=None, caption_files=())
    if mode == IN_PROCESS:
        animation = _animate_in_process(request, settings, weights, progress, cancel)
    else:
        animation = _animate_with_worker(request, settings, weights, progress, cancel)
    return _checked_topology(animation, weights)


def _checked_topology(animation, weights: str | None):
    """The add-on animates the 468-vertex template (directly or through a fit): weights trained on
    another mesh are refused here, by name, not deep inside the retargeting."""
    from engine.face.template import N_VERTICES

    vertices = animation.offsets.shape[1] if animation.offsets.ndim == 3 else None
    if vertices != N_VERTICES:
        raise EngineError(
            f"the weights {weights or '(shipped)'} animate a {vertices}-vertex mesh, but DualFace in Blender "
            f"animates its {N_VERTICES}-vertex template: use weights trained on the template (the bundled "
            "ones, or `python -m engine.train` on a synthetic corpus)"
        )
    return animation


def _animate_in_process(request: AnimateRequest, settings: EngineSettings, weights, progress, cancel):
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
        return engine.animate(request, progress=progress, cancel=cancel)
    except Cancelled:
        raise TakeCancelled("cancelled") from None
    except AudioError as error:
        raise EngineError(str(error)) from None
    except ValueError as error:
        raise EngineError(f"the engine rejected the request: {error}") from None


def _animate_with_worker(request: AnimateRequest, settings: EngineSettings, weights, progress, cancel):
    """A take through the worker. A worker found dead (or deaf) is replaced before the take, and one
    that dies before saying anything is replaced once and the take sent again, so an idle worker
    that died never costs a failed take."""
    from engine.animation import Animation
    from engine.serve import WorkerError

    key = (settings.python, weights, settings.device)
    with tempfile.TemporaryDirectory(prefix="dualface_") as folder:
        output = str(Path(folder) / "take.npz")
        params = dataclasses.replace(request, output=output).to_mapping()
        for attempt in (1, 2):
            client = _worker_for(key, settings, fresh=attempt == 2)
            heard = threading.Event()
            try:
                request_id = client.submit("animate", params)
                _await_take(client, key, request_id, progress, cancel, heard)
                break
            except WorkerError as error:
                if attempt == 1 and error.code == "worker_died" and not heard.is_set():
                    continue
                raise EngineError(f"the engine worker failed: {error.message}") from None
        return Animation.load(output)


def _worker_for(key: tuple, settings: EngineSettings, fresh: bool = False) -> WorkerClient:
    """The cached worker for these settings when it is alive and answers a ping, else a new one."""
    from engine.serve import WorkerClient, WorkerError

    with _lock:
        client = _workers.get(key)
        if client is not None and (fresh or not client.alive or not _answers(client)):
            _discard(key)
            client = None
        if client is None:
            try:
                client = WorkerClient(
                    settings.python, weights=key[1], device=settings.device, threads=settings.threads
                )
            except WorkerError as error:
                raise EngineError(
                    f"cannot start the engine worker with {settings.python}: {error.message}"
                ) from None
            _workers[key] = client
        return client


def _answers(client: WorkerClient) -> bool:
    from engine.serve import WorkerError

    try:
        return client.ping(timeout=PING_TIMEOUT_S)
    except WorkerError:
        return False


def _discard(key: tuple) -> None:
    """Forget a worker and make sure its process is gone (SIGKILL when it does not exit at once)."""
    client = _workers.pop(key, None)
    if client is not None:
        client.close(timeout=1.0, kill=True)


def _await_take(client: WorkerClient, key: tuple, request_id: str, progress, cancel, heard) -> None:
    """Wait for the take in short slices: Cancel is honoured within CANCEL_GRACE_S, and a worker that
    goes quiet is pinged; one that does not answer is killed (the next take starts a fresh one)."""
    from engine.serve import WorkerError

    last_word = [time.monotonic()]

    def on_progress(fraction: float) -> None:
        heard.set()
        last_word[0] = time.monotonic()
        if progress is not None:
            progress(fraction)

    while True:
        if cancel.is_set():
            _stop_take(client, key, request_id)
            raise TakeCancelled("cancelled")
        try:
            client.wait(request_id, timeout=POLL_S, on_progress=on_progress)
            return
        except WorkerError as error:
            if error.code == "cancelled":
                raise TakeCancelled("cancelled") from None
            if error.code != "timeout":
                raise
        if time.monotonic() - last_word[0] > STALL_S:
            if not _answers(client):
                with _lock:
                    _discard(key)
                raise EngineError(
                    f"the engine worker stopped answering (no reply to a ping in {PING_TIMEOUT_S:.0f} s); "
                    "it was stopped, and the next take starts a fresh one"
                )
            last_word[0] = time.monotonic()


def _stop_take(client: WorkerClient, key: tuple, request_id: str) -> None:
    """Cancel a running take; kill the worker when it has not stopped within CANCEL_GRACE_S."""
    from engine.serve import WorkerError

    deadline = time.monotonic() + CANCEL_GRACE_S
    try:
        client.cancel(request_id, timeout=CANCEL_GRACE_S)
        client.wait(request_id, timeout=max(0.01, deadline - time.monotonic()))
        return  # it finished just before the cancel arrived
    except WorkerError as error:
        if error.code == "cancelled":
            return
    with _lock:
        _discard(key)


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
