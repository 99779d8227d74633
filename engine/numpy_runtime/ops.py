"""The few primitives the network needs, in float32 numpy, each matching its torch counterpart.

GELU is the exact (erf) form torch's `nn.GELU()` uses; numpy has no erf, so it is evaluated with a
rational approximation accurate to about 1e-7 (float32 rounding is 6e-8).
"""

from __future__ import annotations

import math

import numpy as np

NEG = np.float32(np.finfo(np.float32).min)  # the masked-score value torch's layers use


class Linear:
    """y = x @ W + b with W stored [in, out] (torch's weight transposed once, contiguous)."""

    __slots__ = ("weight", "bias")

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None) -> None:
        self.weight = np.ascontiguousarray(np.asarray(weight, dtype=np.float32).T)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight
        if self.bias is not None:
            y += self.bias
        return y


class LowRank:
    """A factorised vertex layer (engine.model.vertex_layers.LowRankLinear): up(down(x))."""

    __slots__ = ("down", "up")

    def __init__(self, down: Linear, up: Linear) -> None:
        self.down, self.up = down, up

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.up(self.down(x))


class LayerNorm:
    __slots__ = ("weight", "bias")

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        var = np.mean(np.square(centred), axis=-1, keepdims=True)
        centred *= 1.0 / np.sqrt(var + np.float32(1e-5))
        centred *= self.weight
        centred += self.bias
        return centred


def erf(x: np.ndarray) -> np.ndarray:
    """erf to about 2e-7 absolute in float32 (the erfc rational form of Numerical Recipes' erfcc)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.5) * z)
    poly = np.float32(0.17087277)
    for c in _ERFC_COEFFS:
        poly = poly * t + np.float32(c)
    poly -= z * z
    result = 1.0 - t * np.exp(poly)
    return np.copysign(result, x)


_ERFC_COEFFS = (
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
    -1.26551223,
)


def gelu(x: np.ndarray) -> np.ndarray:
    """x * Phi(x), the exact GELU."""
    return x * (np.float32(0.5) + np.float32(0.5) * erf(x * np.float32(1.0 / math.sqrt(2.0))))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def alibi_slopes(n_heads: int) -> np.ndarray:
    """The same geometric slopes as engine.model.attention.alibi_slopes."""
    return np.array([2.0 ** (-8.0 * (i + 1) / n_heads) for i in range(n_heads)], dtype=np.float32)


def ring_bias_table(slopes: np.ndarray, window: int) -> np.ndarray:
    """[2W,H,W] ALiBi biases of ring-cache slots per step (see engine.model.attention.ring_bias_table)."""
    steps = np.arange(2 * window)
    now = np.where(steps < window, steps, steps + window)
    slots = np.arange(window)
    position = now[:, None] - np.remainder(now[:, None] - slots[None, :], window)
    dist = (now[:, None] - position).astype(np.float32)
    table = -slopes[None, :, None] * dist[:, None, :]
    table[np.broadcast_to((position < 0)[:, None, :], table.shape)] = NEG
    return table.astype(np.float32)


def ring_step_index(t: int, window: int) -> int:
    return t if t < window else window + t % window


def banded_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, left: int, right: int, slopes: np.ndarray
) -> np.ndarray:
    """q [H,T,dh], k/v [H,T,dh]: query i attends keys i-left .. i+right inside 0..T-1 (ALiBi bias).

    Gathers each query's key band with a strided view, so cost and memory are O(T * band).
    """
    h, t, dh = q.shape
    span = left + right + 1
    pad = ((0, 0), (left, right), (0, 0))
    k_band = np.lib.stride_tricks.sliding_window_view(np.pad(k, pad), span, axis=1)  # [H,T,dh,span]
    v_band = np.lib.stride_tricks.sliding_window_view(np.pad(v, pad), span, axis=1)
    scores = np.matmul(q[:, :, None, :], k_band)[:, :, 0, :]  # [H,T,span]
    scores *= np.float32(1.0 / math.sqrt(dh))
    offsets = np.arange(span) - left
    scores -= slopes[:, None, None] * np.abs(offsets).astype(np.float32)[None, None, :]
    key = np.arange(t)[:, None] + offsets[None, :]
    scores[:, (key < 0) | (key >= t)] = NEG
    weights = softmax(scores)
    return np.matmul(v_band, weights[..., None])[..., 0]  # [H,T,dh]
