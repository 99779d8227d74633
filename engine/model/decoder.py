"""Face decoder: autoregressive causal transformer from past motion + aligned audio to the next frame.

Input at frame t is the motion embedding of frame t-1 (a learned start token at t = 0, so no silent
first frame is needed) plus the emotion condition of frame t and the speaker style. Self-attention
sees the last `decoder_window` frames with an ALiBi distance bias (no maximum length); cross-attention
sees only audio frames t-k .. t+k (alignment bias: the face cannot drift away from the sound, and the
small look-ahead lets lips anticipate the next phone as coarticulation does).

The same weights run in two modes that agree exactly: `forward` over a whole sequence (training,
full-prefix reference) and `step` with per-layer key/value ring caches (inference, linear cost,
memory bounded by the window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.model.attention import (
    FeedForward,
    LocalSelfAttention,
    RingCache,
    alibi_slopes,
    banded_attention,
    ring_bias_table,
    ring_step_index,
)
from engine.model.config import ModelConfig
from engine.model.vertex_layers import vertex_linear, zero_output_


class AlignedCrossAttention(nn.Module):
    """Frame t attends audio frames within +-radius of t, penalised by distance (ALiBi slopes)."""

    slopes: Tensor  # [H] ALiBi slopes (a non-persistent buffer)

    def __init__(self, dim: int, heads: int, radius: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.radius = heads, dim // heads, radius
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.register_buffer("slopes", alibi_slopes(heads), persistent=False)

    def keys_values(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        b, t, _ = memory.shape
        k, v = self.kv(memory).view(b, t, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return k, v  # [B,H,T,dh]

    def forward(self, x: Tensor, memory: Tensor, key_valid: Tensor | None) -> Tensor:
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.keys_values(memory)
        y = banded_attention(q, k, v, self.radius, self.radius, self.slopes, key_valid)
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def precompute(self, memory: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Audio keys and values [B,H,T+2r,dh] padded by r each side, and the additive bias [B,H,T+2r]
        (0 for real audio frames, -inf-like for padding); `step` then only slices."""
        r = self.radius
        b, t, _ = memory.shape
        k, v = self.keys_values(memory)
        k, v = F.pad(k, (0, 0, r, r)).contiguous(), F.pad(v, (0, 0, r, r)).contiguous()
        blocked = ~F.pad(valid, (r, r), value=False)
        mask = torch.zeros(b, t + 2 * r, dtype=memory.dtype, device=memory.device)
        mask = mask.masked_fill(blocked, torch.finfo(memory.dtype).min)
        return k, v, mask[:, None, :].expand(-1, self.heads, -1).contiguous()

    def distance_bias(self, like: Tensor) -> Tensor:
        """[H, 2r+1] ALiBi penalty of the aligned window (offsets -r .. r)."""
        dist = (torch.arange(2 * self.radius + 1, device=like.device) - self.radius).abs().to(like.dtype)
        return -self.slopes.to(like.dtype)[:, None] * dist[None, :]

    def step(
        self, x_t: Tensor, k_pad: Tensor, v_pad: Tensor, mask_pad: Tensor, dist_bias: Tensor, t: int
    ) -> Tensor:
        """x_t [B,D] at frame t; k/v/mask_pad from `precompute`, dist_bias from `distance_bias`."""
        b, d = x_t.shape
        span = 2 * self.radius + 1
        q = self.q(x_t).view(b, self.heads, 1, self.head_dim)
        k = k_pad[:, :, t : t + span]  # views: no copy of the audio keys per step
        scores = torch.matmul(q, k.transpose(-1, -2)).squeeze(2) * (1.0 / math.sqrt(self.head_dim))
        scores = scores + dist_bias + mask_pad[:, :, t : t + span]
        y = torch.matmul(torch.softmax(scores, dim=-1).unsqueeze(2), v_pad[:, :, t : t + span]).squeeze(2)
        return self.out(y.reshape(b, d))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = LocalSelfAttention(d, cfg.decoder_heads, cfg.decoder_window - 1, 0)
        self.norm2 = nn.LayerNorm(d)
        self.cross_attn = AlignedCrossAttention(d, cfg.decoder_heads, cfg.align_radius)
        self.norm3 = nn.LayerNorm(d)
        self.ff = FeedForward(d, cfg.ff_mult)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, memory: Tensor, memory_valid: Tensor | None) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x)))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory, memory_valid))
        return x + self.drop(self.ff(self.norm3(x)))


@dataclass
class DecoderState:
    """Everything `step` needs: per-layer caches, precomputed audio keys/values, conditioning."""

    t: int
    n_frames: int
    condition: Tensor  # [B,T,D] emotion + style embedding per frame
    cross: list[tuple[Tensor, Tensor, Tensor]]  # per layer: padded audio keys, values, validity bias
    cross_bias: Tensor  # [H, 2r+1] distance penalty of the aligned window
    self_bias: Tensor  # [2W,H,W] ring_bias_table of the self-attention caches
    caches: list[RingCache]
    previous: Tensor | None  # motion embedding of frame t-1 (None at t = 0)


class FaceDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.start_token = nn.Parameter(torch.randn(d) * 0.02)
        self.in_proj = nn.Linear(d, d)
        self.emotion_embed = nn.Linear(cfg.n_emotions, d, bias=False) if cfg.emotion else None
        self.style_embed = nn.Linear(cfg.style_dim, d)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.norm = nn.LayerNorm(d)
        self.offset_head = vertex_linear(cfg, d, cfg.n_vertices * 3)  # low rank for large meshes
        self.arkit_head = nn.Linear(d, cfg.n_arkit)
        # Zero output weights: an untrained decoder predicts the rest face and near-zero ARKit weights.
        zero_output_(self.offset_head)
        nn.init.zeros_(self.arkit_head.weight)
        nn.init.constant_(self.arkit_head.bias, -4.0)

    def condition(self, cond: Tensor, style: Tensor) -> Tensor:
        """[B,T,n_emotions], [B,style_dim] -> additive conditioning [B,T,D]."""
        c = self.style_embed(style)[:, None, :].expand(-1, cond.shape[1], -1)
        if self.emotion_embed is not None:
            c = c + self.emotion_embed(cond)
        return c

    def shift_inputs(self, motion_feat: Tensor) -> Tensor:
        """Decoder input at t = motion embedding of frame t-1; the start token at t = 0."""
        b, _, d = motion_feat.shape
        start = self.start_token.to(motion_feat.dtype).expand(b, 1, d)
        return torch.cat([start, motion_feat[:, :-1]], dim=1)

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        h = self.norm(h)
        offsets = self.offset_head(h).unflatten(-1, (self.cfg.n_vertices, 3))
        return offsets, torch.sigmoid(self.arkit_head(h))

    def forward(
        self, inputs: Tensor, condition: Tensor, audio_feat: Tensor, audio_valid: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """inputs [B,Tq,D] (already shifted), condition [B,Tq,D], audio_feat [B,Ta,D] (Ta >= Tq allowed:
        the full-prefix reference decodes a prefix against the whole clip's audio)."""
        x = self.in_proj(inputs) + condition
        for layer in self.layers:
            x = layer(x, audio_feat, audio_valid)
        return self.heads(x)

    def start(self, audio_feat: Tensor, condition: Tensor, audio_valid: Tensor | None = None) -> DecoderState:
        b, t, _ = audio_feat.shape
        if audio_valid is None:
            audio_valid = torch.ones(b, t, dtype=torch.bool, device=audio_feat.device)
        layers = cast(Sequence[DecoderLayer], self.layers)  # nn.ModuleList only promises Modules
        first = layers[0]
        window = self.cfg.decoder_window
        return DecoderState(
            t=0,
            n_frames=t,
            condition=condition,
            cross=[layer.cross_attn.precompute(audio_feat, audio_valid) for layer in layers],
            cross_bias=first.cross_attn.distance_bias(audio_feat),
            self_bias=ring_bias_table(first.self_attn.slopes.to(audio_feat.dtype), window),
            caches=[layer.self_attn.new_cache(b, audio_feat) for layer in layers],
            previous=None,
        )

    def step(self, state: DecoderState) -> tuple[Tensor, Tensor]:
        """Frame state.t -> (scaled offsets [B,V,3], ARKit [B,52]); the caller feeds `previous`."""
        t = state.t
        if t >= state.n_frames:
            raise RuntimeError(f"all {state.n_frames} frames are already decoded; start a new state")
        if state.previous is None:
            inp = self.start_token.to(state.condition.dtype).expand(state.condition.shape[0], -1)
        else:
            inp = state.previous
        x = self.in_proj(inp) + state.condition[:, t]
        self_bias = state.self_bias[ring_step_index(t, self.cfg.decoder_window)]
        layers = cast(Sequence[DecoderLayer], self.layers)  # nn.ModuleList only promises Modules
        for layer, cache, (k_pad, v_pad, mask_pad) in zip(layers, state.caches, state.cross):
            x = x + layer.self_attn.step(layer.norm1(x), cache, t, self_bias)
            x = x + layer.cross_attn.step(layer.norm2(x), k_pad, v_pad, mask_pad, state.cross_bias, t)
            x = x + layer.ff(layer.norm3(x))
        return self.heads(x)
