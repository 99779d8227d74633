"""The record every dataset reader returns, synthetic or real, so train and eval need one code path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Phone:
    phone: str  # a symbol of engine.phonemes.PHONES
    start: float  # seconds
    end: float


@dataclass
class Clip:
    clip_id: str
    subject: str  # speaker / voice id; held-out-voice splits group by it
    audio_path: Path  # mono wav
    fps: float
    vertices: np.ndarray  # [T, V, 3] float32 absolute positions
    template: np.ndarray  # [V, 3] float32 neutral face of this subject
    arkit: np.ndarray | None = None  # [T, 52] ground-truth ARKit weights (synthetic data only)
    phones: list[Phone] | None = None  # timed phones (synthetic data only)
    text: str = ""
    language: str = "en"
    emotion: str = "neutral"
    intensity: float = 0.0
    meta: dict = field(default_factory=dict)
    mel_path: Path | None = None  # precomputed log-mels standing in for the audio (a packed corpus)

    @property
    def offsets(self) -> np.ndarray:
        return self.vertices - self.template[None]
