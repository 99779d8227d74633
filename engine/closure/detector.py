"""The closure detector at inference, in plain numpy: log-mel in, probability of a lip closure per 10 ms out.

A stack of 1-D convolutions (GELU, residual dilated layers) over engine.closure.features: about
300 ms of context each side, enough to hear a stop's closure and release or a nasal's transitions.
It classifies every 10 ms into the phone inventory (engine.phonemes.PHONES) and the closure
probability is the share of p, b and m: trained to tell a bilabial from its near misses (n, d, v),
it closes the lips on fewer of them than a yes/no detector does.
It is small (tens of thousands of weights, well under a millisecond per second of audio) and needs no
torch, so every caller runs this same code: the numpy runtime in a stock Blender, the torch engine,
the worker. engine.closure.network is the torch twin that trains it; engine.closure.train writes the
weights file this module reads.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.closure.features import NORM_HALF_WINDOW, detector_input

CHANNELS = 64  # the default width; a file's own width is read from its weights
IN_KERNEL = 5
DILATIONS = (1, 2, 4, 8)
BLOCK_KERNEL = 3
RECEPTIVE_HALF = IN_KERNEL // 2 + sum(DILATIONS) * (BLOCK_KERNEL // 2)  # frames each side
CONTEXT_FRAMES = RECEPTIVE_HALF + NORM_HALF_WINDOW  # margin a piece needs to equal the whole
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "closure_detector.npz"
FORMAT = "dualface-closure-detector-1"


class ClosureDetectorError(RuntimeError):
    """The detector's weights file is missing or does not fit this code."""


def parameter_shapes(channels: int = CHANNELS) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight, as torch's Conv1d stores them ([out, in, kernel])."""
    from engine.closure.features import N_INPUTS
    from engine.phonemes import PHONES

    shapes: dict[str, tuple[int, ...]] = {
        "conv_in.weight": (channels, N_INPUTS, IN_KERNEL),
        "conv_in.bias": (channels,),
    }
    for i in range(len(DILATIONS)):
        shapes[f"blocks.{i}.weight"] = (channels, channels, BLOCK_KERNEL)
        shapes[f"blocks.{i}.bias"] = (channels,)
    shapes["out.weight"] = (len(PHONES), channels, 1)
    shapes["out.bias"] = (len(PHONES),)
    return shapes


class ClosureDetector:
    """Weights by name (parameter_shapes); `probabilities(mel)` runs the network."""

    def __init__(self, weights: dict[str, np.ndarray], info: dict | None = None) -> None:
        channels = int(np.shape(weights["conv_in.weight"])[0]) if "conv_in.weight" in weights else CHANNELS
        expected = parameter_shapes(channels)
        for name, shape in expected.items():
            if name not in weights or tuple(np.shape(weights[name])) != shape:
                raise ClosureDetectorError(
                    f"closure detector weight {name!r} is missing or not {shape}; "
                    "retrain it with python -m engine.closure.train"
                )
        self.weights = {name: np.asarray(weights[name], np.float32) for name in expected}
        self.info = dict(info or {})
        # [out, in, kernel] -> [kernel * in, out], contiguous: one matmul per layer (a strided
        # weight view makes numpy's matmul ten times slower)
        self._packed = {
            name: np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0]))
            for name, w in self.weights.items()
            if w.ndim == 3
        }

    def probabilities(self, mel: np.ndarray) -> np.ndarray:
        """[Tm, 80] log-mel of a whole recording -> [Tm] closure probability per 10 ms frame."""
        from engine.phonemes import BILABIALS, PHONES

        normalise = self.info.get("input", "normalised") == "normalised"
        logits = self.logits(detector_input(mel, normalise)).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        share = np.exp(logits)
        share /= share.sum(axis=1, keepdims=True)
        closing = [i for i, phone in enumerate(PHONES) if phone in BILABIALS]
        return share[:, closing].sum(axis=1).astype(np.float32)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """[Tm, N_INPUTS] detector input -> [Tm, len(PHONES)] phone logits."""
        x = _gelu(self._conv(np.asarray(inputs, np.float32), "conv_in", 1))
        for i, dilation in enumerate(DILATIONS):
            x = x + _gelu(self._conv(x, f"blocks.{i}", dilation))
        return self._conv(x, "out", 1)

    def _conv(self, x: np.ndarray, layer: str, dilation: int) -> np.ndarray:
        """torch Conv1d with 'same' zero padding, on time-major x [T, Cin] -> [T, Cout]."""
        kernel = self.weights[f"{layer}.weight"].shape[2]
        pad = dilation * (kernel // 2)
        padded = np.pad(x, ((pad, pad), (0, 0)))
        t = x.shape[0]
        columns = np.concatenate([padded[k * dilation : k * dilation + t] for k in range(kernel)], axis=1)
        return columns @ self._packed[f"{layer}.weight"] + self.weights[f"{layer}.bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    from engine.numpy_runtime.ops import gelu

    return gelu(x)


def save_detector(weights: dict[str, np.ndarray], info: dict, path: str | Path) -> Path:
    """Weights and a JSON description (training data, seed, measured recall) in one .npz, atomically."""
    from engine.atomic_file import atomic_output

    path = Path(path)
    arrays = {
        name: np.asarray(weights[name], np.float32)
        for name in parameter_shapes(weights["conv_in.weight"].shape[0])
    }
    digest = _digest(arrays)
    header = json.dumps({"format": FORMAT, "sha256": digest, **info}, sort_keys=True)
    with atomic_output(path, "closure detector") as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, info=np.frombuffer(header.encode("utf-8"), dtype=np.uint8), **arrays)
    return path


def read_detector(path: str | Path) -> ClosureDetector:
    """Load and check a detector file written by save_detector."""
    path = Path(path)
    if not path.is_file():
        raise ClosureDetectorError(f"closure detector weights not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ClosureDetectorError(f"{path} is not a closure detector file ({error})") from error
    try:
        info = json.loads(bytes(arrays.pop("info")).decode("utf-8"))
    except (KeyError, ValueError) as error:
        raise ClosureDetectorError(f"{path} has no readable description") from error
    if info.get("format") != FORMAT:
        raise ClosureDetectorError(f"{path} is format {info.get('format')!r}, this code reads {FORMAT!r}")
    detector = ClosureDetector(arrays, info)
    if _digest(detector.weights) != info.get("sha256"):
        raise ClosureDetectorError(f"{path} is damaged: its weights do not match their checksum")
    return detector


@lru_cache(maxsize=4)
def load_detector(path: str | None = None) -> ClosureDetector:
    """The shipped detector (or the one at `path`), loaded once per process."""
    return read_detector(path or SHIPPED_WEIGHTS)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode("utf-8"))
        h.update(np.ascontiguousarray(arrays[name], np.float32).tobytes())
    return h.hexdigest()
