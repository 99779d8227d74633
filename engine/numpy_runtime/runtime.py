"""The numpy backend: load a checkpoint and run the engine's model steps without torch.

`NumpyModel` offers exactly the steps `engine.api.Engine` needs from a model -- encode a clip's
audio, decode a batch of clips, and the two phone readers for captions -- so the engine's request
handling, schedules, captions and `Animation` are shared by both backends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.inference.chunking import DecodePlan
from engine.numpy_runtime.decode import (
    NumpyClip,
    audio_valid_frames,
    decode_clips,
    encode_audio_windowed,
)
from engine.numpy_runtime.network import Network
from engine.numpy_runtime.safetensors import WeightsFileError, payload_sha256, read_safetensors
from engine.request import CHECKPOINT_FORMAT, default_weights_path


class NumpyCheckpointError(RuntimeError):
    """A weights file the numpy runtime cannot use; the message names the fix."""


def weights_path(path: str | Path | None) -> Path:
    return Path(path).expanduser() if path is not None else default_weights_path()


def load_network(path: str | Path | None = None) -> Network:
    """Verify a checkpoint (side-car size and sha256, payload sha256, format, shapes) and build it."""
    path = weights_path(path)
    if not path.is_file():
        raise NumpyCheckpointError(
            f"no DualFace weights at {path}: copy dualface.safetensors and its .json side-car there"
        )
    data_hash = _check_sidecar(path)
    try:
        arrays, metadata, codes = read_safetensors(path)
    except WeightsFileError as error:
        raise NumpyCheckpointError(str(error)) from None
    if data_hash is None and len(arrays) and payload_sha256(arrays, codes) != metadata.get("payload_sha256"):
        raise NumpyCheckpointError(f"tensor data of {path} does not match its recorded sha256: copy it again")
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise NumpyCheckpointError(f"{path} is not a DualFace checkpoint (format {metadata.get('format')!r})")
    try:
        config = json.loads(metadata["config"])
        return Network(arrays, config)
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise NumpyCheckpointError(f"{path} has no readable config ({error}); re-export it") from None
    except ValueError as error:
        raise NumpyCheckpointError(f"{path} does not match the config stored in it: {error}") from None


def _check_sidecar(path: Path) -> str | None:
    """The side-car's sha256 when it exists and matches the file (then the payload hash is implied)."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        record = json.loads(side.read_text())
        expected_size, expected_hash = int(record["bytes"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NumpyCheckpointError(f"cannot read {side} ({error}); delete it or copy it again") from None
    if path.stat().st_size != expected_size:
        raise NumpyCheckpointError(
            f"{path} is truncated or was replaced ({side.name} disagrees); copy it again"
        )
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_hash:
        raise NumpyCheckpointError(f"sha256 of {path} does not match {side.name}: the file is corrupt")
    return expected_hash


class NumpyModel:
    """A loaded network; the model half of `Engine(backend="numpy")`."""

    backend = "numpy"
    device = "cpu"
    precision = "float32"

    def __init__(self, weights: str | Path | None = None, network: Network | None = None) -> None:
        self.network = network if network is not None else load_network(weights)
        self.cfg: dict[str, Any] = self.network.cfg

    def encode(
        self, mel: np.ndarray, fps: float, n_frames: int, cond: np.ndarray, style: np.ndarray, cancel=None
    ) -> NumpyClip:
        """log-mel [Tm,80] + conditioning -> the decoder's inputs on the motion frame grid."""
        feat = encode_audio_windowed(self.network, mel, fps, n_frames, cancel)
        return NumpyClip(
            audio_feat=feat,
            audio_valid=audio_valid_frames(mel.shape[0], fps, n_frames),
            cond=np.asarray(cond, dtype=np.float32),
            style=np.asarray(style, dtype=np.float32),
        )

    def decode(
        self,
        clips: list[NumpyClip],
        plan: DecodePlan,
        progress: Callable[[float], None] | None = None,
        cancel=None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Clips -> per clip (offsets [T,V,3] metres, ARKit [T,52], motion embeddings [T,D])."""
        return decode_clips(self.network, clips, plan, progress, cancel)

    def audio_logprobs(self, clip: NumpyClip) -> np.ndarray:
        return self.network.audio_logprobs(clip.audio_feat)

    def lip_logprobs(self, motion: np.ndarray) -> np.ndarray:
        return self.network.lip_reader(np.asarray(motion, dtype=np.float32))
