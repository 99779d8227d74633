"""The result of one take: what every caller (Blender, CLI, worker, eval) receives from the engine.

Plain numpy and dataclasses, so the Blender add-on can read it without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.arkit import ARKIT_NAMES
from engine.atomic_file import atomic_output


@dataclass(frozen=True)
class TimedPhone:
    phone: str
    start: float  # seconds
    end: float
    confidence: float = 1.0


@dataclass(frozen=True)
class CaptionWord:
    """One script word of a caption line (script mode): its aligned time and how well it is shown."""

    text: str
    start: float
    end: float
    confidence: float  # how well the audio supports the word where it was aligned, 0..1
    sync: float  # agreement of the lip-read phones with the word's aligned phones, 0..1


@dataclass(frozen=True)
class Caption:
    """One reviewable segment: what the lips read, and how well that agrees with the audio."""

    start: float
    end: float
    text: str
    confidence: float  # lip reader's own confidence, 0..1
    sync: float  # agreement of lip-read vs audio-heard phonemes, 0..1 (low = look here)
    words: tuple[CaptionWord, ...] = ()  # with a script: the line's words, each timed and scored


@dataclass
class Animation:
    fps: float
    offsets: np.ndarray  # [T, V, 3] float32 offsets from the template face
    arkit: np.ndarray  # [T, 52] float32 ARKit weights in 0..1
    arkit_names: tuple[str, ...] = ARKIT_NAMES
    audio_phonemes: list[TimedPhone] = field(default_factory=list)  # what the audio encoder hears
    lip_phonemes: list[TimedPhone] = field(default_factory=list)  # what the lip reader reads
    captions: list[Caption] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.arkit.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / float(self.fps)

    def save(self, path: str | Path) -> Path:
        """Write a self-contained .npz (arrays plus a JSON side-car inside the archive), atomically:
        an interrupted save leaves the previous file (or none), never a partial one."""
        path = Path(path)
        info = {
            "fps": self.fps,
            "arkit_names": list(self.arkit_names),
            "audio_phonemes": [asdict(p) for p in self.audio_phonemes],
            "lip_phonemes": [asdict(p) for p in self.lip_phonemes],
            "captions": [asdict(c) for c in self.captions],
            "meta": self.meta,
        }
        with atomic_output(path, "take file") as temporary, temporary.open("wb") as handle:
            np.savez(  # stored: float motion deflates by ~5 % for ~0.5 s per minute of take
                handle,
                offsets=self.offsets.astype(np.float32, copy=False),
                arkit=self.arkit.astype(np.float32, copy=False),
                info=np.frombuffer(json.dumps(info).encode(), dtype=np.uint8),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Animation:
        with np.load(Path(path)) as data:
            info = json.loads(data["info"].tobytes().decode())
            return cls(
                fps=float(info["fps"]),
                offsets=data["offsets"],
                arkit=data["arkit"],
                arkit_names=tuple(info["arkit_names"]),
                audio_phonemes=[TimedPhone(**p) for p in info["audio_phonemes"]],
                lip_phonemes=[TimedPhone(**p) for p in info["lip_phonemes"]],
                captions=[
                    Caption(**{**c, "words": tuple(CaptionWord(**w) for w in c.get("words", ()))})
                    for c in info["captions"]
                ],
                meta=info.get("meta", {}),
            )
