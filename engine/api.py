"""The one entry point every caller uses: `Engine(...).animate(audio) -> Animation`.

The CLI, the stdio worker, the benchmark and the Blender add-on (through the worker) all go through
this class, so validation, device choice, long-audio chunking and captions behave the same everywhere.

    from engine.api import Engine
    engine = Engine()                      # shipped weights, CUDA if available
    take = engine.animate("take.wav", emotion=[(0, "neutral", 1), (4, "happy", 0.8)])
    take.save("take.npz")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.animation import Animation
from engine.audio.io import MODEL_SAMPLE_RATE, AudioError, load_audio
from engine.inference.decode import (
    Cancelled,
    ClipInput,
    DecodePlan,
    audio_logprobs,
    audio_valid_frames,
    check_cancel,
    decode_clips,
    encode_audio_windowed,
    lip_logprobs,
)
from engine.inference.device import select_device, set_threads
from engine.inference.schedule import EmotionSpec, emotion_cond, parse_schedule

SUPPORTED_FPS = (24, 25, 30, 50, 60)
MEL_WINDOW_SAMPLES = 30 * MODEL_SAMPLE_RATE
MEL_MARGIN_FRAMES = 4  # >= half the STFT window in hops: frames this far from a cut are exact
HALF_PRECISION_TOLERANCE = 0.02

__all__ = ["AudioError", "Cancelled", "Engine", "parse_animate_options"]


def parse_animate_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check the options of `Engine.animate` given as plain data (CLI, JSON jobs, worker requests)."""
    allowed = {"fps", "emotion", "intensity", "style", "captions", "language", "sample_rate"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {', '.join(sorted(allowed))}")
    options = dict(params)
    if "fps" in options:
        options["fps"] = check_fps(options["fps"])
    emotion = options.get("emotion", "neutral")
    if isinstance(emotion, list):
        emotion = [tuple(k) if isinstance(k, list) else k for k in emotion]
        options["emotion"] = emotion
    parse_schedule(emotion, float(options.get("intensity", 1.0)))
    if "style" in options:
        style_vector(options["style"])
    return options


def check_fps(fps: Any) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a number, got {fps!r}") from None
    if value not in SUPPORTED_FPS:
        raise ValueError(f"fps {fps} is not supported; use one of {', '.join(map(str, SUPPORTED_FPS))}")
    return value


def style_vector(style: Any) -> np.ndarray:
    """SpeakerStyle, a dict of its fields, or its 5-vector -> the model's style vector."""
    from engine.data.style import SpeakerStyle

    if style is None:
        return SpeakerStyle().as_vector()
    if isinstance(style, SpeakerStyle):
        return style.as_vector()
    if isinstance(style, Mapping):
        try:
            return SpeakerStyle(**{k: float(v) for k, v in style.items()}).as_vector()
        except TypeError as error:
            raise ValueError(f"style: {error}; fields are those of engine.data.style.SpeakerStyle") from None
    return SpeakerStyle.from_vector(np.asarray(style, dtype=np.float64)).as_vector()


def log_mel_windowed(audio: np.ndarray) -> np.ndarray:
    """`engine.audio.features.log_mel` of any length in bounded memory (30 s windows, exact seams)."""
    from engine.audio.features import HOP_LENGTH, log_mel, n_mel_frames

    total = n_mel_frames(audio.shape[0])
    if audio.shape[0] <= MEL_WINDOW_SAMPLES:
        return log_mel(audio)
    hop_frames = MEL_WINDOW_SAMPLES // HOP_LENGTH
    parts = []
    for first in range(0, total, hop_frames):
        last = min(total, first + hop_frames)
        start = max(0, first - MEL_MARGIN_FRAMES)
        stop_sample = min(audio.shape[0], (last + MEL_MARGIN_FRAMES) * HOP_LENGTH)
        mel = log_mel(audio[start * HOP_LENGTH : stop_sample])
        parts.append(mel[first - start : last - start])
    return np.concatenate(parts, axis=0)


class Engine:
    """A loaded model on a device, ready to animate. Thread-safe for one caller at a time.

    weights: path of a `.safetensors` checkpoint (None = the shipped `weights/dualface.safetensors`).
    device: "auto" (CUDA when torch sees a GPU, else CPU), "cpu", "cuda" or "cuda:N".
    threads: CPU threads for torch (None = torch's default).
    precision: "auto" (half precision on CUDA when a probe clip shows it matches float32, float32 on
    CPU), "float32" or "float16" (CUDA only, unchecked).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        precision: str = "auto",
        plan: DecodePlan | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        set_threads(threads)
        self.device = select_device(device)
        if precision not in ("auto", "float32", "float16"):
            raise ValueError(f"precision must be auto, float32 or float16, got {precision!r}")
        if precision == "float16" and self.device.type != "cuda":
            raise ValueError("float16 needs a CUDA device; use precision='float32' on CPU")
        if model is None:
            from engine.weights import load_checkpoint

            model = load_checkpoint(weights)
            self.weights = "shipped" if weights is None else str(weights)
        else:
            self.weights = "in-memory model"
        self.plan = plan or DecodePlan()
        self.dtype = torch.float32
        self.model = model.to(self.device, self.dtype).eval().requires_grad_(False)
        self.half_precision_error: float | None = None
        if precision == "float16" or (precision == "auto" and self.device.type == "cuda"):
            self._try_half_precision(force=precision == "float16")

    def _try_half_precision(self, force: bool) -> None:
        """Switch to float16 when it reproduces float32 on a probe clip (max error within 2% of the
        motion's range); `auto` keeps float32 otherwise, so speed never costs visible accuracy."""
        probe = _probe_audio()
        reference = self.animate(probe, sample_rate=MODEL_SAMPLE_RATE, captions=False).offsets
        self.model.half()
        self.dtype = torch.float16
        candidate = self.animate(probe, sample_rate=MODEL_SAMPLE_RATE, captions=False).offsets
        scale = max(float(np.abs(reference).max()), 1e-6)
        error = float(np.abs(candidate - reference).max()) / scale if np.isfinite(candidate).all() else np.inf
        self.half_precision_error = error
        if error > HALF_PRECISION_TOLERANCE and not force:
            self.model.float()
            self.dtype = torch.float32

    # ------------------------------------------------------------------------------------------ offline

    def animate(
        self,
        audio: str | Path | np.ndarray,
        sample_rate: int | None = None,
        fps: float = 30,
        emotion: EmotionSpec = "neutral",
        intensity: float = 1.0,
        style: Any = None,
        progress: Callable[[float], None] | None = None,
        cancel=None,
        captions: bool = True,
        language: str = "en",
    ) -> Animation:
        """Audio (path or array + sample_rate) -> Animation with motion, phonemes and captions.

        `emotion` is a name or a schedule `[(time_s, emotion, intensity), ...]` interpolated per frame;
        `progress(fraction)` is called as work proceeds; setting the `cancel` threading.Event stops
        the work with `Cancelled`.
        """
        return self.animate_batch(
            [
                {
                    "audio": audio,
                    "sample_rate": sample_rate,
                    "fps": fps,
                    "emotion": emotion,
                    "intensity": intensity,
                    "style": style,
                    "captions": captions,
                    "language": language,
                }
            ],
            progress=progress,
            cancel=cancel,
        )[0]

    def animate_batch(
        self,
        items: Sequence[Mapping[str, Any] | str | Path],
        progress: Callable[[float], None] | None = None,
        cancel=None,
    ) -> list[Animation]:
        """Animate several clips in one decoder batch (their chunks share every decoder step).

        Each item is a path or a dict of `animate` arguments (`audio` required). Every item is
        validated and loaded before any decoding, so one bad item fails the call up front.
        """
        started = time.perf_counter()
        report = _Progress(progress)
        prepared = [self._prepare(item if isinstance(item, Mapping) else {"audio": item}) for item in items]
        if not prepared:
            return []
        report(0.02)
        clips = []
        for i, job in enumerate(prepared):
            check_cancel(cancel)
            clips.append(self._encode(job, cancel))
            report(0.02 + 0.08 * (i + 1) / len(prepared))
        decoded = decode_clips(
            self.model, clips, self.plan, progress=lambda f: report(0.1 + 0.8 * f), cancel=cancel
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
        from engine.inference.streaming import Stream

        return Stream(
            self, check_fps(fps), emotion, intensity, style_vector(style), sample_rate, lookahead_frames
        )

    # ------------------------------------------------------------------------------------------ internals

    def _prepare(self, item: Mapping[str, Any]) -> dict[str, Any]:
        item = dict(item)
        if "audio" not in item:
            raise ValueError("each batch item needs 'audio' (a path or an array)")
        unknown = sorted(
            set(item)
            - {"audio", "sample_rate", "fps", "emotion", "intensity", "style", "captions", "language"}
        )
        if unknown:
            raise ValueError(f"unknown animate argument(s) {unknown}")
        fps = check_fps(item.get("fps", 30))
        keys = parse_schedule(item.get("emotion", "neutral"), float(item.get("intensity", 1.0)))
        style = style_vector(item.get("style"))
        audio = load_audio(item["audio"], item.get("sample_rate"))
        return {
            "audio": audio,
            "fps": fps,
            "schedule": keys,
            "style": style,
            "captions": bool(item.get("captions", True)),
            "language": str(item.get("language", "en")),
            "source": str(item["audio"]) if isinstance(item["audio"], (str, Path)) else "array",
        }

    def _encode(self, job: dict[str, Any], cancel) -> ClipInput:
        from engine.audio.features import n_motion_frames

        n_frames = n_motion_frames(job["audio"].shape[0], job["fps"])
        mel_np = log_mel_windowed(job["audio"])
        mel = torch.from_numpy(mel_np).to(self.device, self.dtype)
        with torch.no_grad():
            features = encode_audio_windowed(self.model, mel, job["fps"], n_frames, cancel)
        cond = emotion_cond(job["schedule"], 1.0, n_frames, job["fps"])
        return ClipInput(
            audio_feat=features,
            audio_valid=audio_valid_frames(mel_np.shape[0], job["fps"], n_frames, self.device),
            cond=torch.from_numpy(cond).to(self.device, self.dtype),
            style=torch.from_numpy(job["style"]).to(self.device, self.dtype),
        )

    def _finish(
        self, job, clip: ClipInput, offsets: np.ndarray, arkit: np.ndarray, motion: np.ndarray
    ) -> Animation:
        from engine.captions import build_captions, ctc_greedy_phones

        fps = job["fps"]
        audio_phones = ctc_greedy_phones(audio_logprobs(self.model, clip.audio_feat), fps)
        lip_phones = ctc_greedy_phones(lip_logprobs(self.model, motion, self.device, self.dtype), fps)
        captions = build_captions(lip_phones, audio_phones, job["language"]) if job["captions"] else []
        return Animation(
            fps=fps,
            offsets=offsets.astype(np.float32, copy=False),
            arkit=np.clip(arkit, 0.0, 1.0).astype(np.float32, copy=False),
            audio_phonemes=audio_phones,
            lip_phonemes=lip_phones,
            captions=captions,
            meta={
                "source": job["source"],
                "emotion": [list(k) for k in job["schedule"]],
                "style": job["style"].tolist(),
                "weights": self.weights,
                "device": str(self.device),
                "precision": str(self.dtype).replace("torch.", ""),
            },
        )


def _probe_audio(seconds: float = 3.0) -> np.ndarray:
    """A fixed, speech-rhythm noise clip: enough to exercise every layer in a precision check."""
    rng = np.random.default_rng(1234)
    t = np.arange(int(seconds * MODEL_SAMPLE_RATE)) / MODEL_SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None)
    return (0.3 * envelope * rng.standard_normal(t.shape[0])).astype(np.float32)


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
