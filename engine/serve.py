"""A persistent inference worker speaking line-delimited JSON over stdin/stdout, and its client.

Why a worker: Blender's Python cannot import torch safely, and loading the model costs seconds. The
add-on starts `python -m engine serve --stdio` once with the user's Python, keeps it alive, and sends it
one JSON request per line. The client half of this module (`WorkerClient`) is stdlib only, so the
add-on imports it without torch; the server half imports the engine lazily.

Protocol, in short (docs/worker-protocol.md has it in full): one JSON object per line each way.
A request is `{"id", "method": "animate" | "cancel" | "ping" | "shutdown", "params"}`; animate's params
are an `engine.request.AnimateRequest` in its JSON form (docs/request.schema.json, with
`schema_version`) plus `progress` (bool). Answers carry the request's id and are `progress`,
`result` or `error` (`code`, `message`); the worker greets with `ready` (its `schema_version`).
Requests run one at a time in arrival order; `ping` and `cancel` are handled on arrival. Nothing but
protocol lines is ever written to stdout (library prints go to stderr).
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

from engine.request import (
    SCHEMA_VERSION,
    AnimateRequest,
    AudioFileError,
    RequestError,
    UnsupportedVersion,
)

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
MAX_LINE_CHARS = 1_000_000  # a request names its audio by path: no legitimate line comes near this
MAX_MESSAGE_CHARS = 2000


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
                errors="replace",  # a stray non-UTF-8 byte must not kill the reader
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
        if hello.get("schema_version", 1) < SCHEMA_VERSION:
            self.close(kill=True)
            raise WorkerError(
                "worker_start_failed",
                f"the engine at {python_exe} speaks request schema {hello.get('schema_version', 1)}, this "
                f"client needs {SCHEMA_VERSION}: update the engine there (pip install the same DualFace)",
            )
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

    def animate(
        self, request: AnimateRequest | str, timeout: float | None = None, on_progress=None, **params
    ) -> dict:
        """Animate a request, or an audio path with the request's fields as keywords (plus
        `progress=False` to get no progress messages)."""
        if isinstance(request, AnimateRequest):
            fields = request.to_mapping()
        else:
            fields = {"schema_version": SCHEMA_VERSION, "audio": str(request)}
        return self.request("animate", {**fields, **params}, timeout, on_progress)

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
        """Route protocol messages to their mailboxes; any other line is logged, never fatal, so the
        worker's exit is always reported."""
        try:
            for line in self._stdout:
                message = _protocol_message(line)
                if message is None:
                    self._stderr_tail.append("[stdout, not protocol] " + line.rstrip()[:200])
                elif message["type"] in ("ready", "fatal"):
                    self._ready.put(message)
                else:
                    box = self._mailboxes.get(str(message.get("id")))
                    if box is not None:
                        box.put(message)
        except (OSError, ValueError):  # the stream was closed under us by close()
            pass
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stdout closed but the process lingers: it is no worker now
            pass
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


def _protocol_message(line: str) -> dict | None:
    """A line of the worker's stdout as a protocol message (a JSON object with a string `type`), else None."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict) and isinstance(message.get("type"), str):
        return message
    return None


class ProtocolError(Exception):
    """A request the worker answers with an error message: `code` is the protocol's error code."""

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
        if len(message) > MAX_MESSAGE_CHARS:  # an error may quote a huge value back
            message = message[:MAX_MESSAGE_CHARS] + " ..."
        self.send({"id": request_id, "type": "error", "error": {"code": code, "message": message}})

    def run(self) -> int:
        runner = threading.Thread(target=self._run_jobs, daemon=True)
        runner.start()
        while not self._stopping.is_set():
            line = self.reader.readline(MAX_LINE_CHARS + 1)
            if not line:
                break
            if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                self._discard_rest_of_line()
                self.error(
                    None,
                    "parse_error",
                    f"request line longer than {MAX_LINE_CHARS} characters; send audio as a file path",
                )
                continue
            if line.strip():
                self._handle_line(line)
        # stdin closed or shutdown: stop after cancelling whatever runs
        self._stopping.set()
        for job in list(self._pending.values()):
            job.cancel.set()
        self._jobs.put(None)
        runner.join(timeout=30)
        return 0

    def _discard_rest_of_line(self) -> None:
        while True:
            piece = self.reader.readline(MAX_LINE_CHARS + 1)
            if not piece or piece.endswith("\n"):
                return

    def _handle_line(self, line: str) -> None:
        """Answer one request line; whatever the line holds, it gets an answer and the worker lives."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as error:  # bad JSON, 5000-digit numbers, 100,000-deep nesting
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            self.error(None, "parse_error", f"request is not valid JSON: {reason}")
            return
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            self._dispatch(request)
        except Exception as error:  # noqa: BLE001 - one request must never take the worker down
            known = (
                str(request_id)
                if isinstance(request_id, (str, int)) and not isinstance(request_id, bool)
                else None
            )
            self.error(known, "internal_error", f"{type(error).__name__}: {error}")

    def _dispatch(self, request: Any) -> None:
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
            answer: tuple[str, str] | None = None  # (code, message) of an error
            try:
                if job.cancel.is_set():
                    raise ProtocolError("cancelled", "cancelled before it started")
                result = self._animate(job)
            except ProtocolError as error:
                answer = (error.code, str(error))
            except Exception as error:  # noqa: BLE001 - a worker must answer, never die on one request
                answer = ("internal_error", f"{type(error).__name__}: {error}")
            finally:
                self._pending.pop(job.id, None)  # before the answer: the client may reuse the id at once
            if answer is None:
                self.send({"id": job.id, "type": "result", "result": result})
            else:
                self.error(job.id, *answer)

    def _animate(self, job: _Job) -> dict:
        from engine.api import Cancelled
        from engine.audio.io import AudioError

        params = dict(job.params)
        want_progress = params.pop("progress", True)
        request = parse_animate_params(params)
        last_sent = [0.0]

        def progress(fraction: float) -> None:
            now = time.monotonic()
            if want_progress and (now - last_sent[0] > 0.1 or fraction >= 1.0):
                last_sent[0] = now
                self.send({"id": job.id, "type": "progress", "fraction": round(float(fraction), 4)})

        try:  # the take's files are written here (a long take streams to them); arrays travel inline
            animation, written = self.engine.write_take(request, progress=progress, cancel=job.cancel)
        except Cancelled:
            raise ProtocolError("cancelled", "cancelled by request") from None
        except AudioError as error:
            raise ProtocolError("audio_error", str(error)) from None
        except ValueError as error:
            raise ProtocolError("invalid_params", str(error)) from None
        return _result(animation, request, written)


def parse_animate_params(params: dict) -> AnimateRequest:
    """Animate params as a checked request (files too), or the ProtocolError that answers them."""
    try:
        request = AnimateRequest.from_mapping(params)
        request.check_files()
    except UnsupportedVersion as error:
        raise ProtocolError("unsupported_version", str(error)) from None
    except AudioFileError as error:
        raise ProtocolError("audio_error", str(error)) from None
    except RequestError as error:
        raise ProtocolError("invalid_params", str(error)) from None
    if not isinstance(request.audio, str):
        raise ProtocolError("invalid_params", "animate needs 'audio': the path of a wav/flac/ogg/mp3 file")
    return request


def _result(animation, request: AnimateRequest, written: list) -> dict[str, Any]:
    """The result message of a finished take (its files already `written`), arrays inline when no
    take file was asked for."""
    from dataclasses import asdict

    result: dict[str, Any] = {
        "n_frames": animation.n_frames,
        "fps": animation.fps,
        "duration": animation.duration,
        "captions": [asdict(c) for c in animation.captions],
        "caption_files": [str(p) for p in written if str(p) != request.output],
    }
    if request.output is not None:
        result["output"] = request.output
    else:
        result["arrays"] = {name: _encode_array(getattr(animation, name)) for name in ("offsets", "arkit")}
        result["audio_phonemes"] = [asdict(p) for p in animation.audio_phonemes]
        result["lip_phonemes"] = [asdict(p) for p in animation.lip_phonemes]
    return result


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


def serve_stdio(
    weights: str | None = None, device: str = "auto", threads: int | None = None, backend: str = "auto"
) -> int:
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

        engine = Engine(weights=weights, device=device, threads=threads, backend=backend)
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
            "schema_version": SCHEMA_VERSION,
        }
    )
    return worker.run()
