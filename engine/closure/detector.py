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

A file may hold several such networks (an ensemble, engine.closure.ensemble): their closure
probabilities are averaged. Networks trained differently disagree most on voices none of them heard,
so the average keeps fewer of one network's confusions at the same share of p/b/m found. Averaging
changes how high the probability climbs, so the file carries the threshold chosen for it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.closure.features import NORM_HALF_WINDOW, detector_input
from engine.closure.frames import THRESHOLD

CHANNELS = 64  # the default width; a file's own width is read from its weights
IN_KERNEL = 5
DILATIONS = (1, 2, 4, 8)
BLOCK_KERNEL = 3
RECEPTIVE_HALF = IN_KERNEL // 2 + sum(DILATIONS) * (BLOCK_KERNEL // 2)  # frames each side
CONTEXT_FRAMES = RECEPTIVE_HALF + NORM_HALF_WINDOW  # margin a piece needs to equal the whole
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "closure_detector.npz"
FORMAT = "dualface-closure-detector-2"  # member networks "m<i>.<weight>" and their threshold
SINGLE_NETWORK_FORMAT = "dualface-closure-detector-1"  # one network, read with THRESHOLD


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
    """One network's weights by name (parameter_shapes), or a list of them (an ensemble);
    `probabilities(mel)` runs them, `threshold` is where a frame counts as closed."""

    def __init__(
        self, weights: dict[str, np.ndarray] | list[dict[str, np.ndarray]], info: dict | None = None
    ):
        members = [weights] if isinstance(weights, dict) else list(weights)
        if not members:
            raise ClosureDetectorError("a closure detector needs at least one network")
        self.members = [_Network(member) for member in members]
        self.info = dict(info or {})
        self.threshold = float(self.info.get("threshold", THRESHOLD))
        if not 0.0 < self.threshold < 1.0:
            raise ClosureDetectorError(f"closure threshold {self.threshold} is not between 0 and 1")

    def probabilities(self, mel: np.ndarray) -> np.ndarray:
        """[Tm, 80] log-mel of a whole recording -> [Tm] closure probability per 10 ms frame
        (the mean over the member networks)."""
        inputs = detector_input(mel, self.info.get("input", "normalised"))
        shares = np.stack([member.closure_share(inputs) for member in self.members])
        return shares.mean(axis=0).astype(np.float32)


class _Network:
    """One convolution stack, checked against parameter_shapes and packed for fast matmuls."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        channels = int(np.shape(weights["conv_in.weight"])[0]) if "conv_in.weight" in weights else CHANNELS
        expected = parameter_shapes(channels)
        for name, shape in expected.items():
            if name not in weights or tuple(np.shape(weights[name])) != shape:
                raise ClosureDetectorError(
                    f"closure detector weight {name!r} is missing or not {shape}; "
                    "retrain it with python -m engine.closure.train"
                )
        self.weights = {name: np.asarray(weights[name], np.float32) for name in expected}
        # [out, in, kernel] -> [kernel * in, out], contiguous: one matmul per layer (a strided
        # weight view makes numpy's matmul ten times slower)
        self._packed = {
            name: np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0]))
            for name, w in self.weights.items()
            if w.ndim == 3
        }

    def closure_share(self, inputs: np.ndarray) -> np.ndarray:
        """[Tm, N_INPUTS] detector input -> [Tm] float64 share of p, b and m among the phones."""
        from engine.phonemes import BILABIALS, PHONES

        logits = self.logits(inputs).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        share = np.exp(logits)
        share /= share.sum(axis=1, keepdims=True)
        closing = [i for i, phone in enumerate(PHONES) if phone in BILABIALS]
        return share[:, closing].sum(axis=1)

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


def save_detector(detector: ClosureDetector, path: str | Path) -> Path:
    """The member networks, their threshold and a JSON description (training data, seeds, measured
    recall) in one .npz, atomically."""
    from engine.atomic_file import atomic_output

    path = Path(path)
    arrays = _stored_arrays(detector)
    info = {**detector.info, "threshold": detector.threshold}
    header = json.dumps({**info, "format": FORMAT, "sha256": _digest(arrays)}, sort_keys=True)
    with atomic_output(path, "closure detector") as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, info=np.frombuffer(header.encode("utf-8"), dtype=np.uint8), **arrays)
    return path


def read_detector(path: str | Path) -> ClosureDetector:
    """Load and check a detector file written by save_detector (or a one-network file of the
    previous format, which used THRESHOLD)."""
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
    digest = info.pop("sha256", None)
    file_format = info.pop("format", None)
    if file_format == SINGLE_NETWORK_FORMAT:
        detector = ClosureDetector(arrays, info)
        stored = detector.members[0].weights
    elif file_format == FORMAT:
        prefixes = {name.split(".", 1)[0] for name in arrays}
        count = len(prefixes)
        if prefixes != {f"m{i}" for i in range(count)} or not all("." in name for name in arrays):
            raise ClosureDetectorError(f"{path} holds weights that belong to no member network")
        members = [
            {name.split(".", 1)[1]: a for name, a in arrays.items() if name.startswith(f"m{i}.")}
            for i in range(count)
        ]
        detector = ClosureDetector(members, info)
        stored = _stored_arrays(detector)
    else:
        raise ClosureDetectorError(f"{path} is format {file_format!r}, this code reads {FORMAT!r}")
    if _digest(stored) != digest:
        raise ClosureDetectorError(f"{path} is damaged: its weights do not match their checksum")
    return detector


def _stored_arrays(detector: ClosureDetector) -> dict[str, np.ndarray]:
    return {
        f"m{i}.{name}": weight
        for i, member in enumerate(detector.members)
        for name, weight in member.weights.items()
    }


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
