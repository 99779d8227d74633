"""A safetensors reader in plain numpy: the weights file is an 8-byte header length, a JSON header
(name -> dtype, shape, byte range; plus string metadata) and the raw little-endian arrays.

The numpy runtime reads the same checkpoints the torch engine writes (engine.weights), with the same
integrity checks (side-car sha256 of the whole file, payload sha256 of every tensor), so a stock
Blender needs neither torch nor the `safetensors` package to load them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

# safetensors dtype -> numpy dtype and the name torch prints (the payload hash is over torch's names).
DTYPES: dict[str, tuple[str, str]] = {
    "F64": ("<f8", "torch.float64"),
    "F32": ("<f4", "torch.float32"),
    "F16": ("<f2", "torch.float16"),
    "I64": ("<i8", "torch.int64"),
    "I32": ("<i4", "torch.int32"),
    "I16": ("<i2", "torch.int16"),
    "I8": ("i1", "torch.int8"),
    "U8": ("u1", "torch.uint8"),
    "BOOL": ("?", "torch.bool"),
    "BF16": ("<u2", "torch.bfloat16"),  # widened to float32 on read
}
MAX_HEADER_BYTES = 100 * 2**20


class WeightsFileError(RuntimeError):
    """A weights file that cannot be read; the message names the fix."""


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """-> (arrays by name, string metadata, safetensors dtype code by name).

    Arrays are copies (the file is closed on return); bfloat16 is widened to float32.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise WeightsFileError(f"cannot read {path} ({error})") from None
    header = _parse_header(data, path)
    metadata = header.pop("__metadata__", None) or {}
    start = 8 + struct.unpack("<Q", data[:8])[0]
    arrays: dict[str, np.ndarray] = {}
    codes: dict[str, str] = {}
    for name, entry in header.items():
        arrays[name], codes[name] = _array(data, start, name, entry, path)
    return arrays, dict(metadata), codes


def _parse_header(data: bytes, path: Path) -> dict:
    if len(data) < 8:
        raise WeightsFileError(f"{path} is too short to be a safetensors file; download or copy it again")
    size = struct.unpack("<Q", data[:8])[0]
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise WeightsFileError(f"{path} has a damaged or truncated header; download or copy it again")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsFileError(f"{path} is not a safetensors file ({error})") from None
    if not isinstance(header, dict):
        raise WeightsFileError(f"{path} is not a safetensors file (header is not an object)")
    return header


def _array(data: bytes, start: int, name: str, entry: dict, path: Path) -> tuple[np.ndarray, str]:
    try:
        code, shape, (begin, end) = entry["dtype"], [int(s) for s in entry["shape"]], entry["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise WeightsFileError(f"{path}: tensor {name!r} has a malformed header entry") from None
    if code not in DTYPES:
        raise WeightsFileError(
            f"{path}: tensor {name!r} has dtype {code}, which the numpy runtime cannot read"
        )
    dtype = np.dtype(DTYPES[code][0])
    count = int(np.prod(shape)) if shape else 1
    if end - begin != count * dtype.itemsize or start + end > len(data) or begin < 0:
        raise WeightsFileError(f"{path}: tensor {name!r} lies outside the file; it is truncated")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=start + begin).reshape(shape).copy()
    if code == "BF16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array, code


def payload_sha256(arrays: dict[str, np.ndarray], codes: dict[str, str]) -> str:
    """engine.weights' payload hash (names, torch dtype names, shapes, bytes in name order)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        if codes[name] == "BF16":
            array = (array.view(np.uint32) >> 16).astype(np.uint16)
        digest.update(f"{name}|{DTYPES[codes[name]][1]}|{tuple(array.shape)}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
