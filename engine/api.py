"""The one entry point every caller uses: `Engine(...).animate(audio) -> Animation`.

The CLI, the stdio worker, the benchmark and the Blender add-on all go through this class, so
validation, device choice, long-audio chunking and captions behave the same everywhere. Two backends
run the same network: torch (CPU or CUDA) and engine.numpy_runtime (CPU, nothing but numpy); this
module imports neither until an Engine is built, and the numpy backend never imports torch.

    from engine.api import Engine
    engine = Engine()                      # shipped weights; torch on a CUDA GPU, else numpy
    take = engine.animate("take.wav", emotion=[(0, "neutral", 1), (4, "happy", 0.8)])
    take.save("take.npz")

What a take is asked for is an `engine.request.AnimateRequest`; keywords here are its fields.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.animation import Animation
from engine.audio.io import MODEL_SAMPLE_RATE, AudioError, load_audio
from engine.audio.level import normalize_level
from engine.inference.chunking import DecodePlan
from engine.inference.control import Cancelled, check_cancel
from engine.inference.device import choose_backend, select_device, set_threads
from engine.inference.finish import finish_motion
from engine.inference.schedule import EmotionSpec, Keyframe, emotion_cond
from engine.request import AnimateRequest, as_request, check_fps, style_fields, write_outputs

if TYPE_CHECKING:
    import torch

MEL_WINDOW_SAMPLES = 10 * MODEL_SAMPLE_RATE  # log-mel computed 10 s at a time: the STFT's buffers stay small
MEL_MARGIN_FRAMES = 4  # >= half the STFT window in hops: frames this far from a cut are exact
LONG_TAKE_SECONDS = 60.0  # a take written to files from a longer recording streams (flat memory)

__all__ = ["AnimateRequest", "AudioError", "Cancelled", "Engine"]


@dataclass(frozen=True)
class _Clip:
    """A request with its audio loaded and its conditioning parsed: what the decoder batch needs."""

    request: AnimateRequest
    audio: np.ndarray
    fps: float
    schedule: list[Keyframe]
    style: np.ndarray
    text: str | None = None  # the script (script mode); None: audio only
    notes: tuple[str, ...] = ()


def mel_pieces(n_samples: int) -> list[tuple[int, int]]:
    """The log-mel frame ranges [first, last) computed at a time for a recording of `n_samples`:
    one for a recording up to MEL_WINDOW_SAMPLES, else windows of that length. A long take that
    streams (engine.numpy_runtime.long_take) computes the same pieces, so it gets the same numbers."""
    from engine.audio.features import HOP_LENGTH, n_mel_frames

    total = n_mel_frames(n_samples)
    if n_samples <= MEL_WINDOW_SAMPLES:
        return [(0, total)]
    size = MEL_WINDOW_SAMPLES // HOP_LENGTH
    return [(first, min(total, first + size)) for first in range(0, total, size)]


def log_mel_piece(
    read: Callable[[int, int], np.ndarray], n_samples: int, first: int, last: int
) -> np.ndarray:
    """log-mel frames [first, last) of a recording whose samples `read(start, stop)` returns, from
    the audio around them (MEL_MARGIN_FRAMES each side, so the frames are those of the whole)."""
    from engine.audio.features import HOP_LENGTH, log_mel

    start = max(0, first - MEL_MARGIN_FRAMES)
    stop_sample = min(n_samples, (last + MEL_MARGIN_FRAMES) * HOP_LENGTH)
    return log_mel(read(start * HOP_LENGTH, stop_sample))[first - start : last - start]


def log_mel_windowed(audio: np.ndarray) -> np.ndarray:
    """`engine.audio.features.log_mel` of any length in bounded memory (windows with exact seams)."""
    parts = [
        log_mel_piece(lambda a, b: audio[a:b], audio.shape[0], *piece) for piece in mel_pieces(audio.shape[0])
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


class Engine:
    """A loaded model on a device, ready to animate. Thread-safe for one caller at a time.

    weights: path of a `.safetensors` checkpoint (None = the shipped `weights/dualface.safetensors`).
    device: "auto", "cpu", "cuda" or "cuda:N".
    backend: "auto" (torch when it is installed and a CUDA GPU is present or asked for, else numpy),
    "numpy" (CPU, imports no torch) or "torch". See engine.inference.device.choose_backend.
    threads: CPU threads for torch (None = torch's default; numpy uses its BLAS's own setting).
    precision: "auto" (float32 on every device), "float32", or "float16" (CUDA only, opt-in: on an
    H200 it was slower than float32 and a 60 s take drifted up to 4 mm from it, although a 3 s probe
    clip agreed within 2 %; docs/model.md).
    closure_detector: the lip-closure detector's weights file (None = the shipped one,
    engine/assets/closure_detector.npz), or "off" to keep the model's own lips (evaluation: what the
    closure step adds; see engine.closure).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        precision: str = "auto",
        plan: DecodePlan | None = None,
        model: torch.nn.Module | None = None,
        backend: str = "auto",
        closure_detector: str | Path | None = None,
    ) -> None:
        if precision not in ("auto", "float32", "float16"):
            raise ValueError(f"precision must be auto, float32 or float16, got {precision!r}")
        from engine.closure.detector import load_detector

        self.closure_detector = (
            None
            if closure_detector == "off"
            else load_detector(None if closure_detector is None else str(closure_detector))
        )
        self.backend = choose_backend(backend, device, has_torch_model=model is not None)
        self.weights = (
            "in-memory model" if model is not None else "shipped" if weights is None else str(weights)
        )
        self._weights_path = weights
        self._torch_engine: Engine | None = None
        self.plan = plan or DecodePlan()
        if self.backend == "numpy":
            if precision == "float16":
                raise ValueError("float16 needs a CUDA device; use precision='float32' on CPU")
            from engine.numpy_runtime.runtime import NumpyModel

            self.runner: Any = NumpyModel(weights)
            self.device: Any = "cpu"
            return
        from engine.inference.torch_backend import TorchModel

        set_threads(threads)
        torch_device = select_device(device)
        if precision == "float16" and torch_device.type != "cuda":
            raise ValueError("float16 needs a CUDA device; use precision='float32' on CPU")
        if model is None:
            from engine.weights import load_checkpoint

            model = load_checkpoint(weights)
        self.runner = TorchModel(model, torch_device)
        self.device = torch_device
        if precision == "float16":
            self.runner.set_half(True)

    @property
    def precision(self) -> str:
        return self.runner.precision

    @property
    def model(self):
        """The torch DualFace (streaming, baselines, tools); with the numpy backend it is loaded from
        the same weights on first use, which imports torch."""
        return (self if self.backend == "torch" else self._torch()).runner.model

    @property
    def dtype(self):
        return (self if self.backend == "torch" else self._torch()).runner.dtype

    def _torch(self) -> Engine:
        """A torch CPU engine on the same weights, for the features only torch offers (streaming)."""
        if self._torch_engine is None:
            self._torch_engine = Engine(
                weights=self._weights_path, backend="torch", device="cpu", plan=self.plan
            )
        return self._torch_engine

    # ------------------------------------------------------------------------------------------ offline

    def animate(
        self,
        request: AnimateRequest | str | Path | np.ndarray,
        progress: Callable[[float], None] | None = None,
        cancel=None,
        **options: Any,
    ) -> Animation:
        """One take -> Animation with motion, phonemes and captions.

        `request` is an `engine.request.AnimateRequest`, or the audio (a path, or an array with
        `sample_rate=`) with the request's fields as keywords: `fps`, `emotion` (a name or a schedule
        `[(time_s, emotion, intensity), ...]` interpolated per frame), `intensity`, `style`,
        `captions`, `language`, `text`. `progress(fraction)` is called as work proceeds; setting the
        `cancel` threading.Event stops the work with `Cancelled`. Nothing is written to disk.
        """
        return self.animate_batch([as_request(request, **options)], progress=progress, cancel=cancel)[0]

    def animate_batch(
        self,
        items: Sequence[AnimateRequest | Mapping[str, Any] | str | Path],
        progress: Callable[[float], None] | None = None,
        cancel=None,
    ) -> list[Animation]:
        """Animate several clips in one decoder batch (their chunks share every decoder step).

        Each item is an AnimateRequest, a mapping of its fields, or an audio path. Every item is
        validated and loaded before any decoding, so one bad item fails the call up front.
        """
        started = time.perf_counter()
        report = _Progress(progress)
        prepared = [self._prepare(as_request(item)) for item in items]
        if not prepared:
            return []
        report(0.02)
        clips = []
        for i, job in enumerate(prepared):
            check_cancel(cancel)
            clips.append(self._encode(job, cancel))
            report(0.02 + 0.08 * (i + 1) / len(prepared))
        decoded = self.runner.decode(
            clips, self.plan, progress=lambda f: report(0.1 + 0.8 * f), cancel=cancel
        )
        animations = []
        for job, clip, (offsets, arkit, motion) in zip(prepared, clips, decoded):
            check_cancel(cancel)
            animations.append(self._finish(job, clip, offsets, arkit, motion))
        report(1.0)
        elapsed = time.perf_counter() - started
        for animation in animations:
            animation.meta["batch_seconds"] = round(elapsed, 4)
        return animations

    def write_take(
        self,
        request: AnimateRequest | str | Path,
        progress: Callable[[float], None] | None = None,
        cancel=None,
        **options: Any,
    ) -> tuple[Any, list[Path]]:
        """Animate one take and write the files it names (`output`, `caption_files`): all or none.

        -> (the take, the paths written). The take is an `Animation`, except for a recording over
        LONG_TAKE_SECONDS on the numpy backend without a script or layers: that take streams to disk
        (engine.numpy_runtime.long_take) in memory that stays flat however long the recording, with
        the same result, and what returns is a `WrittenTake` (fps, n_frames, duration, phones,
        captions and meta; no arrays: `Animation.load(request.output)` reads them).
        """
        request = as_request(request, **options)
        if self._is_long_file_take(request):
            from engine.script.take import prepare_script

            text, notes = prepare_script(request.text, request.audio, request.language)
            if text is None:
                return self._stream_take(request, notes, progress, cancel)
        animation = self.animate(request, progress=progress, cancel=cancel)
        check_cancel(cancel)
        return animation, write_outputs(animation, request)

    def _is_long_file_take(self, request: AnimateRequest) -> bool:
        from engine.numpy_runtime.long_take import recording_seconds

        return (
            self.backend == "numpy"
            and isinstance(request.audio, str)
            and bool(request.output or request.caption_files)
            and not request.layers
            and recording_seconds(request.audio) > LONG_TAKE_SECONDS
        )

    def _stream_take(
        self, request: AnimateRequest, notes: list[str], progress, cancel
    ) -> tuple[Any, list[Path]]:
        from engine.numpy_runtime.long_take import LongTakeJob, animate_to_files

        schedule, style = request.schedule(), request.style_vector()
        meta = {**self._meta(request, schedule, style), "layers": []}  # engine.layers: none asked
        if notes:
            meta["notes"] = notes
        job = LongTakeJob(
            audio=Path(request.audio),
            fps=request.frame_rate,
            schedule=schedule,
            style=style,
            output=None if request.output is None else Path(request.output),
            caption_files=tuple(Path(p) for p in request.caption_files),
            captions=request.captions,
            language="en" if request.language == "auto" else request.language,
            meta=meta,
            closure_detector=self.closure_detector,
        )
        take = animate_to_files(self.runner.network, job, self.plan, _Progress(progress), cancel)
        written = ([request.output] if request.output else []) + list(request.caption_files)
        return take, [Path(p) for p in written]

    # ------------------------------------------------------------------------------------------ streaming

    def stream(
        self,
        fps: float = 30,
        emotion: EmotionSpec = "neutral",
        intensity: float = 1.0,
        style: Any = None,
        sample_rate: int = MODEL_SAMPLE_RATE,
        lookahead_frames: int = 1,
    ):
        """A live session: `push(samples) -> [StreamFrame, ...]` as soon as each frame can be decoded,
        `flush()` at the end. See engine.inference.streaming for the latency trade-off."""
        from engine.data.style import SpeakerStyle
        from engine.inference.streaming import Stream

        style_vector = SpeakerStyle(**style_fields(style)).as_vector()
        engine = self if self.backend == "torch" else self._torch()  # streaming runs on torch
        return Stream(engine, check_fps(fps), emotion, intensity, style_vector, sample_rate, lookahead_frames)

    # ------------------------------------------------------------------------------------------ internals

    def _prepare(self, request: AnimateRequest) -> _Clip:
        from engine.script.take import prepare_script

        audio = normalize_level(load_audio(request.audio, request.sample_rate))  # the level training saw
        text, notes = prepare_script(request.text, request.audio, request.language)
        schedule, style = request.schedule(), request.style_vector()
        return _Clip(request, audio, request.frame_rate, schedule, style, text, tuple(notes))

    def _encode(self, job: _Clip, cancel):
        from engine.audio.features import n_motion_frames

        n_frames = n_motion_frames(job.audio.shape[0], job.fps)
        cond = emotion_cond(job.schedule, 1.0, n_frames, job.fps)
        return self.runner.encode(log_mel_windowed(job.audio), job.fps, n_frames, cond, job.style, cancel)

    def _meta(self, request: AnimateRequest, schedule: list[Keyframe], style: np.ndarray) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source": request.source,
            "emotion": [list(k) for k in schedule],
            "style": style.tolist(),
            "weights": self.weights,
            "backend": self.backend,
            "device": str(self.device),
            "precision": self.precision,
        }
        return meta

    def _finish(
        self, job: _Clip, clip, offsets: np.ndarray, arkit: np.ndarray, motion: np.ndarray
    ) -> Animation:
        from engine.captions import build_captions, ctc_greedy_phones

        fps, request = job.fps, job.request
        audio_phones = ctc_greedy_phones(self.runner.audio_logprobs(clip), fps)
        lip_phones = ctc_greedy_phones(self.runner.lip_logprobs(motion), fps)
        meta = self._meta(request, job.schedule, job.style)
        cond = emotion_cond(job.schedule, 1.0, len(offsets), fps)

        def finished() -> tuple[np.ndarray, np.ndarray]:
            return finish_motion(offsets, arkit, job.audio, fps, cond, job.style, self.closure_detector)

        notes = list(job.notes)
        if job.text is None:
            language = "en" if request.language == "auto" else request.language
            captions = build_captions(lip_phones, audio_phones, language) if request.captions else []
            offsets, arkit = finished()
        else:
            from engine.script.scripted import ScriptInput, script_take

            take = ScriptInput(
                job.text, request.language, job.audio, fps, job.schedule, job.style, request.source
            )
            script = script_take(self.runner, take, clip, finished, lip_phones, len(offsets))
            offsets, arkit, captions = (
                script.offsets,
                script.arkit,
                script.captions if request.captions else [],
            )
            meta["script"] = script.record
            notes += script.record["warnings"]
        if notes:
            meta["notes"] = notes
        animation = Animation(
            fps=fps,
            offsets=offsets,
            arkit=arkit,
            audio_phonemes=audio_phones,
            lip_phonemes=lip_phones,
            captions=captions,
            meta=meta,
        )
        from engine.layers import layer_animation  # blinks, gaze, head motion (request.layers)

        return layer_animation(animation, job.audio, MODEL_SAMPLE_RATE, job.schedule, request.layers)


class _Progress:
    """Monotonic progress in 0..1 across the stages; an exception from the callback cancels the call."""

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self.callback = callback
        self.last = -1.0

    def __call__(self, fraction: float) -> None:
        if self.callback is None:
            return
        fraction = min(1.0, max(self.last, float(fraction)))
        if fraction > self.last:
            self.last = fraction
            self.callback(fraction)
