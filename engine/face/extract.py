"""Extract the MediaPipe canonical face mesh into ``engine/face/assets/canonical_face.npz``.

The mesh ships inside the npm package ``@mediapipe/face_mesh`` as a protobuf blob packed into an
Emscripten ``.data`` file. We read the byte range from the package's loader script and decode the
protobuf wire format by hand so the project needs no protobuf dependency for a one-off extraction.

Run: ``python -m engine.face.extract [--npm-tgz PATH] [--out engine/face/assets]``
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from engine.face import landmarks as lm
from engine.face.deform import adjacency, grow, smooth_deform, uniform_laplacian
from engine.face.template import N_VERTICES

NPM_PACKAGE = "@mediapipe/face_mesh"
NPM_VERSION = "0.4.1657299874"
DATA_FILE = "package/face_mesh_solution_packed_assets.data"
LOADER_FILE = "package/face_mesh_solution_packed_assets_loader.js"
GEOMETRY_ENTRY = "geometry_pipeline_metadata_landmarks.binarypb"
DEFAULT_OUT = Path(__file__).resolve().parent / "assets"

# Mesh3d (mediapipe/modules/face_geometry/protos/mesh_3d.proto): vertex_buffer = 3, index_buffer = 4.
_MESH_VERTEX_FIELD = 3
_MESH_INDEX_FIELD = 4
_FLOATS_PER_VERTEX = 5  # VERTEX_PT: x, y, z, u, v


LICENSE_TEXT = """\
canonical_face.npz is derived from the MediaPipe canonical face model
(mediapipe/modules/face_geometry/data/geometry_pipeline_metadata_landmarks.binarypb),
extracted from the npm package {package}@{version} by engine/face/extract.py.

Changes: converted from centimetres to metres, rotated from MediaPipe axes (y up, face toward +z)
to Blender axes (z up, face toward -y), the triangles that bridge the inner lips were removed so
that the mouth can open, and the slightly parted lips were smoothly closed (rest pose, lips together).

Copyright 2020 The MediaPipe Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""


class ExtractError(RuntimeError):
    """The package does not contain what we expect; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Protobuf wire format (just what Mesh3d needs: varints, fixed32, length-delimited).


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ExtractError(
                "truncated protobuf varint; the .data file is damaged -- re-download the package"
            )
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


Field = tuple[int, int, "int | bytes"]  # (field number, wire type, varint value or raw bytes)


def parse_fields(buf: bytes) -> list[Field]:
    """Decode one protobuf message into ``(field_number, wire_type, value)`` triples in order."""
    fields: list[Field] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ExtractError(f"unsupported protobuf wire type {wire}; is this really a MediaPipe binarypb?")
        if pos > len(buf):
            raise ExtractError(
                "truncated protobuf message; the .data file is damaged -- re-download the package"
            )
        fields.append((number, wire, value))
    return fields


def _repeated_floats(fields: list[Field], number: int) -> list[float]:
    out: list[float] = []
    for n, wire, value in fields:
        if n != number or not isinstance(value, bytes):
            continue
        if wire == 5:
            out.append(struct.unpack("<f", value)[0])
        elif wire == 2:  # packed
            out.extend(struct.unpack(f"<{len(value) // 4}f", value))
    return out


def _repeated_uints(fields: list[Field], number: int) -> list[int]:
    out: list[int] = []
    for n, wire, value in fields:
        if n != number:
            continue
        if isinstance(value, int):
            out.append(value)
        elif wire == 2:  # packed varints
            pos = 0
            while pos < len(value):
                v, pos = _read_varint(value, pos)
                out.append(v)
    return out


def parse_canonical_mesh(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the Mesh3d inside GeometryPipelineMetadata; return MediaPipe-space (xyz cm, uv, triangles).

    The field number of the mesh differs between MediaPipe releases, so we take the sub-message that
    decodes as a VERTEX_PT mesh with 468 vertices instead of trusting one number.
    """
    for _number, wire, value in parse_fields(blob):
        if wire != 2 or not isinstance(value, bytes):
            continue
        try:
            sub = parse_fields(value)
        except ExtractError:
            continue
        floats = _repeated_floats(sub, _MESH_VERTEX_FIELD)
        indices = _repeated_uints(sub, _MESH_INDEX_FIELD)
        if len(floats) == N_VERTICES * _FLOATS_PER_VERTEX and indices and len(indices) % 3 == 0:
            table = np.asarray(floats, dtype=np.float64).reshape(N_VERTICES, _FLOATS_PER_VERTEX)
            faces = np.asarray(indices, dtype=np.int64).reshape(-1, 3)
            if faces.max() >= N_VERTICES:
                raise ExtractError("triangle index out of range in the canonical mesh")
            return table[:, :3], table[:, 3:], faces
    raise ExtractError(f"no 468-vertex Mesh3d found in {GEOMETRY_ENTRY}; wrong package version?")


# ---------------------------------------------------------------------------------------------
# Geometry conversion.


def to_blender_metres(xyz_cm: np.ndarray) -> np.ndarray:
    """MediaPipe (x = subject's left, y up, face toward +z, cm) -> Blender (z up, face toward -y, m).

    A proper rotation (x, y, z) -> (x, -z, y), so handedness and thus left/right are preserved.
    """
    x, y, z = xyz_cm[:, 0], xyz_cm[:, 1], xyz_cm[:, 2]
    return (np.stack([x, -z, y], axis=1) * 0.01).astype(np.float32)


def mirror_map(vertices: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """Index of each vertex's left/right twin (x -> -x); midline vertices map to themselves."""
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    dist = np.linalg.norm(vertices[None, :, :] - mirrored[:, None, :], axis=2)
    twin = dist.argmin(axis=1)
    worst = dist[np.arange(len(vertices)), twin].max()
    if worst > tolerance or not np.array_equal(twin[twin], np.arange(len(vertices))):
        raise ExtractError(f"mesh is not left/right symmetric (worst {worst:.2e}); wrong package version?")
    return twin


def symmetrize(vertices: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """Make the mesh exactly mirror-symmetric, so Left/Right blendshapes can be exact mirrors."""
    out = 0.5 * (vertices + vertices[twin] * np.array([-1.0, 1.0, 1.0]))
    out[twin == np.arange(len(vertices)), 0] = 0.0
    return out.astype(np.float32)


def drop_inner_lip_bridges(faces: np.ndarray) -> np.ndarray:
    """Remove the triangles that fill the mouth opening (inside the inner-lip contour).

    A triangle fills the opening when it touches both inner-lip rows, or when all its corners lie
    on the inner contour (the two small triangles at the inner mouth corners).
    """
    upper = set(lm.LIP_UPPER_INNER)
    lower = set(lm.LIP_LOWER_INNER)
    contour = upper | lower | {lm.MOUTH_CORNER_RIGHT[-1], lm.MOUTH_CORNER_LEFT[-1]}
    keep = []
    for tri in faces:
        corners = set(int(i) for i in tri)
        fills_mouth = bool(corners & upper and corners & lower) or corners <= contour
        keep.append(not fills_mouth)
    return faces[np.asarray(keep)]


def seal_lips(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Close the canonical mesh's slightly parted lips (about 5 mm) so the rest face has lips together.

    Each facing pair of inner-lip vertices meets at its midpoint; the rest of the lips follows
    smoothly and the skin two rings beyond the lips stays where it is.
    """
    upper = np.asarray(lm.LIP_UPPER_INNER)
    lower = np.asarray(lm.LIP_LOWER_INNER)
    middle = 0.5 * (vertices[upper] + vertices[lower])
    middle[:, 0] = vertices[upper, 0]  # keep the width of the mouth
    handles = np.concatenate([upper, lower])
    offsets = np.concatenate([middle - vertices[upper], middle - vertices[lower]])
    rings = adjacency(faces, len(vertices))
    lips = set(handles.tolist()) | set(lm.LIP_UPPER_OUTER) | set(lm.LIP_LOWER_OUTER)
    free = np.asarray(sorted(grow(rings, lips, 2)))
    lap = uniform_laplacian(faces, len(vertices))
    moved = vertices + smooth_deform(lap.T @ lap, handles, offsets, free)
    return moved.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Package access.


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise ExtractError(f"{name} is missing from the tarball; pass the {NPM_PACKAGE}@{NPM_VERSION} tgz")
    return member.read()


def read_geometry_blob(tgz: Path) -> bytes:
    """The geometry_pipeline_metadata binarypb bytes from the npm tarball."""
    if not tgz.is_file():
        raise ExtractError(f"{tgz} does not exist; download it with `npm pack {NPM_PACKAGE}@{NPM_VERSION}`")
    with tarfile.open(tgz, "r:gz") as tar:
        manifest = json.loads(_member_bytes(tar, "package/package.json"))
        if manifest.get("version") != NPM_VERSION:
            raise ExtractError(
                f"{tgz} is {manifest.get('name')}@{manifest.get('version')}; "
                f"this extractor is pinned to {NPM_PACKAGE}@{NPM_VERSION}"
            )
        loader = _member_bytes(tar, LOADER_FILE).decode("utf-8", "replace")
        match = re.search(
            r'"filename":\s*"[^"]*' + re.escape(GEOMETRY_ENTRY) + r'",\s*"start":\s*(\d+),\s*"end":\s*(\d+)',
            loader,
        )
        if match is None:
            raise ExtractError(f"{LOADER_FILE} does not list {GEOMETRY_ENTRY}; wrong package version?")
        start, end = int(match.group(1)), int(match.group(2))
        data = _member_bytes(tar, DATA_FILE)
    if end > len(data):
        raise ExtractError(f"{DATA_FILE} is shorter than the loader says; re-download the package")
    return data[start:end]


def npm_pack(dest: Path) -> Path:
    """Download the pinned package tarball with `npm pack` into ``dest``."""
    npm = shutil.which("npm")
    if npm is None:
        raise ExtractError(
            "npm is not installed; install Node.js or pass --npm-tgz PATH to a downloaded tarball"
        )
    result = subprocess.run(
        [npm, "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--pack-destination", str(dest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    tgz = sorted(dest.glob("*.tgz"))
    if result.returncode != 0 or not tgz:
        raise ExtractError(f"`npm pack` failed ({result.stderr.strip()[-300:]}); pass --npm-tgz PATH instead")
    return tgz[0]


def extract(tgz: Path) -> dict[str, np.ndarray]:
    """Canonical face in Blender metres: ``vertices [468,3]``, ``faces [F,3]``, ``uvs [468,2]``, ``mirror [468]``."""
    xyz, uv, faces = parse_canonical_mesh(read_geometry_blob(tgz))
    faces = drop_inner_lip_bridges(faces)
    vertices = to_blender_metres(xyz)
    twin = mirror_map(vertices)  # before sealing: sealed lips put two midline vertices on one spot
    return {
        "vertices": symmetrize(seal_lips(vertices, faces), twin),
        "faces": faces.astype(np.int32),
        "uvs": uv.astype(np.float32),
        "mirror": twin.astype(np.int32),
    }


def write_assets(mesh: dict[str, np.ndarray], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "canonical_face.npz"
    np.savez_compressed(path, **mesh)
    (out_dir / "LICENSE-mediapipe.txt").write_text(
        LICENSE_TEXT.format(package=NPM_PACKAGE, version=NPM_VERSION)
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--npm-tgz", type=Path, help=f"{NPM_PACKAGE}@{NPM_VERSION} tarball (default: npm pack)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="asset folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.npm_tgz is not None:
            mesh = extract(args.npm_tgz)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                mesh = extract(npm_pack(Path(tmp)))
        path = write_assets(mesh, args.out)
    except ExtractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {len(mesh['vertices'])} vertices, {len(mesh['faces'])} triangles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
