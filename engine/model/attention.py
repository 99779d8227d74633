"""Local attention primitives shared by the audio encoder, Mesh Attention and the face decoder.

Every sequence layer in DualFace attends to a bounded band of positions, so training and offline
inference cost O(T * window) instead of O(T^2) and there is no maximum length. Position enters only
through an ALiBi-style linear distance penalty (one slope per head), which is what makes the
key/value-cache step (`RingCache`) exactly equal to the parallel band computation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def alibi_slopes(n_heads: int) -> Tensor:
    """Geometric slopes 2^(-8 i / H), i = 1..H (Press et al., ALiBi): heads see different ranges."""
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / n_heads) for i in range(n_heads)])


def banded_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    left: int,
    right: int,
    slopes: Tensor | None = None,
    key_valid: Tensor | None = None,
    block: int = 32,
) -> Tensor:
    """Attention where query i sees keys j with i - left <= j <= i + right (and 0 <= j < Tk).

    q [B,H,Tq,dh], k/v [B,H,Tk,dh], slopes [H] (bias -slope*|i-j|), key_valid [B,Tk] bool.
    Queries are processed in blocks; each block gathers only its key band, so memory and time are
    linear in length. Rows with no visible key return a finite (meaningless) average.
    """
    b, h, tq, dh = q.shape
    tk = k.shape[2]
    block = max(1, min(block, tq))
    n_blocks = -(-tq // block)
    tq_pad = n_blocks * block
    span = block + left + right
    need = left + tq_pad + right  # padded key length so every block window exists
    if tq_pad != tq:
        q = F.pad(q, (0, 0, 0, tq_pad - tq))
    k_p = _pad_or_cut(k, left, need)
    v_p = _pad_or_cut(v, left, need)
    # windows: [B,H,nb,span,dh]
    k_w = k_p.unfold(2, span, block).transpose(-1, -2)
    v_w = v_p.unfold(2, span, block).transpose(-1, -2)
    q_b = q.reshape(b, h, n_blocks, block, dh)
    scores = torch.matmul(q_b, k_w.transpose(-1, -2)) * (1.0 / math.sqrt(dh))  # [B,H,nb,block,span]

    device = q.device
    rows = torch.arange(block, device=device)
    cols = torch.arange(span, device=device)
    offset = cols[None, :] - left - rows[:, None]  # j - i
    in_band = (offset >= -left) & (offset <= right)  # [block, span]
    key_index = torch.arange(n_blocks, device=device)[:, None] * block - left + cols[None, :]  # [nb, span]
    allowed = in_band[None, :, :] & ((key_index >= 0) & (key_index < tk))[:, None, :]  # [nb,block,span]
    allowed = allowed[None, None]
    if key_valid is not None:
        kv = _pad_or_cut(key_valid[:, None, :, None].to(torch.bool), left, need, value=False)
        kv = kv[:, 0, :, 0].unfold(1, span, block)  # [B,nb,span]
        allowed = allowed & kv[:, None, :, None, :]
    if slopes is not None:
        dist = offset.abs().to(scores.dtype)
        scores = scores - slopes.to(scores.dtype)[None, :, None, None, None] * dist
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights, v_w)  # [B,H,nb,block,dh]
    return out.reshape(b, h, tq_pad, dh)[:, :, :tq]


def _pad_or_cut(x: Tensor, front: int, length: int, value: float | bool = 0.0) -> Tensor:
    """Pad `front` positions before dim 2 and pad/cut the end so dim 2 has `length` entries."""
    x = F.pad(x, (0, 0, front, 0), value=value)
    have = x.shape[2]
    if have < length:
        return F.pad(x, (0, 0, 0, length - have), value=value)
    return x[:, :, :length]


class FeedForward(nn.Module):
    """Two-layer GELU MLP. Dropout is left to the residual branch: sampling a mask for the wide hidden
    layer too costs more CPU time than it buys."""

    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class RingCache:
    """Keys/values of the last `window` positions of one causal attention layer.

    A fixed ring buffer per tensor ([B,H,W,dh] keys and values, kept separate and contiguous so the
    per-step matmuls read them in place): memory never grows with the clip. Softmax does not care
    about slot order; the ALiBi distance of each slot comes from `ring_bias_table`.
    """

    def __init__(self, batch: int, heads: int, window: int, head_dim: int, like: Tensor) -> None:
        self.k = like.new_zeros(batch, heads, window, head_dim)
        self.v = like.new_zeros(batch, heads, window, head_dim)
        self.window = window

    def append(self, k_t: Tensor, v_t: Tensor, t: int) -> None:
        """k_t, v_t [B,H,dh]: the key and value of position t."""
        slot = t % self.window
        self.k[:, :, slot] = k_t
        self.v[:, :, slot] = v_t

    def attend(self, q_t: Tensor, bias: Tensor) -> Tensor:
        """q_t [B,H,dh] -> [B,H,dh] over the cached positions; bias [H,W] = ring_bias_table row."""
        scale = 1.0 / math.sqrt(q_t.shape[-1])
        scores = torch.matmul(self.k, q_t.unsqueeze(-1)).squeeze(-1) * scale + bias  # [B,H,W]
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights.unsqueeze(-2), self.v).squeeze(-2)


def ring_bias_table(slopes: Tensor, window: int) -> Tensor:
    """ALiBi biases [2W,H,W] of the ring slots for every step; index it with `ring_step_index`.

    At step t slot s holds position t - ((t - s) mod W) (empty while that is negative), so the bias
    -slope * distance depends only on t mod W once t >= W: 2W rows cover every step, and one table
    serves all layers with the same slopes and window.
    """
    steps = torch.arange(2 * window, device=slopes.device)
    now = torch.where(steps < window, steps, steps + window)  # rows >= W stand for any t >= W
    slots = torch.arange(window, device=slopes.device)
    position = now[:, None] - torch.remainder(now[:, None] - slots[None, :], window)  # [2W,W]
    dist = (now[:, None] - position).to(slopes.dtype)
    table = -slopes[None, :, None] * dist[:, None, :]
    return table.masked_fill((position < 0)[:, None, :], torch.finfo(slopes.dtype).min)


def ring_step_index(t: int, window: int) -> int:
    return t if t < window else window + t % window


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention over a band [i-left, i+right] with a fused q/k/v projection."""

    slopes: Tensor  # [H] ALiBi slopes (a non-persistent buffer)

    def __init__(self, dim: int, heads: int, left: int, right: int, alibi: bool = True) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.left, self.right = left, right
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.register_buffer("slopes", alibi_slopes(heads) if alibi else torch.zeros(heads), persistent=False)

    def forward(self, x: Tensor, key_valid: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = banded_attention(q, k, v, self.left, self.right, self.slopes, key_valid)
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def new_cache(self, batch: int, like: Tensor) -> RingCache:
        if self.right:
            raise RuntimeError("incremental decoding needs a causal attention layer (right == 0)")
        return RingCache(batch, self.heads, self.left + 1, self.head_dim, like)

    def step(self, x_t: Tensor, cache: RingCache, t: int, bias: Tensor | None = None) -> Tensor:
        """One new position x_t [B,D] at absolute index t; appends its key/value to the cache.

        `bias` is the ring_bias_table row of step t; layers sharing slopes and window share it.
        """
        b, d = x_t.shape
        qkv = self.qkv(x_t).view(b, 3, self.heads, self.head_dim)
        cache.append(qkv[:, 1], qkv[:, 2], t)
        if bias is None:
            bias = ring_bias_table(self.slopes, cache.window)[ring_step_index(t, cache.window)]
        return self.out(cache.attend(qkv[:, 0], bias).reshape(b, d))


class LocalTransformerLayer(nn.Module):
    """Pre-norm block: local self-attention + feed-forward."""

    def __init__(
        self, dim: int, heads: int, left: int, right: int, ff_mult: int, dropout: float, alibi: bool = True
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LocalSelfAttention(dim, heads, left, right, alibi)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_valid: Tensor | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_valid))
        return x + self.drop(self.ff(self.norm2(x)))

    def new_cache(self, batch: int, like: Tensor) -> RingCache:
        return self.attn.new_cache(batch, like)

    def step(self, x_t: Tensor, cache: RingCache, t: int, bias: Tensor | None = None) -> Tensor:
        x_t = x_t + self.attn.step(self.norm1(x_t), cache, t, bias)
        return x_t + self.ff(self.norm2(x_t))


class FullTransformerLayer(nn.Module):
    """Pre-norm block with unrestricted attention over a short set (the patches of one frame).

    Used on B*T*P patch tokens, where dropout masks would dominate the training step's CPU time, so
    it has none; the frame embedding it feeds is regularised downstream."""

    def __init__(self, dim: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult)

    def forward(self, x: Tensor) -> Tensor:
        n, p, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, p, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # plain matmul-softmax: for a few dozen tokens it beats the fused kernel's set-up cost on CPU
        weights = torch.softmax(
            torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)), dim=-1
        )
        y = torch.matmul(weights, v)
        x = x + self.out(y.transpose(1, 2).reshape(n, p, d))
        return x + self.ff(self.norm2(x))
