"""The batch dict the model trains on, and the collation that builds it from per-clip arrays.

Keys (see docs/architecture.md): mel [B,Tm,80], mel_len [B], offsets [B,T,V,3] (metres),
frame_len [B], arkit [B,T,52] (optional), cond [B,T,8], style [B,5], phones [B,L] (VOCAB ids,
optional), phone_len [B], fps (float, one per batch), template [B,V,3] (optional), lip_mask [V]
(optional, overrides the MediaPipe lips for the vertex loss). Padding is 0 everywhere, which for
log-mel is silence (engine.audio.features.SILENCE_VALUE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from engine.emotions import EMOTIONS, emotion_id


def constant_condition(emotion: str, intensity: float, n_frames: int) -> np.ndarray:
    """Per-frame emotion conditioning [T,8]: the emotion's one-hot times its intensity."""
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"emotion intensity must be in [0, 1], got {intensity}")
    cond = np.zeros((n_frames, len(EMOTIONS)), dtype=np.float32)
    cond[:, emotion_id(emotion)] = intensity
    return cond


def _pad(arrays: Sequence[np.ndarray], length: int) -> Tensor:
    out = np.zeros((len(arrays), length, *arrays[0].shape[1:]), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out)


def collate(examples: Sequence[Mapping]) -> dict:
    """Pad per-clip numpy arrays into one batch dict.

    Each example: mel [Tm,80], offsets [T,V,3], cond [T,8], style [5], fps, and optionally arkit
    [T,52], phones (sequence of VOCAB ids), template [V,3]. Optional keys must be present in all
    examples or none.
    """
    if not examples:
        raise ValueError("collate needs at least one example")
    fps = {float(e["fps"]) for e in examples}
    if len(fps) != 1:
        raise ValueError(f"a batch must have one frame rate, got {sorted(fps)}; bucket clips by fps")
    n_vertices = {np.shape(e["offsets"])[1] for e in examples}
    if len(n_vertices) != 1:
        raise ValueError(f"a batch must have one mesh topology, got vertex counts {sorted(n_vertices)}")
    for e in examples:
        if len(e["cond"]) != len(e["offsets"]):
            raise ValueError(f"cond has {len(e['cond'])} frames but offsets has {len(e['offsets'])}")
        if e.get("arkit") is not None and len(e["arkit"]) != len(e["offsets"]):
            raise ValueError(f"arkit has {len(e['arkit'])} frames but offsets has {len(e['offsets'])}")
    for key in ("arkit", "phones", "template"):
        present = [e.get(key) is not None for e in examples]
        if any(present) and not all(present):
            raise ValueError(f"'{key}' is missing in some examples; give it for all clips of a batch or none")

    mels = [np.asarray(e["mel"], dtype=np.float32) for e in examples]
    offsets = [np.asarray(e["offsets"], dtype=np.float32) for e in examples]
    frames = max(len(o) for o in offsets)
    batch: dict = {
        "mel": _pad(mels, max(len(m) for m in mels)),
        "mel_len": torch.tensor([len(m) for m in mels], dtype=torch.long),
        "offsets": _pad(offsets, frames),
        "frame_len": torch.tensor([len(o) for o in offsets], dtype=torch.long),
        "cond": _pad([np.asarray(e["cond"], dtype=np.float32) for e in examples], frames),
        "style": torch.from_numpy(np.stack([np.asarray(e["style"], dtype=np.float32) for e in examples])),
        "fps": fps.pop(),
        "arkit": None,
        "phones": None,
        "phone_len": None,
        "template": None,
    }
    if examples[0].get("arkit") is not None:
        batch["arkit"] = _pad([np.asarray(e["arkit"], dtype=np.float32) for e in examples], frames)
    if examples[0].get("phones") is not None:
        phones = [np.asarray(e["phones"], dtype=np.int64).reshape(-1) for e in examples]
        batch["phone_len"] = torch.tensor([len(p) for p in phones], dtype=torch.long)
        padded = np.zeros((len(phones), max(1, max(len(p) for p in phones))), dtype=np.int64)
        for i, p in enumerate(phones):
            padded[i, : len(p)] = p
        batch["phones"] = torch.from_numpy(padded)
    if examples[0].get("template") is not None:
        batch["template"] = torch.from_numpy(
            np.stack([np.asarray(e["template"], np.float32) for e in examples])
        )
    return batch


def to_device(batch: dict, device: torch.device | str, dtype: torch.dtype | None = None) -> dict:
    """Move every tensor of a batch; float tensors optionally change dtype (tests use float64)."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            value = value.to(device)
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
        out[key] = value
    return out
