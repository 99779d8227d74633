"""Motion encoder: per-frame vertex offsets -> one motion embedding per frame.

Mesh Attention (EmoFace) encodes a frame as a set of patch tokens and lets the patches attend to each
other, so the embedding sees how the lips move *relative to* the jaw and cheeks rather than a flat
list of coordinates; a causal attention over the last `motion_window` frames then adds dynamics.
Patches come from deterministic farthest-point clustering of the template, so any topology works
(468 MediaPipe, 5023 FLAME, 23370 BIWI) and the same config always yields the same grouping. The
labels are a persistent buffer: a checkpoint carries the grouping it was trained with.

A patch token is a linear map of its vertices' offsets with a low-rank per-vertex weight
(offset_v (x) e_v summed over the patch, then a per-patch linear) plus a learned patch embedding:
parameters grow with V * rank instead of V * 3 * width, which keeps BIWI-sized meshes affordable.

`LinearMotionEncoder` is the ablation (`mesh_attention=False`): one linear layer over the
flattened offsets, FaceFormer's motion encoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.model.attention import (
    FullTransformerLayer,
    LocalTransformerLayer,
    RingCache,
    ring_bias_table,
    ring_step_index,
)
from engine.model.config import ModelConfig
from engine.model.vertex_layers import vertex_linear


def farthest_point_patches(points: np.ndarray, n_patches: int, slack: float = 1.25) -> np.ndarray:
    """Group vertices into `n_patches` spatial patches; returns a label in [0, n_patches) per vertex.

    Seeds: the vertex farthest from the centroid, then repeatedly the vertex farthest from all seeds
    (ties -> lowest index). Vertices then join their nearest seed that still has room, nearest
    vertices first; a patch holds at most slack * V / P vertices. Balanced patches keep the padded
    [P, max patch size] token layout dense, which is what makes a decoding step cheap.
    Deterministic by construction.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"template must be [V,3], got shape {points.shape}")
    n = len(points)
    if not 1 <= n_patches <= n:
        raise ValueError(f"need 1 <= mesh_patches <= {n} vertices, got {n_patches}")
    seeds = [int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]
    nearest = np.linalg.norm(points - points[seeds[0]], axis=1)
    for _ in range(n_patches - 1):
        seeds.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[seeds[-1]], axis=1))
    dists = np.linalg.norm(points[:, None, :] - points[seeds][None, :, :], axis=2)  # [V,P]
    capacity = max(1, math.ceil(slack * n / n_patches))
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(n_patches, capacity, dtype=np.int64)
    for p, seed in enumerate(seeds):  # duplicated positions: every patch keeps at least its seed
        if labels[seed] < 0:
            labels[seed] = p
            room[p] -= 1
    for v in np.argsort(dists.min(axis=1), kind="stable"):
        if labels[v] >= 0:
            continue
        choice = int(np.argmin(np.where(room > 0, dists[v], np.inf)))
        labels[v] = choice
        room[choice] -= 1
    return labels


def index_order_patches(n_vertices: int, n_patches: int) -> np.ndarray:
    """Fallback grouping without a template: contiguous index ranges (meshes store rings in order)."""
    return (np.arange(n_vertices) * n_patches // n_vertices).astype(np.int64)


def _patch_gather_index(labels: np.ndarray, n_patches: int) -> tuple[np.ndarray, np.ndarray]:
    """[P,M] vertex indices per patch (padding points at index V) and the [P,M] validity mask."""
    members = [np.nonzero(labels == p)[0] for p in range(n_patches)]
    width = max(len(m) for m in members)
    index = np.full((n_patches, width), len(labels), dtype=np.int64)
    mask = np.zeros((n_patches, width), dtype=bool)
    for p, m in enumerate(members):
        index[p, : len(m)] = m
        mask[p, : len(m)] = True
    return index, mask


class MotionEncoderState:
    """Per-clip cache of the temporal layers for incremental encoding."""

    def __init__(self, caches: list[RingCache], bias_table: Tensor | None = None, window: int = 1) -> None:
        self.caches = caches
        self.bias_table = bias_table  # ring_bias_table shared by the temporal layers
        self.window = window
        self.t = 0


class MeshAttentionEncoder(nn.Module):
    patch_labels: Tensor  # [V] patch of each vertex (buffers)
    gather_index: Tensor  # [P,M] vertex indices per patch, V = padding
    gather_mask: Tensor  # [P,M] True for real vertices

    def __init__(self, cfg: ModelConfig, patch_labels: np.ndarray) -> None:
        super().__init__()
        labels = np.asarray(patch_labels, dtype=np.int64)
        if labels.shape != (cfg.n_vertices,) or labels.min() < 0 or labels.max() >= cfg.mesh_patches:
            raise ValueError(
                f"patch labels must be [{cfg.n_vertices}] values in [0, {cfg.mesh_patches}), got shape "
                f"{labels.shape}"
            )
        index, mask = _patch_gather_index(labels, cfg.mesh_patches)
        p, m = index.shape
        r, dp = cfg.vertex_embed_dim, cfg.patch_dim
        self.register_buffer("patch_labels", torch.from_numpy(labels))  # persistent: saved in checkpoints
        self.register_buffer("gather_index", torch.from_numpy(index), persistent=False)
        self.register_buffer("gather_mask", torch.from_numpy(mask), persistent=False)
        self.vertex_embed = nn.Parameter(torch.randn(p, m, r) / math.sqrt(m))
        self.patch_weight = nn.Parameter(torch.randn(p, 3 * r, dp) / math.sqrt(3 * r))
        self.patch_embed = nn.Parameter(torch.randn(p, dp) * 0.02)
        self.space = nn.ModuleList(
            FullTransformerLayer(dp, cfg.mesh_heads, cfg.mesh_ff_mult) for _ in range(cfg.mesh_layers)
        )
        self.pool_norm = nn.LayerNorm(p * dp)
        self.pool = nn.Linear(p * dp, cfg.d_model)
        self.time = nn.ModuleList(
            LocalTransformerLayer(
                cfg.d_model, cfg.decoder_heads, cfg.motion_window - 1, 0, cfg.ff_mult, cfg.dropout
            )
            for _ in range(cfg.motion_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def encode_frames(self, offsets: Tensor) -> Tensor:
        """Spatial part: [N,V,3] scaled offsets -> [N,d_model], frames independent."""
        n = offsets.shape[0]
        p, m, _ = self.vertex_embed.shape
        padded = F.pad(offsets, (0, 0, 0, 1))  # index V is the zero vertex that pads small patches
        patches = padded.index_select(1, self.gather_index.reshape(-1)).view(n, p, m, 3)
        patches = patches.permute(1, 0, 3, 2).reshape(p, n * 3, m)  # patch-major for batched matmuls
        mixed = torch.bmm(patches, self.vertex_embed).view(p, n, -1)  # [P,N,3r]: sum_v offset_v (x) e_v
        tokens = torch.bmm(mixed, self.patch_weight).transpose(0, 1) + self.patch_embed  # [N,P,dp]
        for layer in self.space:
            tokens = layer(tokens)
        return self.pool(self.pool_norm(tokens.flatten(1)))

    def forward(self, offsets: Tensor) -> Tensor:
        """[B,T,V,3] scaled offsets -> [B,T,d_model]; frame t depends on frames <= t only."""
        b, t = offsets.shape[:2]
        x = self.encode_frames(offsets.reshape(b * t, *offsets.shape[2:])).view(b, t, -1)
        for layer in self.time:
            x = layer(x)
        return self.norm(x)

    def start(self, batch: int, like: Tensor) -> MotionEncoderState:
        time_layers = cast(Sequence[LocalTransformerLayer], self.time)  # ModuleList only promises Modules
        if not len(time_layers):
            return MotionEncoderState([])
        window = time_layers[0].attn.left + 1
        table = ring_bias_table(time_layers[0].attn.slopes.to(like.dtype), window)
        return MotionEncoderState([layer.new_cache(batch, like) for layer in time_layers], table, window)

    def step(self, offsets_t: Tensor, state: MotionEncoderState) -> Tensor:
        """One new frame [B,V,3] -> its embedding [B,d_model], reusing cached history."""
        x = self.encode_frames(offsets_t)
        if state.bias_table is not None:
            bias = state.bias_table[ring_step_index(state.t, state.window)]
            time_layers = cast(Sequence[LocalTransformerLayer], self.time)  # ModuleList only promises Modules
            for layer, cache in zip(time_layers, state.caches):
                x = layer.step(x, cache, state.t, bias)
        state.t += 1
        return self.norm(x)


class LinearMotionEncoder(nn.Module):
    """Ablation: one linear layer over the flattened offsets of each frame (no space/time attention)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.proj = vertex_linear(cfg, cfg.n_vertices * 3, cfg.d_model)  # low rank for large meshes

    def forward(self, offsets: Tensor) -> Tensor:
        return self.proj(offsets.flatten(-2))

    def start(self, batch: int, like: Tensor) -> MotionEncoderState:
        return MotionEncoderState([])

    def step(self, offsets_t: Tensor, state: MotionEncoderState) -> Tensor:
        state.t += 1
        return self.proj(offsets_t.flatten(-2))
