"""Checks on Blender data that must pass before a take touches anything.

Every failure raises InputError with a message that names the fix; callers report it (self.report
in the UI, stderr and an exit code headless) and the scene stays exactly as it was.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import bpy

from engine.arkit import matching
from engine.request import RequestError, check_audio_path

MIN_AUDIO_SECONDS = 0.2
MAX_AUDIO_SECONDS = 600.0


class InputError(ValueError):
    """Bad user input; the message says what to do."""


@dataclass(frozen=True)
class Target:
    obj: bpy.types.Object
    mode: str  # matching.ARKIT or matching.VERTEX
    arkit_keys: dict[int, str]  # ARKit index -> the mesh's key name (ARKit mode)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: float
    channels: int
    duration: float


def mesh_of(obj: bpy.types.Object) -> bpy.types.Mesh:
    """``obj.data`` of an object already checked to be a mesh, typed as one for the checker."""
    return cast(bpy.types.Mesh, obj.data)


def shape_keys_of(obj: bpy.types.Object) -> bpy.types.Key:
    """The shape-key datablock of a mesh that has one (a take adds the Basis key before asking)."""
    key = mesh_of(obj).shape_keys
    if key is None:
        raise InputError(f"'{obj.name}' has no shape keys; add a Basis key first")
    return key


def template_vertex_count() -> int:
    from engine.face.template import N_VERTICES

    return int(N_VERTICES)


def check_target(obj, requested_mode: str, retargetable=None, arkit_overrides=None) -> Target:
    """Validate the mesh to animate and resolve the output mode.

    `retargetable(obj) -> bool` says whether a retargeting module can map the engine's face onto
    a mesh whose vertex count differs from the template's (vertex mode only); `arkit_overrides`
    is the user's ARKit name -> key name table.
    """
    if obj is None:
        raise InputError("no target object: select a mesh, or pick one as Target in the DualFace panel")
    if obj.type != "MESH":
        raise InputError(f"'{obj.name}' is a {obj.type.lower()}, not a mesh: pick a mesh object to animate")
    mesh = mesh_of(obj)
    if len(mesh.polygons) == 0:
        raise InputError(f"mesh '{obj.name}' has no faces: pick a face mesh, or use Add DualFace Head")
    check_editable_mesh(obj)
    names = [block.name for block in mesh.shape_keys.key_blocks] if mesh.shape_keys else []
    matched = matching.match_arkit_keys(names, arkit_overrides)
    try:
        mode = matching.resolve_output_mode(requested_mode, matched)
    except ValueError as error:
        raise InputError(f"'{obj.name}': {error}") from None
    if mode == matching.VERTEX:
        expected = template_vertex_count()
        if len(mesh.vertices) != expected and not (retargetable and retargetable(obj)):
            raise InputError(
                f"vertex output animates the {expected}-vertex DualFace head, but '{obj.name}' has "
                f"{len(mesh.vertices)} vertices: use Add DualFace Head, give the mesh ARKit shape keys "
                "(jawOpen, ...) for ARKit output, or retarget it first"
            )
    return Target(obj, mode, matched)


def check_editable_mesh(obj) -> None:
    """A mesh whose shape keys a take may write: local data, Object Mode, relative keys."""
    mesh = mesh_of(obj)
    for label, block in (("object", obj), ("mesh", mesh), ("shape keys", mesh.shape_keys)):
        if block is None:
            continue
        if block.library is not None or not getattr(block, "is_editable", True):
            source = block.library.filepath if block.library else "a library override"
            raise InputError(
                f"the {label} of '{obj.name}' is linked from {source} and cannot be edited: "
                "make it local (Object > Relations > Make Local) or animate a local copy"
            )
    if obj.mode == "EDIT":
        raise InputError(
            f"'{obj.name}' is in Edit Mode; shape keys cannot be written there: switch to Object Mode"
        )
    if mesh.shape_keys is not None and not mesh.shape_keys.use_relative:
        raise InputError(
            f"'{obj.name}' uses absolute shape keys; DualFace needs relative keys: "
            "tick 'Relative' in the Shape Keys panel"
        )


def check_audio(path: str | Path) -> AudioInfo:
    """Read the recording's header: rate, channels and length, before a take touches the scene."""
    try:
        path = check_audio_path(bpy.path.abspath(str(path)))
    except RequestError as error:
        raise InputError(str(error)) from None
    rate, channels, duration = _probe_audio(path)
    if duration < MIN_AUDIO_SECONDS:
        raise InputError(
            f"audio {path.name} lasts {duration:.2f} s; DualFace needs at least {MIN_AUDIO_SECONDS} s"
        )
    if duration > MAX_AUDIO_SECONDS:
        raise InputError(
            f"audio {path.name} lasts {duration / 60:.1f} min; split it into clips of at most "
            f"{MAX_AUDIO_SECONDS / 60:.0f} min"
        )
    return AudioInfo(path, rate, channels, duration)


def _probe_audio(path: Path) -> tuple[float, int, float]:
    """(sample rate, channels, seconds) with Blender's audio library when this build has one (some
    Linux distributions build Blender without ``aud``), else from the WAV header with the standard
    library; no soundfile is needed inside Blender."""
    try:
        import aud
    except ImportError:
        if path.suffix.lower() in (".wav", ".wave"):
            return probe_wav(path)
        raise InputError(
            f"this Blender was built without its audio library (aud), so DualFace reads only .wav here: "
            f"convert {path.name} to a 16-bit .wav (e.g. ffmpeg -i {path.name} voice.wav)"
        ) from None
    return _probe_with_aud(aud, path)


def _probe_with_aud(aud, path: Path) -> tuple[float, int, float]:
    try:
        sound = aud.Sound(str(path))
        rate, channels = sound.specs
        length = sound.length
        if length <= 0:  # some compressed formats do not know their length until decoded
            length = sound.data().shape[0]
    except Exception as error:  # noqa: BLE001 - aud raises aud.error for every unreadable file
        raise InputError(f"cannot read audio {path.name}: {error} -- export it as 16-bit wav") from None
    return float(rate), int(channels), float(length) / float(rate)


def probe_wav(path: Path) -> tuple[float, int, float]:
    """(rate, channels, seconds) from a RIFF/WAVE header: any sample format (PCM, float,
    extensible), so it accepts every wav the engine can read. A data chunk longer than the file
    (a cut-short copy) counts only the bytes that are there, as the engine does."""
    size = path.stat().st_size
    fmt: tuple[int, int] | None = None  # (channels, rate)
    block_align = 0
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            raise InputError(f"cannot read audio {path.name}: not a WAV file -- export it as 16-bit wav")
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"fmt " and chunk_size >= 16:
                _, channels, rate, _, block_align = struct.unpack("<HHIIH", handle.read(14))
                fmt = (channels, rate)
            elif chunk_id == b"data" and fmt is not None and fmt[0] > 0 and fmt[1] > 0 and block_align > 0:
                present = min(chunk_size, size - position - 8)
                return float(fmt[1]), fmt[0], present // block_align / fmt[1]
            position += 8 + chunk_size + (chunk_size & 1)
    raise InputError(f"cannot read audio {path.name}: its WAV header is damaged -- export it as 16-bit wav")


def check_frames(scene: bpy.types.Scene, start_frame: int, duration: float) -> None:
    fps = scene.render.fps / scene.render.fps_base
    end = start_frame + int(duration * fps) + 1
    if start_frame < -1_048_574 or end > 1_048_574:
        raise InputError(
            f"a take from frame {start_frame} lasting {duration:.1f} s leaves Blender's frame range"
        )
