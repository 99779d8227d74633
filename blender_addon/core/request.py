"""A take in Blender: the engine's AnimateRequest plus where and how it lands in the scene.

The headless command and its batch jobs describe a take with `TakeRequest`; what the engine is
asked (audio, emotion, style, fps, language, files to write) is an `engine.request.AnimateRequest`
and is checked there, so the headless command accepts exactly what the engine's CLI accepts.
Everything else that can be checked without Blender is checked here, before any data is touched,
and every error message names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.arkit.matching import AUTO, OUTPUT_MODES
from engine.request import SCHEMA_VERSION, AnimateRequest, RequestError, upgrade

RENDER_ENGINES = ("WORKBENCH", "EEVEE")  # the first is the default
DEFAULT_RESOLUTION = (640, 480)
BLENDER_FRAME_LIMIT = 1_048_574
_ALIASES = {"object": "object_name", "engine": "render_engine"}  # batch-job keys -> field names

__all__ = ["RENDER_ENGINES", "RequestError", "TakeRequest", "check_weights_path", "parse_resolution"]


@dataclass
class TakeRequest:
    take: AnimateRequest
    object_name: str | None = None  # None: the active object (panel) / the added head (--add-head)
    start_frame: int | None = None  # None: the scene's start frame
    mode: str = AUTO  # AUTO, ARKIT or VERTEX (engine.arkit.matching)
    captions: bool = False  # caption markers and a captioned review scene
    render: str | None = None  # .mp4 path
    resolution: tuple[int, int] = DEFAULT_RESOLUTION
    render_engine: str = RENDER_ENGINES[0]
    save: str | None = None  # .blend path
    weights: str | None = None
    add_head: bool = False

    def validate(self) -> TakeRequest:
        self._check_types()
        self.take.check_files()
        if self.mode.upper() not in OUTPUT_MODES:
            raise RequestError(f"output mode {self.mode!r} must be auto, arkit or vertex")
        self.mode = self.mode.upper()
        if self.start_frame is not None and not (
            -BLENDER_FRAME_LIMIT <= int(self.start_frame) <= BLENDER_FRAME_LIMIT
        ):
            raise RequestError(f"start frame {self.start_frame} is outside Blender's frame range")
        if self.render is not None:
            _check_output(self.render, ".mp4", "--render")
            _check_resolution(self.resolution)
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

    def _check_types(self) -> None:
        """Every field has its type (a batch job's JSON can hold anything), named in the error."""
        for name, kinds, wanted in _FIELD_TYPES:
            value = getattr(self, name)
            if (
                value is None
                and name in _OPTIONAL
                or (isinstance(value, kinds) and not _bool_for_number(value, kinds))
            ):
                continue
            raise RequestError(f"{name} must be {wanted}, got {value!r}")
        if not (isinstance(self.resolution, tuple) and len(self.resolution) == 2):
            raise RequestError(f"resolution must look like 640x480, got {self.resolution!r}")
        self.resolution = parse_resolution(self.resolution)

    @classmethod
    def from_mapping(cls, data: Any, where: str = "job", base_dir: str | Path | None = None) -> TakeRequest:
        """A batch job: the engine request's fields plus the headless options, named like the
        command-line options with '_' for '-'. Relative paths are relative to `base_dir`."""
        if not isinstance(data, dict):
            raise RequestError(f"{where} must be a JSON object, got {type(data).__name__}")
        try:
            data = upgrade(data)
        except RequestError as error:
            raise RequestError(f"{where}: {error}") from None
        own = {f.name for f in fields(cls)} - {"take"}
        engine_keys = {f.name for f in fields(AnimateRequest)}
        values: dict[str, Any] = {}
        take: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
            if name in own:
                values[name] = value
            elif name in engine_keys:
                take[name] = value
            else:
                known = ", ".join(sorted((own | engine_keys) - {"sample_rate"}))
                raise RequestError(f"{where}: unknown key {key!r}; known keys: {known}")
        if "audio" not in take:
            raise RequestError(f"{where}: 'audio' (path of the recording) is required")
        if "resolution" in values:
            values["resolution"] = parse_resolution(values["resolution"])
        if base_dir is not None:
            values = _resolved(values, Path(base_dir))
        try:
            take_request = AnimateRequest.from_mapping(
                {"schema_version": SCHEMA_VERSION, **take}, base_dir=base_dir
            )
            return cls(take_request, **values)
        except (TypeError, RequestError) as error:
            raise RequestError(f"{where}: {error}") from None


_FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("object_name", str, "the name of a mesh object"),
    ("start_frame", int, "a whole frame number"),
    ("mode", str, "auto, arkit or vertex"),
    ("captions", bool, "true or false"),
    ("render", str, "the path of an .mp4 file"),
    ("render_engine", str, "workbench or eevee"),
    ("save", str, "the path of a .blend file"),
    ("weights", str, "the path of a .safetensors checkpoint"),
    ("add_head", bool, "true or false"),
)
_OPTIONAL = {"object_name", "start_frame", "render", "save", "weights"}


def _bool_for_number(value: Any, kinds: type | tuple[type, ...]) -> bool:
    """True for a bool where a number is wanted (bool is an int subclass in Python, not in JSON)."""
    return isinstance(value, bool) and kinds is int


def _resolved(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative output and weights paths of a batch job, relative to the batch file's folder."""
    values = dict(values)
    for name in ("render", "save", "weights"):
        value = values.get(name)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            values[name] = str(base / value)
    return values


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
    if isinstance(width, bool | float) or isinstance(height, bool | float):
        raise RequestError(f"resolution {value!r} must look like 640x480")
    try:
        return int(width), int(height)
    except (TypeError, ValueError):
        raise RequestError(f"resolution {value!r} must look like 640x480") from None


def _check_resolution(resolution: tuple[int, int]) -> None:
    width, height = resolution
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise RequestError(f"resolution {width}x{height} must be between 16 and 8192 pixels per side")
    if width % 2 or height % 2:
        raise RequestError(f"resolution {width}x{height} must be even on both sides for H.264 video")


def _check_output(path: str, suffix: str, option: str) -> None:
    target = Path(path)
    if target.suffix.lower() != suffix:
        raise RequestError(f"{option} {path} must end in {suffix}")
    if not target.parent.is_dir():
        raise RequestError(f"{option}: folder {target.parent} does not exist -- create it first")
    if target.is_dir():
        raise RequestError(f"{option} {path} is an existing folder; give a file name inside it instead")
