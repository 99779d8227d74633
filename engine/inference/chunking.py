"""Any-length audio at linear cost: the plan of overlapping windows and chunks, and the seamless merge.

Audio encoder: its receptive field is finite (local attention), so windows with enough context on
both sides reproduce the whole-clip features exactly; only the window centres are kept.

Decoder: the clip is cut into chunks that are decoded *in parallel* as one batch, so a long clip costs
`chunk + warm-up + fade` decoder steps however long it is. Chunk i starts decoding `warmup + fade`
frames before the frames it owns, on the previous chunk's audio, so by the time it reaches its own
frames its key/value cache holds motion for the same sound the previous chunk saw; over the last
`fade` of those frames the two chunks' outputs are cross-faded with a raised-cosine weight, so
neither position nor velocity jumps at the border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.audio.features import FRAME_RATE as MEL_RATE

SUBSAMPLING = 4  # the audio encoder's strided convolutions: 4 log-mel frames per encoder frame
ENCODER_RATE = MEL_RATE / SUBSAMPLING  # encoder frames per second (25 Hz)
ENCODER_CORE_FRAMES = 750  # 30 s of 25 Hz encoder frames per audio-encoder window


@dataclass(frozen=True)
class DecodePlan:
    """How a clip is cut for decoding; the defaults are tuned for CPU throughput (see engine.bench)."""

    chunk_frames: int = 150  # frames owned by one chunk
    warmup_frames: int = 30  # frames decoded on the previous chunk's audio before blending
    fade_frames: int = 12  # frames cross-faded between neighbouring chunks


DEFAULT_PLAN = DecodePlan()


def encoder_context_frames(audio_layers: int, audio_window: int) -> int:
    """Encoder frames of context a window needs per side: attention reach plus the convolutions'."""
    return audio_layers * audio_window + 2


@dataclass(frozen=True)
class Chunk:
    decode_start: int  # first frame this chunk decodes (warm-up included)
    own_start: int  # first frame whose output it contributes at full or fading weight
    own_end: int  # one past the last frame it contributes

    @property
    def length(self) -> int:
        return self.own_end - self.decode_start


def plan_chunks(n_frames: int, chunk: int, warmup: int, fade: int) -> list[Chunk]:
    """Chunks owning consecutive `chunk`-frame spans; one chunk when the clip fits in one."""
    if n_frames <= 0:
        return []
    if chunk < 1 or warmup < 0 or fade < 0:
        raise ValueError("chunk must be >= 1 and warmup, fade >= 0")
    if n_frames <= chunk + warmup + fade:
        return [Chunk(0, 0, n_frames)]
    chunks = []
    for own_start in range(0, n_frames, chunk):
        own_end = min(n_frames, own_start + chunk)
        blend_start = max(0, own_start - fade)
        chunks.append(Chunk(max(0, blend_start - warmup), blend_start, own_end))
    # A tiny last chunk would barely warm up: fold it into the previous one.
    if len(chunks) > 1 and chunks[-1].own_end - chunks[-1].own_start - fade < chunk // 4:
        last = chunks.pop()
        chunks[-1] = Chunk(chunks[-1].decode_start, chunks[-1].own_start, last.own_end)
    return chunks


def crossfade_weights(fade: int) -> np.ndarray:
    """Weights of the incoming chunk over the fade: raised cosine, strictly inside (0, 1)."""
    if fade <= 0:
        return np.zeros(0, dtype=np.float32)
    x = (np.arange(fade, dtype=np.float64) + 0.5) / fade
    return (0.5 - 0.5 * np.cos(np.pi * x)).astype(np.float32)


def merge_chunks(outputs: list[np.ndarray], chunks: list[Chunk], n_frames: int, fade: int) -> np.ndarray:
    """Stitch per-chunk outputs (`outputs[i][k]` = frame `decode_start + k`) into one `[n_frames, ...]`."""
    first = outputs[0]
    merged = np.zeros((n_frames, *first.shape[1:]), dtype=first.dtype)
    ramp = crossfade_weights(fade)
    for i, (out, c) in enumerate(zip(outputs, chunks)):
        own = out[c.own_start - c.decode_start : c.own_end - c.decode_start]
        if i == 0 or fade == 0:
            merged[c.own_start : c.own_end] = own
            continue
        blend = min(fade, c.own_end - c.own_start)
        w = ramp[:blend].reshape(-1, *([1] * (own.ndim - 1)))
        span = slice(c.own_start, c.own_start + blend)
        merged[span] = (1.0 - w) * merged[span] + w * own[:blend]
        merged[c.own_start + blend : c.own_end] = own[blend:]
    return merged


@dataclass(frozen=True)
class Window:
    """An encoder window over 25 Hz encoder frames: compute [start, end), keep [keep_start, keep_end)."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def encoder_frames(n_mel: int) -> int:
    """Encoder frames the audio encoder makes of `n_mel` log-mel frames (its strides round up)."""
    return -(-n_mel // SUBSAMPLING)


def audio_frame_limit(n_mel: int, fps: float) -> int:
    """Motion frames at `fps` whose time lies inside `n_mel` log-mel frames of audio (at least 1): the
    decoder's cross-attention must not look past them."""
    return max(1, math.ceil(encoder_frames(n_mel) * fps / ENCODER_RATE))


def mel_windows(n_mel: int, context: int) -> list[tuple[Window, slice]]:
    """The encoder windows of a clip (`plan_windows`), each with the log-mel rows it reads."""
    windows = plan_windows(encoder_frames(n_mel), ENCODER_CORE_FRAMES, context)
    return [(w, slice(w.start * SUBSAMPLING, min(n_mel, w.end * SUBSAMPLING))) for w in windows]


def plan_windows(n_encoder_frames: int, core: int, context: int) -> list[Window]:
    """Windows whose kept cores tile the clip, each with `context` frames of extra input per side."""
    if n_encoder_frames <= core + 2 * context:
        return [Window(0, n_encoder_frames, 0, n_encoder_frames)]
    windows = []
    for keep_start in range(0, n_encoder_frames, core):
        keep_end = min(n_encoder_frames, keep_start + core)
        windows.append(
            Window(
                max(0, keep_start - context), min(n_encoder_frames, keep_end + context), keep_start, keep_end
            )
        )
    return windows
