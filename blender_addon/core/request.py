"""One take request, as the panel, the headless command and batch jobs all describe it.

Everything that can be checked without Blender is checked here, before any data is touched, and
every error message names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from engine.data.style import STYLE_FIELDS, SpeakerStyle
from engine.emotions import EMOTIONS

from .arkit_match import ARKIT, AUTO, VERTEX

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aif", ".aiff")
RENDER_ENGINES = ("WORKBENCH", "EEVEE")


class RequestError(ValueError):
    """The request cannot run; the message says what to change."""


@dataclass
class TakeRequest:
    audio: str
    object_name: str | None = None  # None: the active object (panel) / the added head (--add-head)
    emotion: str = "neutral"
    intensity: float = 1.0
    style: dict[str, float] = field(default_factory=dict)
    start_frame: int | None = None  # None: the scene's start frame
    mode: str = AUTO
    captions: bool = False
    render: str | None = None  # .mp4 path
    resolution: tuple[int, int] = (640, 480)
    render_engine: str = "WORKBENCH"
    save: str | None = None  # .blend path
    weights: str | None = None
    add_head: bool = False

    def validate(self) -> TakeRequest:
        check_audio_path(self.audio)
        if self.emotion.strip().lower() not in EMOTIONS:
            raise RequestError(f"unknown emotion {self.emotion!r}; choose one of: {', '.join(EMOTIONS)}")
        self.emotion = self.emotion.strip().lower()
        if not (isinstance(self.intensity, (int, float)) and 0.0 <= self.intensity <= 1.0):
            raise RequestError(f"intensity must be a number between 0 and 1, got {self.intensity!r}")
        unknown = sorted(set(self.style) - set(STYLE_FIELDS))
        if unknown:
            raise RequestError(
                f"unknown style setting(s) {', '.join(unknown)}; use {', '.join(STYLE_FIELDS)}"
            )
        try:
            SpeakerStyle(**{name: float(value) for name, value in self.style.items()})
        except (TypeError, ValueError) as error:
            raise RequestError(f"style: {error}") from None
        if self.mode.upper() not in (AUTO, ARKIT, VERTEX):
            raise RequestError(f"output mode {self.mode!r} must be auto, arkit or vertex")
        self.mode = self.mode.upper()
        if self.start_frame is not None and not (-1_048_574 <= int(self.start_frame) <= 1_048_574):
            raise RequestError(f"start frame {self.start_frame} is outside Blender's frame range")
        if self.render is not None:
            _check_output(self.render, ".mp4", "--render")
            width, height = self.resolution
            if not (16 <= width <= 8192 and 16 <= height <= 8192):
                raise RequestError(f"resolution {width}x{height} must be between 16 and 8192 pixels per side")
            if width % 2 or height % 2:
                raise RequestError(f"resolution {width}x{height} must be even on both sides for H.264 video")
        if self.render_engine.upper() not in RENDER_ENGINES:
            raise RequestError(
                f"render engine {self.render_engine!r} must be one of {', '.join(RENDER_ENGINES)}"
            )
        self.render_engine = self.render_engine.upper()
        if self.save is not None:
            _check_output(self.save, ".blend", "--save")
        if self.weights is not None:
            check_weights_path(self.weights)
        if self.object_name is None and not self.add_head:
            raise RequestError(
                "say which mesh to animate: --object NAME, or --add-head for the DualFace head"
            )
        return self

    @classmethod
    def from_dict(cls, data: dict, where: str = "job") -> TakeRequest:
        """A batch job entry; keys are the command-line option names with '_' for '-'."""
        if not isinstance(data, dict):
            raise RequestError(f"{where} must be a JSON object, got {type(data).__name__}")
        aliases = {"object": "object_name", "engine": "render_engine"}
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in data.items():
            name = aliases.get(key.replace("-", "_"), key.replace("-", "_"))
            if name not in known:
                raise RequestError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
            values[name] = value
        if "audio" not in values:
            raise RequestError(f"{where}: 'audio' (path of the recording) is required")
        if "resolution" in values:
            values["resolution"] = parse_resolution(values["resolution"])
        try:
            return cls(**values)
        except TypeError as error:
            raise RequestError(f"{where}: {error}") from None


def check_audio_path(path: str | Path) -> Path:
    if not str(path).strip():
        raise RequestError("no audio file given; choose a wav, flac, ogg or mp3 recording")
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise RequestError(
            f"unsupported audio type {path.suffix or '(no extension)'!r} for {path.name}; "
            f"use one of {', '.join(AUDIO_SUFFIXES)}"
        )
    if not path.is_file():
        raise RequestError(f"audio file not found: {path} -- check the path")
    if path.stat().st_size == 0:
        raise RequestError(f"audio file {path} is empty (0 bytes) -- re-export the recording")
    return path


def check_weights_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RequestError(
            f"weights file not found: {path} -- pass the path of a .safetensors checkpoint "
            "(weights/dualface.safetensors), or leave it out to use the bundled weights"
        )
    return path


def parse_resolution(value) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        width, height = value
    elif isinstance(value, str) and "x" in value.lower():
        width, height = value.lower().split("x", 1)
    else:
        raise RequestError(f"resolution {value!r} must look like 640x480")
    try:
        return int(width), int(height)
    except ValueError:
        raise RequestError(f"resolution {value!r} must look like 640x480") from None


def _check_output(path: str, suffix: str, option: str) -> None:
    target = Path(path)
    if target.suffix.lower() != suffix:
        raise RequestError(f"{option} {path} must end in {suffix}")
    if not target.parent.is_dir():
        raise RequestError(f"{option}: folder {target.parent} does not exist -- create it first")
