"""The closure detector as a torch module, for training only; engine.closure.detector runs the same
weights in numpy everywhere else (tests/test_closure.py checks the two agree)."""

from __future__ import annotations

from torch import Tensor, nn

from engine.closure.detector import BLOCK_KERNEL, CHANNELS, DILATIONS, IN_KERNEL
from engine.closure.features import N_INPUTS
from engine.phonemes import PHONES


class ClosureNetwork(nn.Module):
    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(N_INPUTS, channels, IN_KERNEL, padding=IN_KERNEL // 2)
        self.blocks = nn.ModuleList(
            nn.Conv1d(channels, channels, BLOCK_KERNEL, padding=d * (BLOCK_KERNEL // 2), dilation=d)
            for d in DILATIONS
        )
        self.out = nn.Conv1d(channels, len(PHONES), 1)
        self.act = nn.GELU()

    def forward(self, inputs: Tensor) -> Tensor:
        """[B, T, N_INPUTS] -> phone logits [B, len(PHONES), T]."""
        x = self.act(self.conv_in(inputs.transpose(1, 2)))
        for block in self.blocks:
            x = x + self.act(block(x))
        return self.out(x)

    def numpy_weights(self) -> dict:
        return {name: value.detach().cpu().float().numpy() for name, value in self.state_dict().items()}
