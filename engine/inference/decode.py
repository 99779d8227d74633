"""Offline decoding of whole clips with bounded memory and linear cost (see `chunking` for the plan).

No tensor grows with clip length beyond the per-frame outputs: the audio encoder runs over windows
(exact: each carries the encoder's full receptive field as context), the decoder over a batch of
chunks, and the lip reader over the motion embeddings the decoder already computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.inference.chunking import (
    DEFAULT_PLAN,
    ENCODER_CORE_FRAMES,
    ENCODER_RATE,
    Chunk,
    DecodePlan,
    audio_frame_limit,
    encoder_context_frames,
    mel_windows,
    merge_chunks,
    plan_chunks,
)
from engine.inference.control import Cancelled, check_cancel
from engine.model.audio_encoder import resample_to_frames

__all__ = ["ENCODER_CORE_FRAMES", "Cancelled", "ClipInput", "DecodePlan", "check_cancel", "decode_clips"]


@dataclass
class ClipInput:
    """One clip ready for the decoder: features and conditioning on the motion frame grid."""

    audio_feat: torch.Tensor  # [T, D]
    audio_valid: torch.Tensor  # [T] bool: frame time inside the audio
    cond: torch.Tensor  # [T, n_emotions]
    style: torch.Tensor  # [style_dim]

    @property
    def n_frames(self) -> int:
        return int(self.audio_feat.shape[0])


def encoder_context(model) -> int:
    """Encoder frames of context a window needs per side (engine.inference.chunking)."""
    return encoder_context_frames(model.cfg.audio_layers, model.cfg.audio_window)


@torch.no_grad()
def encode_audio_windowed(model, mel: torch.Tensor, fps: float, n_frames: int, cancel=None) -> torch.Tensor:
    """log-mel [Tm, 80] -> features [n_frames, D], equal to `model.encode_audio` on the whole clip.

    Windows start on multiples of 4 mel hops, so each window's 25 Hz grid is a slice of the clip's.
    """
    parts = []
    for window, rows in mel_windows(int(mel.shape[0]), encoder_context(model)):
        check_cancel(cancel)
        segment = mel[rows][None]
        n_window = window.end - window.start
        features = model.audio_encoder(segment, None, ENCODER_RATE, n_window)[0]  # identity resampling
        parts.append(features[window.keep_start - window.start : window.keep_end - window.start])
    encoded = torch.cat(parts, dim=0)[None]
    valid = torch.tensor([encoded.shape[1]], device=mel.device)
    return resample_to_frames(encoded, valid, float(fps), int(n_frames))[0]


def audio_valid_frames(n_mel: int, fps: float, n_frames: int, device) -> torch.Tensor:
    """Frames whose time lies inside the audio (the decoder's cross-attention must not look past it)."""
    return torch.arange(n_frames, device=device) < audio_frame_limit(n_mel, fps)


@torch.no_grad()
def decode_clips(
    model,
    clips: list[ClipInput],
    plan: DecodePlan = DEFAULT_PLAN,
    progress: Callable[[float], None] | None = None,
    cancel=None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode clips of any lengths as one batch of chunks.

    Returns per clip (offsets [T,V,3], arkit [T,52], motion embeddings [T,D]). The embeddings are the
    motion encoder's view of the generated frames, computed anyway to feed the decoder; the lip reader
    reuses them (`lip_logprobs`) instead of re-encoding the whole take. A clip short enough for one
    chunk is decoded exactly as `model.generate` would.
    """
    jobs: list[tuple[int, Chunk]] = []
    plans = []
    for index, clip in enumerate(clips):
        chunks = plan_chunks(clip.n_frames, plan.chunk_frames, plan.warmup_frames, plan.fade_frames)
        plans.append(chunks)
        jobs.extend((index, c) for c in chunks)
    steps = max(c.length for _, c in jobs)
    radius = model.cfg.align_radius
    width = steps + radius  # audio look-ahead past the last decoded frame
    ref = clips[0].audio_feat
    feat = ref.new_zeros(len(jobs), width, ref.shape[1])
    valid = torch.zeros(len(jobs), width, dtype=torch.bool, device=ref.device)
    cond = ref.new_zeros(len(jobs), width, clips[0].cond.shape[1])
    style = torch.stack([clips[i].style for i, _ in jobs]).to(ref.dtype)
    for row, (i, c) in enumerate(jobs):
        clip = clips[i]
        end = min(clip.n_frames, c.decode_start + width)
        feat[row, : end - c.decode_start] = clip.audio_feat[c.decode_start : end]
        valid[row, : end - c.decode_start] = clip.audio_valid[c.decode_start : end]
        cond[row, : end - c.decode_start] = clip.cond[c.decode_start : end].to(ref.dtype)
        if end - c.decode_start < width:  # past the clip: hold the last condition (values unused)
            cond[row, end - c.decode_start :] = clip.cond[end - 1].to(ref.dtype)
    state = model.start(feat, cond, style, valid)
    n_vertices, n_arkit = model.cfg.n_vertices, model.cfg.n_arkit
    offsets = torch.empty(len(jobs), steps, n_vertices, 3, dtype=torch.float32, device=ref.device)
    arkit = torch.empty(len(jobs), steps, n_arkit, dtype=torch.float32, device=ref.device)
    motion = torch.empty(len(jobs), steps, model.cfg.d_model, dtype=torch.float32, device=ref.device)
    for t in range(steps):
        check_cancel(cancel)
        frame_offsets, frame_arkit = model.step(state)
        offsets[:, t] = frame_offsets.float()
        arkit[:, t] = frame_arkit.float()
        motion[:, t] = state.decoder.previous.float()  # the motion encoder's embedding of this frame
        if progress is not None and (t % 8 == 7 or t == steps - 1):
            progress((t + 1) / steps)
    offsets_np, arkit_np, motion_np = offsets.cpu().numpy(), arkit.cpu().numpy(), motion.cpu().numpy()
    results = []
    row = 0
    for i, chunks in enumerate(plans):
        rows = range(row, row + len(chunks))
        row += len(chunks)
        n = clips[i].n_frames
        results.append(
            (
                merge_chunks([offsets_np[r] for r in rows], chunks, n, plan.fade_frames),
                merge_chunks([arkit_np[r] for r in rows], chunks, n, plan.fade_frames),
                merge_chunks([motion_np[r] for r in rows], chunks, n, plan.fade_frames),
            )
        )
    return results


@torch.no_grad()
def lip_logprobs(model, motion_feat: np.ndarray, device, dtype=torch.float32) -> np.ndarray:
    """Lip-reader log-probs [T, VOCAB] from the decoder's motion embeddings [T, D].

    Equal to `model.read_lips(offsets)` inside a chunk; over a chunk seam the embeddings are
    cross-faded like the motion itself. The head is a +-2 frame convolution: one call, any length.
    """
    feats = torch.from_numpy(np.ascontiguousarray(motion_feat)).to(device, dtype)
    return model.lip_head(feats[None])[0].float().cpu().numpy()


@torch.no_grad()
def audio_logprobs(model, audio_feat: torch.Tensor) -> np.ndarray:
    """What the audio encoder hears, per motion frame: [T, VOCAB]."""
    return model.audio_phoneme_logprobs(audio_feat[None])[0].float().cpu().numpy()
