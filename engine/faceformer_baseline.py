"""A FaceFormer-faithful decoder, for the benchmark only: what the published design costs per take.

FaceFormer (Fan et al., CVPR 2022) decodes autoregressively with one `nn.TransformerDecoderLayer`
(post-norm, ReLU, feed-forward 2x the width; width 64 for VOCASET, 128 for BIWI), a periodic
positional encoding, a causal self-attention mask biased by -slope * floor(distance / period)
(ALiBi slopes per head) and an alignment mask that lets frame t see only its own audio frame. At each
step the whole prefix of motion embeddings goes through the decoder again (no key/value cache), the
vertex head maps every position, and one new embedding (the last frame's vertices re-encoded plus the
speaker embedding) is appended. Its masks are built for `MAX_SEQ_LEN` = 600 frames (20 s at 30 fps):
longer clips fail in the original; here the masks are extended so the cost can still be measured.

Written from the paper's description and its published hyper-parameters; the audio side (wav2vec 2.0
there) is replaced by the engine's audio features, which favours the baseline.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

MAX_SEQ_LEN = 600  # FaceFormer's mask and positional-encoding length
PERIOD = 30  # the positional-encoding and mask period at 30 fps (BIWI's setting; VOCASET uses 25)


def alibi_slopes(heads: int) -> Tensor:
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)])


def biased_causal_mask(heads: int, length: int, period: int) -> Tensor:
    """[H, L, L] additive mask: -inf above the diagonal, -slope * floor((i - j) / period) below."""
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    steps = torch.div(i - j, period, rounding_mode="floor").clamp(min=0).float()
    bias = -alibi_slopes(heads)[:, None, None] * steps[None]
    return bias.masked_fill((j > i)[None], float("-inf"))


def alignment_mask(frames: int, audio_frames: int) -> Tensor:
    """[T, S] bool, True = blocked: frame t sees only audio frame t (one audio frame per motion frame)."""
    allowed = torch.eye(frames, audio_frames, dtype=torch.bool)
    return ~allowed


class PeriodicPositionalEncoding(nn.Module):
    """Sinusoids over one period, repeated: position t and t + period share an encoding."""

    table: Tensor

    def __init__(self, width: int, period: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(period, dtype=torch.float32)[:, None]
        rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
        table = torch.zeros(period, width)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)
        repeats = max_len // period + 1
        self.register_buffer("table", table.repeat(repeats, 1)[None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.table[:, : x.shape[1]]


class FaceFormerDecoder(nn.Module):
    """Motion side of FaceFormer at its published sizes; audio features arrive already encoded."""

    causal: Tensor

    def __init__(
        self, n_vertices: int, audio_dim: int, width: int = 64, heads: int = 4, max_len: int = MAX_SEQ_LEN
    ):
        super().__init__()
        self.audio_map = nn.Linear(audio_dim, width)
        self.vertex_map = nn.Linear(n_vertices * 3, width)
        self.vertex_map_r = nn.Linear(width, n_vertices * 3)
        self.speaker = nn.Linear(8, width, bias=False)
        self.position = PeriodicPositionalEncoding(width, PERIOD, max_len)
        layer = nn.TransformerDecoderLayer(width, heads, dim_feedforward=2 * width, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers=1)
        self.heads, self.max_len = heads, max_len
        self.register_buffer("causal", biased_causal_mask(heads, max_len, PERIOD), persistent=False)

    @torch.no_grad()
    def predict(self, audio_feat: Tensor, speaker: Tensor) -> Tensor:
        """audio_feat [1,T,D], speaker one-hot [1,8] -> vertices [1,T,V*3], one frame per step."""
        frames = audio_feat.shape[1]
        if frames > self.max_len:
            raise ValueError(f"{frames} frames exceed FaceFormer's {self.max_len}-frame limit")
        memory = self.audio_map(audio_feat)
        style = self.speaker(speaker)[:, None]  # [1,1,W]
        embeddings = style
        outputs = []
        for t in range(frames):
            length = t + 1
            x = self.position(embeddings)
            causal = self.causal[:, :length, :length].repeat(x.shape[0], 1, 1)
            hidden = self.decoder(x, memory, tgt_mask=causal, memory_mask=alignment_mask(length, frames))
            vertices = self.vertex_map_r(hidden)  # every position, as the published decoder does
            outputs.append(vertices[:, -1])
            embeddings = torch.cat([embeddings, (self.vertex_map(vertices[:, -1]) + style[:, 0])[:, None]], 1)
        return torch.stack(outputs, dim=1)
