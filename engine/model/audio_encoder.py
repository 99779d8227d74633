"""Audio encoder: log-mel -> speech features at the motion frame rate.

Replaces wav2vec 2.0 with a small encoder trained from scratch: two stride-2 convolutions take the
100 Hz log-mel to 25 Hz, local (windowed) self-attention layers add +-`audio_window` frames of
context at linear cost, and linear interpolation in time lands the features on the motion frames
(25, 30 or 60 fps). The phoneme CTC head that pretrains it lives in `DualFace` because it reads the
resampled features, the same ones the decoder and the consistency loss see.

Log-mel silence is exactly 0 (see engine.audio.features), so the convolutions' zero padding and the
zero padding of batches both look like silence, as the end of a real recording does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.inference.chunking import ENCODER_RATE
from engine.model.attention import LocalTransformerLayer
from engine.model.config import ModelConfig


def subsampled_length(mel_len: Tensor) -> Tensor:
    """Frames left after the two stride-2 convolutions (kernel 3, padding 1)."""
    return ((mel_len - 1) // 2 + 1 - 1) // 2 + 1


def resample_to_frames(features: Tensor, valid_len: Tensor, fps: float, n_frames: int) -> Tensor:
    """Linear interpolation of [B,Ta,D] features at 25 Hz onto `n_frames` motion frames at `fps`.

    Encoder frame j is centred at 4j mel hops = j / 25 s; motion frame f sits at f / fps s. Times past
    a clip's last valid encoder frame repeat that frame.
    """
    b, _, d = features.shape
    times = torch.arange(n_frames, device=features.device, dtype=features.dtype) * (ENCODER_RATE / fps)
    last = (valid_len.to(features.device) - 1).clamp(min=0)[:, None]  # [B,1]
    lo = times.floor().long()[None, :].expand(b, -1)
    frac = (times - times.floor())[None, :, None]
    lo_c = torch.minimum(lo, last)
    hi_c = torch.minimum(lo + 1, last)
    frac = torch.where((lo + 1 > last)[..., None], torch.zeros_like(frac), frac)
    f_lo = torch.gather(features, 1, lo_c[..., None].expand(-1, -1, d))
    f_hi = torch.gather(features, 1, hi_c[..., None].expand(-1, -1, d))
    return f_lo + (f_hi - f_lo) * frac


class AudioEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        da = cfg.audio_dim
        self.subsample = nn.Sequential(
            nn.Conv1d(cfg.n_mels, da, kernel_size=3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(da, da, kernel_size=3, stride=2, padding=1),
            nn.GELU(),
        )
        self.layers = nn.ModuleList(
            LocalTransformerLayer(
                da, cfg.audio_heads, cfg.audio_window, cfg.audio_window, cfg.ff_mult, cfg.dropout
            )
            for _ in range(cfg.audio_layers)
        )
        self.norm = nn.LayerNorm(da)
        self.proj = nn.Linear(da, cfg.d_model)

    def forward(self, mel: Tensor, mel_len: Tensor | None, fps: float, n_frames: int) -> Tensor:
        """mel [B,Tm,n_mels] (padding = 0 = silence) -> features [B,n_frames,d_model]."""
        b, tm, _ = mel.shape
        if mel_len is None:
            mel_len = torch.full((b,), tm, dtype=torch.long, device=mel.device)
        x = self.subsample(mel.transpose(1, 2)).transpose(1, 2)  # [B,Ta,da]
        valid_len = subsampled_length(mel_len.to(mel.device).long())
        key_valid = torch.arange(x.shape[1], device=mel.device)[None, :] < valid_len[:, None]
        for layer in self.layers:
            x = layer(x, key_valid)
        x = self.proj(self.norm(x))
        return resample_to_frames(x, valid_len, fps, n_frames)
