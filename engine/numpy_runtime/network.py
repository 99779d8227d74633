"""The DualFace network for inference, in numpy: built from a checkpoint's arrays and config dict.

Mirrors engine.model (audio encoder, Mesh Attention motion encoder, face decoder, lip reader, audio
CTC head) layer for layer; weights are transposed once at load so every layer is one matmul, and
the decoder step runs a whole batch of chunks per call. The structure (low-rank vertex layers,
Mesh Attention or its linear ablation, emotion conditioning) is read from the tensors present.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.numpy_runtime.ops import (
    NEG,
    LayerNorm,
    Linear,
    LowRank,
    alibi_slopes,
    banded_attention,
    gelu,
    log_softmax,
    ring_bias_table,
    softmax,
)

# The config keys inference reads; a checkpoint written by engine.weights.save_checkpoint has all.
CONFIG_KEYS = (
    "n_vertices n_phones n_arkit n_mels n_emotions style_dim motion_scale audio_dim audio_layers "
    "audio_heads audio_window mesh_heads motion_window d_model decoder_layers decoder_heads "
    "decoder_window align_radius"
).split()


class Weights:
    """Named float32 arrays with shape checks that name the tensor."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def has(self, name: str) -> bool:
        return name in self.arrays

    def get(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if name not in self.arrays:
            raise ValueError(f"tensor {name} is missing")
        array = self.arrays[name]
        if shape is not None and tuple(array.shape) != shape:
            raise ValueError(f"{name}: file {tuple(array.shape)} vs config {shape}")
        return array.astype(np.float32, copy=False)

    def linear(self, name: str, n_in: int, n_out: int, bias: bool = True) -> Linear:
        b = self.get(f"{name}.bias", (n_out,)) if bias else None
        return Linear(self.get(f"{name}.weight", (n_out, n_in)), b)

    def vertex_linear(self, name: str, n_in: int, n_out: int) -> Linear | LowRank:
        if not self.has(f"{name}.down.weight"):
            return self.linear(name, n_in, n_out)
        rank = self.arrays[f"{name}.down.weight"].shape[0]
        return LowRank(
            self.linear(f"{name}.down", n_in, rank, bias=False), self.linear(f"{name}.up", rank, n_out)
        )

    def norm(self, name: str, dim: int) -> LayerNorm:
        return LayerNorm(self.get(f"{name}.weight", (dim,)), self.get(f"{name}.bias", (dim,)))


class FeedForward:
    def __init__(self, w: Weights, name: str, dim: int, hidden: int) -> None:
        self.up = w.linear(f"{name}.net.0", dim, hidden)
        self.down = w.linear(f"{name}.net.2", hidden, dim)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.down(gelu(self.up(x)))


class RingCache:
    """Keys/values of the last `window` positions, [B,H,W,dh] each (engine.model.attention.RingCache)."""

    def __init__(self, batch: int, heads: int, window: int, head_dim: int) -> None:
        self.k = np.zeros((batch, heads, window, head_dim), dtype=np.float32)
        self.v = np.zeros((batch, heads, window, head_dim), dtype=np.float32)
        self.window = window


class SelfAttention:
    """engine.model.attention.LocalSelfAttention: banded over a sequence, or one cached step."""

    def __init__(self, w: Weights, name: str, dim: int, heads: int) -> None:
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = w.linear(f"{name}.qkv", dim, 3 * dim)
        self.out = w.linear(f"{name}.out", dim, dim)
        self.scale = np.float32(1.0 / math.sqrt(self.head_dim))
        self.slopes = alibi_slopes(heads)

    def attend_step(self, x: np.ndarray, cache: RingCache, t: int, bias: np.ndarray) -> np.ndarray:
        """x [B,D] (already normed) at position t -> attention output [B,D]; appends to the cache."""
        b, d = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.heads, self.head_dim)
        slot = t % cache.window
        cache.k[:, :, slot] = qkv[:, 1]
        cache.v[:, :, slot] = qkv[:, 2]
        scores = np.matmul(cache.k, qkv[:, 0, :, :, None])[..., 0]  # [B,H,W]
        scores *= self.scale
        scores += bias
        weights = softmax(scores)
        y = np.matmul(weights[:, :, None, :], cache.v)[:, :, 0]  # [B,H,dh]
        return self.out(y.reshape(b, d))

    def attend_band(self, x: np.ndarray, left: int, right: int) -> np.ndarray:
        """x [T,D] (already normed), one sequence -> banded attention output [T,D]."""
        t, d = x.shape
        qkv = self.qkv(x).reshape(t, 3, self.heads, self.head_dim).transpose(1, 2, 0, 3)
        y = banded_attention(qkv[0], qkv[1], qkv[2], left, right, self.slopes)
        return self.out(y.transpose(1, 0, 2).reshape(t, d))


class LocalLayer:
    """engine.model.attention.LocalTransformerLayer (pre-norm attention + feed-forward)."""

    def __init__(self, w: Weights, name: str, dim: int, heads: int, ff_mult: int) -> None:
        self.norm1 = w.norm(f"{name}.norm1", dim)
        self.attn = SelfAttention(w, f"{name}.attn", dim, heads)
        self.norm2 = w.norm(f"{name}.norm2", dim)
        self.ff = FeedForward(w, f"{name}.ff", dim, dim * ff_mult)

    def band(self, x: np.ndarray, left: int, right: int) -> np.ndarray:
        x = x + self.attn.attend_band(self.norm1(x), left, right)
        return x + self.ff(self.norm2(x))

    def step(self, x: np.ndarray, cache: RingCache, t: int, bias: np.ndarray) -> np.ndarray:
        x = x + self.attn.attend_step(self.norm1(x), cache, t, bias)
        return x + self.ff(self.norm2(x))


def conv1d_stride2(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Conv1d(kernel 3, stride 2, padding 1) on x [T,C] -> [ceil(T/2), out], as one matmul."""
    t, c = x.shape
    out = (t - 1) // 2 + 1
    padded = np.zeros((2 * out + 1, c), dtype=np.float32)
    padded[1 : t + 1] = x
    cols = np.concatenate([padded[k : k + 2 * out : 2] for k in range(3)], axis=1)  # [out, 3C]
    return cols @ weight + bias


class AudioEncoder:
    def __init__(self, w: Weights, cfg: dict[str, Any]) -> None:
        da, mels, d = cfg["audio_dim"], cfg["n_mels"], cfg["d_model"]
        conv0 = w.get("audio_encoder.subsample.0.weight", (da, mels, 3))
        conv1 = w.get("audio_encoder.subsample.2.weight", (da, da, 3))
        self.conv = [
            (
                np.ascontiguousarray(conv0.transpose(2, 1, 0).reshape(3 * mels, da)),
                w.get("audio_encoder.subsample.0.bias", (da,)),
            ),
            (
                np.ascontiguousarray(conv1.transpose(2, 1, 0).reshape(3 * da, da)),
                w.get("audio_encoder.subsample.2.bias", (da,)),
            ),
        ]
        self.layers = [
            LocalLayer(w, f"audio_encoder.layers.{i}", da, cfg["audio_heads"], cfg["ff_mult"])
            for i in range(cfg["audio_layers"])
        ]
        self.window = cfg["audio_window"]
        self.norm = w.norm("audio_encoder.norm", da)
        self.proj = w.linear("audio_encoder.proj", da, d)

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """One window of log-mel [Tm,80] -> encoder features [ceil(Tm/4), d_model] at 25 Hz."""
        x = mel.astype(np.float32, copy=False)
        for weight, bias in self.conv:
            x = gelu(conv1d_stride2(x, weight, bias))
        for layer in self.layers:
            x = layer.band(x, self.window, self.window)
        return self.proj(self.norm(x))


class SpaceLayer:
    """engine.model.attention.FullTransformerLayer over the patch tokens of each frame."""

    def __init__(self, w: Weights, name: str, dim: int, heads: int, ff_mult: int) -> None:
        self.heads, self.head_dim = heads, dim // heads
        self.norm1 = w.norm(f"{name}.norm1", dim)
        self.qkv = w.linear(f"{name}.qkv", dim, 3 * dim)
        self.out = w.linear(f"{name}.out", dim, dim)
        self.norm2 = w.norm(f"{name}.norm2", dim)
        self.ff = FeedForward(w, f"{name}.ff", dim, dim * ff_mult)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, p, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(n, p, 3, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        scores = np.matmul(qkv[0], qkv[1].transpose(0, 1, 3, 2))
        scores *= np.float32(1.0 / math.sqrt(self.head_dim))
        y = np.matmul(softmax(scores), qkv[2])  # [N,H,P,dh]
        x = x + self.out(y.transpose(0, 2, 1, 3).reshape(n, p, d))
        return x + self.ff(self.norm2(x))


def patch_gather_index(labels: np.ndarray, n_patches: int) -> np.ndarray:
    """[P,M] vertex indices per patch, padding = V (engine.model.mesh_attention's layout)."""
    members = [np.nonzero(labels == p)[0] for p in range(n_patches)]
    index = np.full((n_patches, max(len(m) for m in members)), len(labels), dtype=np.int64)
    for p, m in enumerate(members):
        index[p, : len(m)] = m
    return index


class MotionEncoder:
    """Mesh Attention (or its linear ablation) + causal time layers, one frame per `step`."""

    def __init__(self, w: Weights, cfg: dict[str, Any]) -> None:
        v3, d = cfg["n_vertices"] * 3, cfg["d_model"]
        self.mesh = w.has("motion_encoder.vertex_embed")
        if not self.mesh:
            self.proj = w.vertex_linear("motion_encoder.proj", v3, d)
            self.time: list[LocalLayer] = []
            return
        embed, weight = w.get("motion_encoder.vertex_embed"), w.get("motion_encoder.patch_weight")
        p, m, r = embed.shape
        dp = weight.shape[2]
        labels = w.arrays["motion_encoder.patch_labels"].astype(np.int64)
        if labels.shape != (cfg["n_vertices"],) or labels.min() < 0 or labels.max() >= p:
            raise ValueError(f"motion_encoder.patch_labels must be [{cfg['n_vertices']}] values in [0, {p})")
        index = patch_gather_index(labels, p)
        if index.shape != (p, m) or weight.shape != (p, 3 * r, dp):
            raise ValueError("motion_encoder patch tensors do not match the patch labels")
        # Coordinate (vertex m, axis c) of patch p -> flat offset column; padding reads a zero column.
        self.columns = (index[:, :, None] * 3 + np.arange(3)).reshape(p, m * 3)
        # sum_m offset (x) embed, then the patch weight: folded into one [P, 3M, dp] map per patch.
        folded = np.einsum("pmj,pcjd->pmcd", embed.astype(np.float64), weight.reshape(p, 3, r, dp))
        self.patch_map = np.ascontiguousarray(folded.reshape(p, m * 3, dp), dtype=np.float32)
        self.patch_embed = w.get("motion_encoder.patch_embed", (p, dp))[:, None, :]
        self.space = [
            SpaceLayer(w, f"motion_encoder.space.{i}", dp, cfg["mesh_heads"], cfg["mesh_ff_mult"])
            for i in range(cfg["mesh_layers"])
        ]
        self.pool_norm = w.norm("motion_encoder.pool_norm", p * dp)
        self.pool = w.linear("motion_encoder.pool", p * dp, d)
        self.time = [
            LocalLayer(w, f"motion_encoder.time.{i}", d, cfg["decoder_heads"], cfg["ff_mult"])
            for i in range(cfg["motion_layers"])
        ]
        self.window = cfg["motion_window"]
        self.norm = w.norm("motion_encoder.norm", d)
        self.bias = ring_bias_table(alibi_slopes(cfg["decoder_heads"]), self.window)

    def encode_frames(self, scaled: np.ndarray) -> np.ndarray:
        """[N, V*3] scaled offsets -> [N, d_model] (frames independent)."""
        if not self.mesh:
            return self.proj(scaled)
        n = scaled.shape[0]
        flat = np.zeros((n, scaled.shape[1] + 3), dtype=np.float32)
        flat[:, :-3] = scaled
        gathered = flat[:, self.columns].transpose(1, 0, 2)  # [P,N,3M]
        tokens = np.matmul(gathered, self.patch_map)  # [P,N,dp]
        tokens += self.patch_embed
        tokens = np.ascontiguousarray(tokens.transpose(1, 0, 2))
        for layer in self.space:
            tokens = layer(tokens)
        return self.pool(self.pool_norm(tokens.reshape(n, -1)))

    def start(self, batch: int, heads: int, head_dim: int) -> list[RingCache]:
        return [RingCache(batch, heads, self.window, head_dim) for _ in self.time]

    def step(self, scaled: np.ndarray, caches: list[RingCache], t: int) -> np.ndarray:
        x = self.encode_frames(scaled)
        if not self.mesh:
            return x
        bias = self.bias[t if t < self.window else self.window + t % self.window]
        for layer, cache in zip(self.time, caches):
            x = layer.step(x, cache, t, bias)
        return self.norm(x)


class CrossAttention:
    """engine.model.decoder.AlignedCrossAttention: frame t sees audio frames t-r .. t+r."""

    def __init__(self, w: Weights, name: str, dim: int, heads: int, radius: int) -> None:
        self.heads, self.head_dim, self.radius = heads, dim // heads, radius
        self.q = w.linear(f"{name}.q", dim, dim)
        self.kv = w.linear(f"{name}.kv", dim, 2 * dim)
        self.out = w.linear(f"{name}.out", dim, dim)
        dist = np.abs(np.arange(2 * radius + 1) - radius).astype(np.float32)
        self.dist_bias = (-alibi_slopes(heads)[:, None] * dist[None, :]).astype(np.float32)  # [H,2r+1]
        self.scale = np.float32(1.0 / math.sqrt(self.head_dim))

    def precompute(self, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """memory [B,T,D] -> padded keys, values [B,H,T+2r,dh] (zeros outside the audio)."""
        b, t, _ = memory.shape
        r = self.radius
        kv = self.kv(memory).reshape(b, t, 2, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        k = np.zeros((b, self.heads, t + 2 * r, self.head_dim), dtype=np.float32)
        v = np.zeros_like(k)
        k[:, :, r : r + t], v[:, :, r : r + t] = kv[0], kv[1]
        return k, v

    def step(self, x: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, t: int) -> np.ndarray:
        b, d = x.shape
        span = 2 * self.radius + 1
        q = self.q(x).reshape(b, self.heads, 1, self.head_dim)
        scores = np.matmul(q, k[:, :, t : t + span].transpose(0, 1, 3, 2))[:, :, 0]  # [B,H,span]
        scores *= self.scale
        scores += self.dist_bias
        scores += mask[:, None, t : t + span]
        y = np.matmul(softmax(scores)[:, :, None, :], v[:, :, t : t + span])[:, :, 0]
        return self.out(y.reshape(b, d))


class DecoderLayer:
    def __init__(self, w: Weights, name: str, cfg: dict[str, Any]) -> None:
        d, heads = cfg["d_model"], cfg["decoder_heads"]
        self.norm1 = w.norm(f"{name}.norm1", d)
        self.self_attn = SelfAttention(w, f"{name}.self_attn", d, heads)
        self.norm2 = w.norm(f"{name}.norm2", d)
        self.cross_attn = CrossAttention(w, f"{name}.cross_attn", d, heads, cfg["align_radius"])
        self.norm3 = w.norm(f"{name}.norm3", d)
        self.ff = FeedForward(w, f"{name}.ff", d, d * cfg["ff_mult"])


class FaceDecoder:
    def __init__(self, w: Weights, cfg: dict[str, Any]) -> None:
        d = cfg["d_model"]
        self.start_token = w.get("decoder.start_token", (d,))
        self.in_proj = w.linear("decoder.in_proj", d, d)
        self.emotion_embed = (
            w.linear("decoder.emotion_embed", cfg["n_emotions"], d, bias=False)
            if w.has("decoder.emotion_embed.weight")
            else None
        )
        self.style_embed = w.linear("decoder.style_embed", cfg["style_dim"], d)
        self.layers = [DecoderLayer(w, f"decoder.layers.{i}", cfg) for i in range(cfg["decoder_layers"])]
        self.norm = w.norm("decoder.norm", d)
        self.offset_head = w.vertex_linear("decoder.offset_head", d, cfg["n_vertices"] * 3)
        self.arkit_head = w.linear("decoder.arkit_head", d, cfg["n_arkit"])
        self.window = cfg["decoder_window"]
        self.self_bias = ring_bias_table(alibi_slopes(cfg["decoder_heads"]), self.window)

    def condition(self, cond: np.ndarray, style: np.ndarray) -> np.ndarray:
        """[B,T,n_emotions], [B,style_dim] -> [B,T,D]."""
        c = np.repeat(self.style_embed(style)[:, None, :], cond.shape[1], axis=1)
        if self.emotion_embed is not None:
            c += self.emotion_embed(cond)
        return c


class LipReader:
    """engine.model.dualface.LipReadingHead: +-2 frame convolution, GELU, phone log-probs."""

    def __init__(self, w: Weights, cfg: dict[str, Any]) -> None:
        d = cfg["d_model"]
        conv = w.get("lip_head.conv.weight", (d, d, 5))
        self.conv = np.ascontiguousarray(conv.transpose(2, 1, 0).reshape(5 * d, d))
        self.conv_bias = w.get("lip_head.conv.bias", (d,))
        self.out = w.linear("lip_head.out", d, cfg["n_phones"])

    def __call__(self, motion: np.ndarray) -> np.ndarray:
        """[T,D] motion embeddings -> [T, n_phones] log-probs."""
        t, d = motion.shape
        padded = np.zeros((t + 4, d), dtype=np.float32)
        padded[2 : t + 2] = motion
        h = np.zeros((t, d), dtype=np.float32) + self.conv_bias
        for k in range(5):  # tap by tap: no [T, 5D] copy for long takes
            h += padded[k : k + t] @ self.conv[k * d : (k + 1) * d]
        return log_softmax(self.out(gelu(h)))


class Network:
    """Every part inference uses, built once from a checkpoint."""

    def __init__(self, arrays: dict[str, np.ndarray], cfg: dict[str, Any]) -> None:
        missing = [
            key
            for key in CONFIG_KEYS + ["ff_mult", "mesh_ff_mult", "mesh_layers", "motion_layers"]
            if key not in cfg
        ]
        if missing:
            raise ValueError(f"the stored config lacks {missing}; re-save the checkpoint with engine.weights")
        self.cfg = cfg
        w = Weights(arrays)
        self.audio_encoder = AudioEncoder(w, cfg)
        self.audio_ctc_head = w.linear("audio_ctc_head", cfg["d_model"], cfg["n_phones"])
        self.motion_encoder = MotionEncoder(w, cfg)
        self.decoder = FaceDecoder(w, cfg)
        self.lip_reader = LipReader(w, cfg)

    def audio_logprobs(self, audio_feat: np.ndarray) -> np.ndarray:
        return log_softmax(self.audio_ctc_head(audio_feat))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


__all__ = ["NEG", "Network", "RingCache", "sigmoid"]
