"""Whole-clip decoding in numpy: windowed audio encoding, then chunks decoded in parallel batches.

Mirrors engine.inference.decode (and shares its plan, engine.inference.chunking): the audio encoder
runs over windows that carry its receptive field as context, and the clip's chunks (warm-up and
cross-fade included) are decoded as one batch, one decoder step per frame for all chunks at once.
Chunks are decoded in groups of at most `GROUP_CHUNKS` and merged into the output as each group
finishes, so memory stays bounded however long the clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.inference.chunking import (
    DEFAULT_PLAN,
    ENCODER_RATE,
    SUBSAMPLING,  # noqa: F401  (re-exported: engine.numpy_runtime.long_take imports it from here)
    Chunk,
    DecodePlan,
    audio_frame_limit,
    crossfade_weights,
    encoder_context_frames,
    mel_windows,
    plan_chunks,
)
from engine.inference.control import check_cancel
from engine.numpy_runtime.network import NEG, Network, RingCache, sigmoid

GROUP_CHUNKS = 16  # chunks decoded per batch: about 80 s of a long take at 30 fps


@dataclass
class NumpyClip:
    """One clip ready for the decoder: features and conditioning on the motion frame grid."""

    audio_feat: np.ndarray  # [T, D] float32
    audio_valid: np.ndarray  # [T] bool
    cond: np.ndarray  # [T, n_emotions]
    style: np.ndarray  # [style_dim]

    @property
    def n_frames(self) -> int:
        return int(self.audio_feat.shape[0])


def resample_to_frames(features: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """25 Hz features [Ta,D] -> [n_frames,D] by linear interpolation (engine.model.audio_encoder)."""
    times = np.arange(n_frames, dtype=np.float32) * np.float32(ENCODER_RATE / fps)
    last = max(features.shape[0] - 1, 0)
    floor = np.floor(times)
    lo = floor.astype(np.int64)
    frac = (times - floor)[:, None]
    frac[lo + 1 > last] = 0.0
    f_lo = features[np.minimum(lo, last)]
    f_hi = features[np.minimum(lo + 1, last)]
    return f_lo + (f_hi - f_lo) * frac


def encode_audio_windowed(
    net: Network, mel: np.ndarray, fps: float, n_frames: int, cancel=None
) -> np.ndarray:
    """log-mel [Tm,80] -> features [n_frames, D] (engine.inference.decode.encode_audio_windowed)."""
    cfg = net.cfg
    context = encoder_context_frames(cfg["audio_layers"], cfg["audio_window"])
    parts = []
    for window, rows in mel_windows(int(mel.shape[0]), context):
        check_cancel(cancel)
        features = net.audio_encoder(mel[rows])
        parts.append(features[window.keep_start - window.start : window.keep_end - window.start])
    encoded = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return resample_to_frames(encoded, float(fps), int(n_frames))


def audio_valid_frames(n_mel: int, fps: float, n_frames: int) -> np.ndarray:
    """Frames whose time lies inside the audio (the cross-attention must not look past it)."""
    return np.arange(n_frames) < audio_frame_limit(n_mel, fps)


class DecodeBatch:
    """The incremental state of a batch of chunk rows (engine.model.dualface.GenerationState)."""

    def __init__(
        self, net: Network, feat: np.ndarray, valid: np.ndarray, cond: np.ndarray, style: np.ndarray
    ):
        cfg = net.cfg
        dec = net.decoder
        b, width, _ = feat.shape
        heads, head_dim = cfg["decoder_heads"], cfg["d_model"] // cfg["decoder_heads"]
        r = cfg["align_radius"]
        self.net = net
        self.condition = dec.condition(cond, style)
        self.cross = [layer.cross_attn.precompute(feat) for layer in dec.layers]
        self.mask = np.full((b, width + 2 * r), NEG, dtype=np.float32)
        self.mask[:, r : r + width][valid] = 0.0
        self.caches = [RingCache(b, heads, dec.window, head_dim) for _ in dec.layers]
        self.motion_caches = net.motion_encoder.start(b, heads, head_dim)
        self.previous = np.repeat(dec.start_token[None, :], b, axis=0)
        self.n_coords, self.n_arkit = cfg["n_vertices"] * 3, cfg["n_arkit"]
        self.t = 0

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        """Decode frame t of every row: (scaled offsets [B,V*3], ARKit [B,52]); feeds the motion back."""
        dec, t = self.net.decoder, self.t
        x = dec.in_proj(self.previous)
        x += self.condition[:, t]
        bias = dec.self_bias[t if t < dec.window else dec.window + t % dec.window]
        for layer, cache, (k, v) in zip(dec.layers, self.caches, self.cross):
            x = x + layer.self_attn.attend_step(layer.norm1(x), cache, t, bias)
            x = x + layer.cross_attn.step(layer.norm2(x), k, v, self.mask, t)
            x = x + layer.ff(layer.norm3(x))
        h = dec.norm(x)
        scaled = dec.offset_head(h)
        arkit = sigmoid(dec.arkit_head(h))
        self.previous = self.net.motion_encoder.step(scaled, self.motion_caches, t)
        self.t += 1
        return scaled, arkit


@dataclass
class DecodeJob:
    clip: int
    chunk: Chunk
    first: bool  # the clip's first chunk (no cross-fade in)


def decode_clips(
    net: Network,
    clips: list[NumpyClip],
    plan: DecodePlan = DEFAULT_PLAN,
    progress: Callable[[float], None] | None = None,
    cancel=None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Clips -> per clip (offsets [T,V,3] metres, ARKit [T,52], motion embeddings [T,D])."""
    cfg = net.cfg
    outputs = [
        (
            np.zeros((c.n_frames, cfg["n_vertices"], 3), dtype=np.float32),
            np.zeros((c.n_frames, cfg["n_arkit"]), dtype=np.float32),
            np.zeros((c.n_frames, cfg["d_model"]), dtype=np.float32),
        )
        for c in clips
    ]
    jobs = [job for index, clip in enumerate(clips) for job in plan_jobs(index, clip.n_frames, plan)]
    steps = max(job.chunk.length for job in jobs)
    groups = [jobs[i : i + GROUP_CHUNKS] for i in range(0, len(jobs), GROUP_CHUNKS)]
    for number, group in enumerate(groups):
        batch = group_batch(net, clips, group, steps)
        report = None if progress is None else _group_progress(progress, number, len(groups))
        merge_group(net, group, decode_group(batch, steps, cancel, report), outputs, plan.fade_frames)
    if progress is not None:
        progress(1.0)
    return outputs


def plan_jobs(clip: int, n_frames: int, plan: DecodePlan) -> list[DecodeJob]:
    chunks = plan_chunks(n_frames, plan.chunk_frames, plan.warmup_frames, plan.fade_frames)
    return [DecodeJob(clip, c, i == 0) for i, c in enumerate(chunks)]


def _group_progress(progress: Callable[[float], None], number: int, total: int) -> Callable[[float], None]:
    return lambda fraction: progress((number + fraction) / total)


def decode_group(
    batch: DecodeBatch, steps: int, cancel=None, progress: Callable[[float], None] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run `steps` decoder steps: rows of scaled offsets [B,steps,V*3], ARKit, motion embeddings."""
    rows = batch.previous.shape[0]
    scaled = np.zeros((rows, steps, batch.n_coords), dtype=np.float32)
    arkit = np.zeros((rows, steps, batch.n_arkit), dtype=np.float32)
    motion = np.zeros((rows, steps, batch.previous.shape[1]), dtype=np.float32)
    for t in range(steps):
        check_cancel(cancel)
        scaled[:, t], arkit[:, t] = batch.step()
        motion[:, t] = batch.previous
        if progress is not None and t % 8 == 7:
            progress((t + 1) / steps)
    return scaled, arkit, motion


def merge_group(net: Network, group: list[DecodeJob], rows: tuple, outputs, fade: int) -> None:
    """Cross-fade each chunk row of a decoded group into its clip's (offsets, arkit, motion) targets."""
    scaled, arkit, motion = rows
    steps = scaled.shape[1]
    scale = np.float32(net.cfg["motion_scale"])
    ramp = crossfade_weights(fade)
    for row, job in enumerate(group):
        sources = (scaled[row].reshape(steps, -1, 3) / scale, arkit[row], motion[row])
        for target, source in zip(outputs[job.clip], sources):
            _merge(target, source, job, ramp)


def group_batch(net: Network, clips: list[NumpyClip], group: list[DecodeJob], steps: int) -> DecodeBatch:
    """Inputs of a group of chunk rows, padded to `steps` + the cross-attention look-ahead."""
    width = steps + net.cfg["align_radius"]
    first = clips[group[0].clip]
    feat = np.zeros((len(group), width, first.audio_feat.shape[1]), dtype=np.float32)
    valid = np.zeros((len(group), width), dtype=bool)
    cond = np.zeros((len(group), width, first.cond.shape[1]), dtype=np.float32)
    style = np.stack([clips[job.clip].style for job in group]).astype(np.float32)
    for row, job in enumerate(group):
        clip, start = clips[job.clip], job.chunk.decode_start
        end = min(clip.n_frames, start + width)
        feat[row, : end - start] = clip.audio_feat[start:end]
        valid[row, : end - start] = clip.audio_valid[start:end]
        cond[row, : end - start] = clip.cond[start:end]
        cond[row, end - start :] = clip.cond[end - 1]  # past the clip: hold the last condition
    return DecodeBatch(net, feat, valid, cond, style)


def _merge(target: np.ndarray, source: np.ndarray, job: DecodeJob, ramp: np.ndarray) -> None:
    """engine.inference.chunking.merge_chunks, one chunk at a time (chunks arrive in order)."""
    c = job.chunk
    own = source[c.own_start - c.decode_start : c.own_end - c.decode_start]
    if job.first or ramp.size == 0:
        target[c.own_start : c.own_end] = own
        return
    blend = min(ramp.size, c.own_end - c.own_start)
    w = ramp[:blend].reshape(-1, *([1] * (own.ndim - 1)))
    span = slice(c.own_start, c.own_start + blend)
    target[span] = (1.0 - w) * target[span] + w * own[:blend]
    target[c.own_start + blend : c.own_end] = own[blend:]
