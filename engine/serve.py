"""A persistent inference worker speaking line-delimited JSON over stdin/stdout, and its client.

Why a worker: Blender's Python cannot import torch safely, and loading the model costs seconds. The
add-on starts `python -m engine serve --stdio` once with the user's Python, keeps it alive, and sends it
one JSON request per line. The client half of this module (`WorkerClient`) is stdlib only, so the
add-on imports it without torch; the server half imports the engine lazily.

Protocol (UTF-8, one JSON object per line, both directions)
-----------------------------------------------------------
Request:  {"id": "<string>", "method": "animate" | "cancel" | "ping" | "shutdown", "params": {...}}

- ``animate`` params: ``audio`` (path, required), ``fps`` (25/30/60, default 30), ``emotion`` (name or
  list of ``[time_s, emotion, intensity]``), ``intensity`` (0..1), ``style`` (object of
  SpeakerStyle fields), ``output`` (path of an ``.npz`` to write with ``Animation.save``; without it
  the result carries the arrays inline as base64), ``captions`` (optional list of ``.srt``/``.vtt``/
  ``.json`` paths to write), ``progress`` (bool, default true).
- ``cancel`` params: ``{"target": "<id of the request to cancel>"}``; works while it runs or waits.
- ``ping``: answered at once, even while an animation runs.
- ``shutdown``: cancels running work, answers, and exits with code 0.

Responses (each carries the request's ``id``):

- ``{"id": null, "type": "ready", "version": ..., "device": ..., "protocol": 1}`` once, at start-up.
- ``{"id": ..., "type": "progress", "fraction": 0.0..1.0}`` while animating.
- ``{"id": ..., "type": "result", "result": {...}}`` -- animate: ``n_frames``, ``fps``, ``duration``,
  ``captions`` (list of objects), ``output`` (path) or ``arrays`` (``{"offsets"|"arkit": {"dtype",
  "shape", "base64"}}``) plus ``audio_phonemes``/``lip_phonemes``; ping: ``{"pong": true}``;
  cancel: ``{"cancelled": bool}``; shutdown: ``{"bye": true}``.
- ``{"id": ..., "type": "error", "error": {"code": ..., "message": ...}}`` with codes
  ``parse_error`` (line is not JSON), ``invalid_request`` (no id / unknown method / params not an
  object), ``invalid_params`` (bad fps, emotion, output path...), ``audio_error`` (unreadable audio),
  ``cancelled``, ``internal_error``. A start-up failure (weights) is a ``fatal`` message, then exit 2.

Requests run one at a time in arrival order; ``ping`` and ``cancel`` are handled on arrival.
Nothing but protocol lines is ever written to stdout (library prints go to stderr).
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


# ---- client (stdlib only) --------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A request failed, or the worker is gone; `code` is one of the protocol's error codes or
    `timeout` / `worker_died` / `worker_start_failed`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


class WorkerClient:
    """Owns one worker subprocess. Thread-safe: one thread may wait on `animate` while another cancels.

    `python_exe` is a Python with the engine's dependencies (torch...). The engine package is found via
    PYTHONPATH pointing at this file's package root unless `env` says otherwise.
    """

    def __init__(
        self,
        python_exe: str,
        weights: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        startup_timeout: float = 120.0,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        command = [python_exe, "-m", "engine", "serve", "--stdio", "--device", device]
        if weights:
            command += ["--weights", str(weights)]
        if threads:
            command += ["--threads", str(int(threads))]
        full_env = dict(os.environ if env is None else env)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_PARENT, full_env.get("PYTHONPATH")) if p
        )
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=cwd or _PACKAGE_PARENT,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        except OSError as error:
            raise WorkerError("worker_start_failed", f"cannot start {python_exe}: {error}") from None
        assert self._process.stdin and self._process.stdout and self._process.stderr  # all PIPEs
        self._stdin, self._stdout, self._stderr = (
            self._process.stdin,
            self._process.stdout,
            self._process.stderr,
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._mailboxes: dict[str, queue.Queue] = {}
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._ready: queue.Queue = queue.Queue()
        self._dead: WorkerError | None = None
        self.info: dict[str, Any] = {}
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            hello = self._ready.get(timeout=startup_timeout)
        except queue.Empty:
            self.close(kill=True)
            raise WorkerError(
                "worker_start_failed", f"worker not ready after {startup_timeout:.0f} s"
            ) from None
        if hello.get("type") != "ready":
            self.close(kill=True)
            detail = hello.get("error", {}).get("message") or self._stderr_text()
            raise WorkerError("worker_start_failed", detail or "worker exited during start-up")
        self.info = hello

    # -- requests --

    def submit(self, method: str, params: dict | None = None) -> str:
        """Send a request without waiting; returns its id for `wait` / `poll` / `cancel`."""
        request_id = f"r{next(self._ids)}"
        with self._lock:
            if self._dead is not None:
                raise self._dead
            self._mailboxes[request_id] = queue.Queue()
            line = json.dumps({"id": request_id, "method": method, "params": params or {}})
            try:
                self._stdin.write(line + "\n")
                self._stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._mailboxes.pop(request_id, None)
                raise self._died() from None
        return request_id

    def poll(self, request_id: str) -> list[dict]:
        """Messages that arrived for `request_id` so far (progress, then result or error); never blocks."""
        box = self._mailboxes.get(request_id)
        if box is None:
            raise KeyError(f"unknown request id {request_id!r}")
        messages = []
        while True:
            try:
                messages.append(box.get_nowait())
            except queue.Empty:
                return messages

    def wait(self, request_id: str, timeout: float | None = None, on_progress=None) -> dict:
        """Block until the result of `request_id`; raises WorkerError on error, timeout or a dead worker."""
        box = self._mailboxes.get(request_id)
        if box is None:
            raise KeyError(f"unknown request id {request_id!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WorkerError("timeout", f"no answer to {request_id} within {timeout:.1f} s")
            try:
                message = box.get(timeout=remaining)
            except queue.Empty:
                continue
            kind = message.get("type")
            if kind == "progress":
                if on_progress is not None:
                    on_progress(float(message.get("fraction", 0.0)))
                continue
            self._mailboxes.pop(request_id, None)
            if kind == "result":
                return message.get("result", {})
            error = message.get("error", {})
            raise WorkerError(error.get("code", "internal_error"), error.get("message", "unknown error"))

    def request(
        self, method: str, params: dict | None = None, timeout: float | None = None, on_progress=None
    ):
        return self.wait(self.submit(method, params), timeout, on_progress)

    def ping(self, timeout: float = 10.0) -> bool:
        return bool(self.request("ping", timeout=timeout).get("pong"))

    def animate(self, audio: str, timeout: float | None = None, on_progress=None, **params) -> dict:
        """Animate `audio` (a path); extra keyword arguments are the protocol's animate params."""
        return self.request("animate", {"audio": str(audio), **params}, timeout, on_progress)

    def cancel(self, request_id: str, timeout: float = 10.0) -> bool:
        return bool(self.request("cancel", {"target": request_id}, timeout).get("cancelled"))

    @property
    def alive(self) -> bool:
        return self._dead is None and self._process.poll() is None

    def close(self, timeout: float = 5.0, kill: bool = False) -> None:
        """Ask the worker to exit; kill it when it does not within `timeout`."""
        if self._process.poll() is None and not kill:
            try:
                self.request("shutdown", timeout=timeout)
            except WorkerError:
                pass
        try:
            self._process.wait(timeout=0 if kill else timeout)
        except subprocess.TimeoutExpired:
            pass
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=timeout)
        for stream in (self._stdin, self._stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing --

    def _read_stdout(self) -> None:
        for line in self._stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self._stderr_tail.append("[stdout, not protocol] " + line.rstrip())
                continue
            if message.get("type") in ("ready", "fatal"):
                self._ready.put(message)
                continue
            box = self._mailboxes.get(str(message.get("id")))
            if box is not None:
                box.put(message)
        self._process.wait()
        error = self._died()
        self._ready.put({"type": "fatal", "error": {"message": error.message}})
        with self._lock:
            for box in self._mailboxes.values():
                box.put({"type": "error", "error": {"code": error.code, "message": error.message}})

    def _read_stderr(self) -> None:
        for line in self._stderr:
            self._stderr_tail.append(line.rstrip())

    def _stderr_text(self) -> str:
        return "\n".join(self._stderr_tail)

    def _died(self) -> WorkerError:
        if self._dead is None:
            code = self._process.poll()
            tail = self._stderr_text()
            self._dead = WorkerError(
                "worker_died",
                f"the worker process exited (code {code})" + (f"; last output:\n{tail}" if tail else ""),
            )
        return self._dead


# ---- server ----------------------------------------------------------------------------------------


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Job:
    def __init__(self, request_id: str, params: dict) -> None:
        self.id = request_id
        self.params = params
        self.cancel = threading.Event()


class Worker:
    """Reads requests from `reader`, writes responses to `writer`; `engine` is an `engine.api.Engine`."""

    def __init__(self, engine, reader, writer) -> None:
        self.engine = engine
        self.reader = reader
        self.writer = writer
        self._write_lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._pending: dict[str, _Job] = {}
        self._current: _Job | None = None
        self._stopping = threading.Event()

    def send(self, message: dict) -> None:
        line = json.dumps(message, allow_nan=False)
        with self._write_lock:
            self.writer.write(line + "\n")
            self.writer.flush()

    def error(self, request_id, code: str, message: str) -> None:
        self.send({"id": request_id, "type": "error", "error": {"code": code, "message": message}})

    def run(self) -> int:
        runner = threading.Thread(target=self._run_jobs, daemon=True)
        runner.start()
        for line in self.reader:
            if not line.strip():
                continue
            self._handle_line(line)
            if self._stopping.is_set():
                break
        # stdin closed or shutdown: stop after cancelling whatever runs
        self._stopping.set()
        for job in list(self._pending.values()):
            job.cancel.set()
        self._jobs.put(None)
        runner.join(timeout=30)
        return 0

    def _handle_line(self, line: str) -> None:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as error:
            self.error(None, "parse_error", f"request is not valid JSON: {error}")
            return
        if not isinstance(request, dict):
            self.error(None, "invalid_request", "a request must be a JSON object")
            return
        request_id = request.get("id")
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            self.error(None, "invalid_request", "every request needs an 'id' (string or integer)")
            return
        request_id = str(request_id)
        method = request.get("method")
        params = request.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.error(request_id, "invalid_request", "'params' must be a JSON object")
            return
        if method == "ping":
            self.send({"id": request_id, "type": "result", "result": {"pong": True}})
        elif method == "cancel":
            target = str(params.get("target", ""))
            job = self._pending.get(target)
            if job is not None:
                job.cancel.set()
            self.send({"id": request_id, "type": "result", "result": {"cancelled": job is not None}})
        elif method == "shutdown":
            self._stopping.set()
            for job in list(self._pending.values()):
                job.cancel.set()
            self._jobs.put(None)
            self.send({"id": request_id, "type": "result", "result": {"bye": True}})
        elif method == "animate":
            if request_id in self._pending:
                self.error(request_id, "invalid_request", f"request id {request_id!r} is already in use")
                return
            job = _Job(request_id, params)
            self._pending[request_id] = job
            self._jobs.put(job)
        else:
            self.error(
                request_id,
                "invalid_request",
                f"unknown method {method!r}; use animate, cancel, ping or shutdown",
            )

    def _run_jobs(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if job.cancel.is_set():
                    raise RequestError("cancelled", "cancelled before it started")
                result = self._animate(job)
                self.send({"id": job.id, "type": "result", "result": result})
            except RequestError as error:
                self.error(job.id, error.code, str(error))
            except Exception as error:  # noqa: BLE001 - a worker must answer, never die on one request
                self.error(job.id, "internal_error", f"{type(error).__name__}: {error}")
            finally:
                self._pending.pop(job.id, None)

    def _animate(self, job: _Job) -> dict:
        from engine.api import Cancelled, parse_animate_options
        from engine.audio.io import AudioError

        params = dict(job.params)
        audio = params.pop("audio", None)
        if not isinstance(audio, str) or not audio:
            raise RequestError("invalid_params", "animate needs 'audio': the path of a wav/flac/ogg/mp3 file")
        output = params.pop("output", None)
        captions = params.pop("captions", None) or []
        want_progress = bool(params.pop("progress", True))
        if isinstance(captions, str):
            captions = [captions]
        try:
            options = parse_animate_options(params)
            targets = _check_outputs(output, captions)
        except ValueError as error:
            raise RequestError("invalid_params", str(error)) from None

        last_sent = [0.0]

        def progress(fraction: float) -> None:
            now = time.monotonic()
            if want_progress and (now - last_sent[0] > 0.1 or fraction >= 1.0):
                last_sent[0] = now
                self.send({"id": job.id, "type": "progress", "fraction": round(float(fraction), 4)})

        try:
            animation = self.engine.animate(audio, progress=progress, cancel=job.cancel, **options)
        except Cancelled:
            raise RequestError("cancelled", "cancelled by request") from None
        except AudioError as error:
            raise RequestError("audio_error", str(error)) from None
        except ValueError as error:
            raise RequestError("invalid_params", str(error)) from None
        if job.cancel.is_set():
            raise RequestError("cancelled", "cancelled by request")
        from dataclasses import asdict

        from engine.captions import write_captions

        result: dict[str, Any] = {
            "n_frames": animation.n_frames,
            "fps": animation.fps,
            "duration": animation.duration,
            "captions": [asdict(c) for c in animation.captions],
        }
        if targets["output"] is not None:
            result["output"] = str(animation.save(targets["output"]))
        else:
            result["arrays"] = {
                name: _encode_array(getattr(animation, name)) for name in ("offsets", "arkit")
            }
            result["audio_phonemes"] = [asdict(p) for p in animation.audio_phonemes]
            result["lip_phonemes"] = [asdict(p) for p in animation.lip_phonemes]
        result["caption_files"] = [str(write_captions(animation, path)) for path in targets["captions"]]
        return result


def _check_outputs(output, captions) -> dict:
    """Validate every output path before any work, so a bad path fails fast and writes nothing."""
    out_path = None
    if output is not None:
        if not isinstance(output, str) or not output.endswith(".npz"):
            raise ValueError(f"'output' must be a path ending in .npz, got {output!r}")
        out_path = Path(output)
        if not out_path.parent.is_dir():
            raise ValueError(f"output folder {out_path.parent} does not exist")
    caption_paths = []
    for path in captions:
        if not isinstance(path, str) or Path(path).suffix.lower() not in (".srt", ".vtt", ".json"):
            raise ValueError(f"caption path {path!r} must end in .srt, .vtt or .json")
        if not Path(path).parent.is_dir():
            raise ValueError(f"caption folder {Path(path).parent} does not exist")
        caption_paths.append(Path(path))
    return {"output": out_path, "captions": caption_paths}


def _encode_array(array) -> dict:
    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.float32)
    return {
        "dtype": "float32",
        "shape": list(array.shape),
        "base64": base64.b64encode(array.tobytes()).decode(),
    }


def decode_array(blob: dict):
    """Inverse of the inline-array encoding (needs numpy, not torch)."""
    import numpy as np

    return np.frombuffer(base64.b64decode(blob["base64"]), dtype=blob["dtype"]).reshape(blob["shape"])


def serve_stdio(weights: str | None = None, device: str = "auto", threads: int | None = None) -> int:
    """Entry point of `python -m engine serve --stdio`."""
    import io

    protocol_out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True)
    requests_in = io.TextIOWrapper(
        sys.stdin.buffer, encoding="utf-8", errors="replace"
    )  # bad bytes: parse_error
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol stream
    try:
        from engine import __version__
        from engine.api import Engine

        engine = Engine(weights=weights, device=device, threads=threads)
    except Exception as error:  # noqa: BLE001 - reported to the client, then a clean exit
        protocol_out.write(
            json.dumps({"id": None, "type": "fatal", "error": {"code": "startup", "message": str(error)}})
            + "\n"
        )
        protocol_out.flush()
        return 2
    worker = Worker(engine, requests_in, protocol_out)
    worker.send(
        {
            "id": None,
            "type": "ready",
            "version": __version__,
            "device": str(engine.device),
            "protocol": PROTOCOL_VERSION,
        }
    )
    return worker.run()
