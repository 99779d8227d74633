"""The torch backend: the same model steps as engine.numpy_runtime.runtime.NumpyModel, on a DualFace.

`engine.api.Engine` calls one of the two through this interface (encode a clip, decode a batch of
clips, read phones for captions), so everything around the model is shared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.inference.chunking import DecodePlan
from engine.inference.decode import (
    ClipInput,
    audio_logprobs,
    audio_valid_frames,
    decode_clips,
    encode_audio_windowed,
    lip_logprobs,
)


class TorchModel:
    """A DualFace on a device, in float32 or (CUDA) float16."""

    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.dtype = torch.float32
        self.model = model.to(device, self.dtype).eval().requires_grad_(False)

    @property
    def precision(self) -> str:
        return str(self.dtype).replace("torch.", "")

    def set_half(self, half: bool) -> None:
        self.dtype = torch.float16 if half else torch.float32
        self.model.to(self.dtype)

    @torch.no_grad()
    def encode(
        self, mel: np.ndarray, fps: float, n_frames: int, cond: np.ndarray, style: np.ndarray, cancel=None
    ) -> ClipInput:
        """log-mel [Tm,80] + conditioning -> the decoder's inputs on the motion frame grid."""
        mel_t = torch.from_numpy(mel).to(self.device, self.dtype)
        return ClipInput(
            audio_feat=encode_audio_windowed(self.model, mel_t, fps, n_frames, cancel),
            audio_valid=audio_valid_frames(mel.shape[0], fps, n_frames, self.device),
            cond=torch.from_numpy(np.asarray(cond, dtype=np.float32)).to(self.device, self.dtype),
            style=torch.from_numpy(np.asarray(style, dtype=np.float32)).to(self.device, self.dtype),
        )

    def decode(
        self,
        clips: list[ClipInput],
        plan: DecodePlan,
        progress: Callable[[float], None] | None = None,
        cancel=None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return decode_clips(self.model, clips, plan, progress=progress, cancel=cancel)

    def audio_logprobs(self, clip: ClipInput) -> np.ndarray:
        return audio_logprobs(self.model, clip.audio_feat)

    def lip_logprobs(self, motion: np.ndarray) -> np.ndarray:
        return lip_logprobs(self.model, motion, self.device, self.dtype)
