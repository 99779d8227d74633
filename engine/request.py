"""What a take is asked for: one `AnimateRequest`, the same for every caller.

The Python API, the command line, the stdio worker, the Blender panel and the headless Blender
command all describe a take with this dataclass and validate it here, so an option means the same
thing and fails with the same message everywhere. The module is torch-free (the add-on imports it);
numpy-backed checks import their modules only when a request is built.

JSON form (CLI batch files, worker requests, headless batch jobs): `to_mapping()` / `from_mapping()`,
with a `schema_version`. `python -m engine.request --schema` prints the JSON Schema committed as
docs/request.schema.json. Versions are read this way:

- no `schema_version`: version 1, the form every client used before this contract. Its fields keep
  their meaning; `captions` given as a path or a list of paths, and the CLI's `srt`, `vtt` and
  `captions_json` keys, become `caption_files`.
- `schema_version` == SCHEMA_VERSION: read as is.
- a newer version than this engine knows: refused with `UnsupportedVersion` (worker code
  `unsupported_version`) naming both versions, never half-understood.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.emotions import EMOTIONS

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 2
SUPPORTED_FPS: tuple[int, ...] = (24, 25, 30, 50, 60)
DEFAULT_FPS = 30
AUTO_LANGUAGE = "auto"  # the language is detected from the script (English without one)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aif", ".aiff")
CAPTION_SUFFIXES = (".srt", ".vtt", ".json")
TAKE_SUFFIX = ".npz"
CHECKPOINT_FORMAT = "dualface-checkpoint-1"  # the format tag in every checkpoint's metadata
WEIGHTS_ENV = "DUALFACE_WEIGHTS"  # overrides the default weights path
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "dualface.safetensors"

Keyframe = tuple[float, str, float]  # (time in seconds, emotion name, intensity 0..1)


class RequestError(ValueError):
    """The request cannot run as given; the message names the field and the fix."""


class UnsupportedVersion(RequestError):
    """The request was written for a newer schema than this engine reads."""


class AudioFileError(RequestError):
    """The request's audio file is missing, empty or of a type DualFace does not read."""


def default_weights_path() -> Path:
    """The checkpoint used when none is given: $DUALFACE_WEIGHTS, else the repository's weights/."""
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override).expanduser() if override else DEFAULT_WEIGHTS


def _doc(text: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Field metadata: its description and JSON Schema (None: not part of the JSON form)."""
    return {"doc": text, "schema": schema}


@dataclass(frozen=True)
class AnimateRequest:
    """One take: the audio, how it is animated, and what is written. Validated on construction."""

    audio: Any = field(metadata=_doc("path of the recording (wav, flac, ogg, mp3, ...)", {"type": "string"}))
    sample_rate: int | None = field(
        default=None, metadata=_doc("sample rate of an in-memory audio array (Python API only)")
    )
    fps: float | None = field(
        default=None,
        metadata=_doc(
            f"frame rate of the take; null: {DEFAULT_FPS} (in Blender: the scene's nearest supported rate)",
            {"enum": [*SUPPORTED_FPS, None]},
        ),
    )
    emotion: str | tuple[Keyframe, ...] = field(
        default="neutral",
        metadata=_doc(
            "an emotion name, a schedule 'time:emotion[:intensity],...', or keyframes "
            "[[time_s, emotion, intensity], ...] cross-faded per frame",
            {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "array",
                            "prefixItems": [
                                {"type": "number", "minimum": 0},
                                {"enum": list(EMOTIONS)},
                                {"type": "number", "minimum": 0, "maximum": 1},
                            ],
                            "minItems": 3,
                            "maxItems": 3,
                        },
                    },
                ]
            },
        ),
    )
    intensity: float = field(
        default=1.0,
        metadata=_doc("scales every emotion keyframe", {"type": "number", "minimum": 0, "maximum": 1}),
    )
    style: dict[str, float] = field(
        default_factory=dict,
        metadata=_doc(
            "speaker style: fields of engine.data.style.SpeakerStyle (unset fields keep their default)",
            {"type": "object", "additionalProperties": {"type": "number"}},
        ),
    )
    captions: bool = field(
        default=True, metadata=_doc("build captions (lip-read text with a sync score)", {"type": "boolean"})
    )
    text: str | None = field(
        default=None,
        metadata=_doc(
            "what the recording says (script mode: the words are aligned to the audio and drive the "
            "mouth); null: the .txt file beside the audio (line.txt for line.wav) if there is one; "
            "'': audio only",
            {"type": ["string", "null"]},
        ),
    )
    language: str = field(
        default="auto",
        metadata=_doc(
            "language of the speech: en, es, de, fr, it, or auto (from the script when unambiguous, else en)",
            {"type": "string"},
        ),
    )
    output: str | None = field(
        default=None,
        metadata=_doc(
            "the .npz take to write; null: the caller keeps the take in memory",
            {"type": ["string", "null"], "pattern": r"\.npz$"},
        ),
    )
    caption_files: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "caption files to write, format by extension: .srt, .vtt or .json",
            {"type": "array", "items": {"type": "string", "pattern": r"\.(srt|vtt|json)$"}},
        ),
    )
    layers: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "optional layers on top of the lips: blinks, gaze (eye motion), head (nods, turns, brow "
            "raises); [] (the default): the model's motion alone (engine.layers)",
            {"type": "array", "items": {"enum": ["blinks", "gaze", "head"]}, "uniqueItems": True},
        ),
    )

    def __post_init__(self) -> None:
        for name, value in _normalised(self).items():
            object.__setattr__(self, name, value)

    # ---- plain data ------------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        defaults: Mapping[str, Any] | None = None,
        base_dir: str | Path | None = None,
    ) -> AnimateRequest:
        """A request from JSON-shaped data (a job, a worker request); `defaults` fill absent keys and
        relative paths are taken relative to `base_dir` (the folder of a batch file)."""
        if not isinstance(data, Mapping):
            raise RequestError(f"a request must be a JSON object, got {type(data).__name__}")
        values = upgrade({**(defaults or {}), **data})
        if values.get("audio") is None:
            raise RequestError("'audio' (the path of the recording) is required")
        if not isinstance(values["audio"], str | os.PathLike) and not hasattr(values["audio"], "__array__"):
            raise RequestError(
                f"'audio' must be the path of the recording (a string), got {values['audio']!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RequestError(
                f"unknown request field(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        if base_dir is not None:
            values = resolve_paths(values, Path(base_dir))
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The JSON form, with `schema_version`; `from_mapping(to_mapping())` gives back the request."""
        if not isinstance(self.audio, str):
            raise RequestError("an in-memory audio array has no JSON form; save it to a file first")
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            if f.metadata["schema"] is None:
                continue
            value = getattr(self, f.name)
            if f.name == "emotion" and not isinstance(value, str):
                value = [list(key) for key in value]
            elif f.name in ("caption_files", "layers"):
                value = list(value)
            elif f.name == "style":
                value = dict(value)
            data[f.name] = value
        return data

    # ---- derived values ---------------------------------------------------------------------------

    @property
    def frame_rate(self) -> float:
        """The take's frame rate (the default when the request leaves it open)."""
        return float(DEFAULT_FPS if self.fps is None else self.fps)

    def schedule(self) -> list[Keyframe]:
        """Emotion keyframes with the intensity applied (engine.inference.schedule.parse_schedule)."""
        from engine.inference.schedule import parse_schedule

        return parse_schedule(self.emotion, self.intensity)

    def style_vector(self) -> np.ndarray:
        """The model's style conditioning for this request."""
        from engine.data.style import SpeakerStyle

        return SpeakerStyle(**self.style).as_vector()

    @property
    def source(self) -> str:
        """What the take was made from, for its metadata."""
        return self.audio if isinstance(self.audio, str) else "array"

    # ---- file checks (before any work) ------------------------------------------------------------

    def check_audio_file(self) -> Path | None:
        """The audio path, checked to exist, be non-empty and of a readable type (None for arrays)."""
        if not isinstance(self.audio, str):
            return None
        return check_audio_path(self.audio)

    def check_output_paths(self) -> None:
        """Every file the request writes can be written: right extension, existing folder, not a folder."""
        targets = ([self.output] if self.output else []) + list(self.caption_files)
        for path in targets:
            target = Path(path)
            if not target.parent.is_dir():
                raise RequestError(
                    f"folder {target.parent} for {target.name} does not exist; create it first"
                )
            if target.is_dir():
                raise RequestError(f"{target} is a folder; give a file name")
        if len(set(map(os.path.abspath, targets))) != len(targets):
            raise RequestError(f"the request writes the same file twice: {', '.join(targets)}")

    def check_files(self) -> None:
        self.check_audio_file()
        self.check_output_paths()


def as_request(
    request: AnimateRequest | Mapping[str, Any] | str | Path | Any, **options: Any
) -> AnimateRequest:
    """An AnimateRequest from what the Python API accepts: a request (options replace its fields),
    a mapping of fields, or the audio itself (a path or an array) with the fields as keywords."""
    if isinstance(request, AnimateRequest):
        return dataclasses.replace(request, **options) if options else request
    if isinstance(request, Mapping):
        return AnimateRequest.from_mapping({**request, **options})
    try:
        return AnimateRequest(audio=request, **options)
    except TypeError as error:
        raise RequestError(f"{error}; the fields are those of engine.request.AnimateRequest") from None


def write_outputs(animation: Any, request: AnimateRequest) -> list[Path]:
    """Write the take (.npz) and caption files `request` asks for: all of them, or none on failure."""
    from contextlib import ExitStack

    from engine.atomic_file import atomic_output
    from engine.captions import write_captions

    with ExitStack() as stack:
        for path in request.caption_files:
            write_captions(animation, stack.enter_context(atomic_output(path, "caption file")))
        if request.output:
            animation.save(stack.enter_context(atomic_output(request.output, "take file")))
    return [Path(p) for p in ([request.output] if request.output else []) + list(request.caption_files)]


# ---- command-line options ------------------------------------------------------------------------

CAPTION_FLAGS = {"srt": ".srt", "vtt": ".vtt", "captions_json": ".json"}  # --srt, --vtt, --captions-json


def add_request_options(
    parser: argparse.ArgumentParser, fps_default: str, layers_default: str | None = None
) -> None:
    """The options that set a request's fields, for `python -m engine animate` and the headless
    Blender command alike: both accept the same options with the same meaning."""
    parser.add_argument(
        "--emotion", help="emotion name, a schedule 'time:emotion[:intensity],...', or a .json schedule"
    )
    parser.add_argument("--intensity", type=float, help="emotion intensity 0..1 (default 1)")
    parser.add_argument(
        "--style", help="speaker style as name=number pairs or JSON, e.g. 'articulation=1.2,jaw_ratio=0.6'"
    )
    parser.add_argument(
        "--fps", type=float, help=f"frame rate: {', '.join(map(str, SUPPORTED_FPS))} (default {fps_default})"
    )
    parser.add_argument("--language", help="en, es, de, fr, it or auto (default: from the script, else en)")
    script = parser.add_mutually_exclusive_group()
    script.add_argument("--text", help="what the recording says: the script drives the mouth and captions")
    script.add_argument("--text-file", type=Path, help="read the script from this file (UTF-8 text)")
    parser.add_argument(
        "--no-text",
        action="store_true",
        help="audio only: ignore --text, --text-file and a line.txt beside it",
    )
    parser.add_argument(
        "--layers",
        default=layers_default,
        help="layers on top of the lips: blinks,gaze,head, or none for the lips alone "
        f"(default: {layers_default or 'none'})",
    )
    parser.add_argument("--srt", type=Path, help="write captions as SubRip to this path")
    parser.add_argument("--vtt", type=Path, help="write captions as WebVTT to this path")
    parser.add_argument("--captions-json", type=Path, help="write captions and phonemes as JSON to this path")


def request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields the options of `add_request_options` set (only those given)."""
    fields: dict[str, Any] = {}
    for name in ("intensity", "language", "fps", "layers"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if args.emotion is not None:
        fields["emotion"] = emotion_from_text(args.emotion)
    if args.style:
        fields["style"] = style_from_text(args.style)
    if args.no_text:
        fields["text"] = ""  # audio only, even with a script given or a line.txt beside the audio
    elif args.text is not None:
        fields["text"] = args.text
    elif args.text_file is not None:
        from engine.script.take import read_script_file

        try:
            fields["text"] = read_script_file(args.text_file)
        except ValueError as error:
            raise RequestError(str(error)) from None
    return fields


def caption_flag_files(args: argparse.Namespace) -> list[str]:
    """--srt, --vtt and --captions-json as caption files, each checked against the format its flag names."""
    files = []
    for key, suffix in CAPTION_FLAGS.items():
        path = getattr(args, key)
        if path is not None:
            if Path(path).suffix.lower() != suffix:
                raise RequestError(f"--{key.replace('_', '-')} {path} must end in {suffix}")
            files.append(str(path))
    return files


# ---- versions -------------------------------------------------------------------------------------


def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` in the current schema, without its `schema_version` (see the module docstring)."""
    values = dict(data)
    version = values.pop("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RequestError(f"schema_version must be a whole number >= 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise UnsupportedVersion(
            f"the request is written for schema version {version}; this engine reads versions 1 to "
            f"{SCHEMA_VERSION}: update DualFace, or write version {SCHEMA_VERSION}"
        )
    if version == 1:
        given = values.pop("caption_files", None) or []
        if not isinstance(given, str | list | tuple):
            raise RequestError(f"caption_files must be a list of paths, got {given!r}")
        files = [given] if isinstance(given, str) else list(given)
        captions = values.get("captions")
        if isinstance(captions, str | list | tuple):
            files += [captions] if isinstance(captions, str) else list(captions)
            values["captions"] = True
        for key in ("srt", "vtt", "captions_json"):
            if values.get(key) is not None:
                files.append(values[key])
            values.pop(key, None)
        if files:
            values["caption_files"] = files
    return values


def resolve_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative audio, output and caption paths of request fields, taken relative to `base`."""

    def resolve(path: Any) -> Any:
        if isinstance(path, str) and path and not Path(path).expanduser().is_absolute():
            return str(base / path)
        return path

    values = dict(values)
    for key in ("audio", "output"):
        if key in values:
            values[key] = resolve(values[key])
    if values.get("caption_files"):
        values["caption_files"] = [resolve(p) for p in values["caption_files"]]
    return values


# ---- field checks -----------------------------------------------------------------------------------


def _normalised(request: AnimateRequest) -> dict[str, Any]:
    """Every field checked and in its one spelling; raises RequestError naming the field."""
    audio = request.audio
    if isinstance(audio, Path):
        audio = str(audio)
    if isinstance(audio, str) and not audio.strip():
        raise AudioFileError("no audio file given; choose a wav, flac, ogg or mp3 recording")
    if audio is None:
        raise RequestError("'audio' (the path of the recording, or an array) is required")
    emotion = parse_emotion(request.emotion)
    intensity = _number(request.intensity, "intensity")
    try:
        from engine.inference.schedule import parse_schedule

        parse_schedule(emotion, intensity)
    except ValueError as error:
        raise RequestError(str(error)) from None
    return {
        "audio": audio,
        "sample_rate": None
        if request.sample_rate is None
        else int(_number(request.sample_rate, "sample_rate")),
        "fps": None if request.fps is None else check_fps(request.fps),
        "emotion": emotion,
        "intensity": intensity,
        "style": style_fields(request.style),
        "captions": _flag(request.captions, "captions"),
        "text": _text(request.text),
        "language": check_language(request.language),
        "output": _path(request.output, (TAKE_SUFFIX,), "output"),
        "caption_files": _caption_files(request.caption_files),
        "layers": _layers(request.layers),
    }


def check_fps(fps: Any) -> float:
    """A supported frame rate as a float, or RequestError listing the supported ones."""
    value = _number(fps, "fps")
    if value not in SUPPORTED_FPS:
        raise RequestError(f"fps {fps} is not supported; use one of {', '.join(map(str, SUPPORTED_FPS))}")
    return value


def check_language(language: Any) -> str:
    from engine.data.sentences import LANGUAGES

    code = str(language).strip().lower() if isinstance(language, str) else ""
    if code not in (*LANGUAGES, AUTO_LANGUAGE):
        raise RequestError(
            f"language {language!r} is not supported; use one of {', '.join(LANGUAGES)} or {AUTO_LANGUAGE}"
        )
    return code


def parse_emotion(emotion: Any) -> str | tuple[Keyframe, ...]:
    """An emotion name, 'time:emotion[:intensity],...', or keyframes -> a name or a keyframe tuple.

    Names are checked by `parse_schedule` (with the intensity); this only fixes the spelling."""
    if isinstance(emotion, str):
        text = emotion.strip()
        if ":" not in text:
            return text.lower()
        return tuple(_keyframe_from_text(part) for part in text.split(","))
    if isinstance(emotion, Mapping) or not isinstance(emotion, Sequence):
        raise RequestError(
            f"emotion must be a name or a list of [time_s, emotion, intensity], got {emotion!r}"
        )
    keys = []
    for key in emotion:
        if isinstance(key, Mapping):
            key = (key.get("time"), key.get("emotion"), key.get("intensity", 1.0))
        if not isinstance(key, Sequence) or isinstance(key, str) or len(key) != 3:
            raise RequestError(f"schedule entry {key!r} must be (time_s, emotion, intensity)")
        time_s, name, strength = key
        keys.append(
            (_number(time_s, "schedule time"), str(name).strip().lower(), _number(strength, "intensity"))
        )
    return tuple(keys)


def _keyframe_from_text(part: str) -> Keyframe:
    pieces = part.strip().split(":")
    if len(pieces) not in (2, 3):
        raise RequestError(f"schedule entry {part!r}: write time:emotion or time:emotion:intensity")
    try:
        return (float(pieces[0]), pieces[1].strip().lower(), float(pieces[2]) if len(pieces) == 3 else 1.0)
    except ValueError:
        raise RequestError(f"schedule entry {part!r}: time and intensity must be numbers") from None


def emotion_from_text(text: str) -> str | tuple[Keyframe, ...]:
    """A command-line emotion: a name, an inline schedule, or a .json file of keyframes."""
    text = text.strip()
    if not text.lower().endswith(".json"):
        return parse_emotion(text)
    path = Path(text)
    if not path.is_file():
        raise RequestError(f"emotion schedule file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"emotion schedule {path} is not valid JSON: {error}") from None
    try:
        return parse_emotion(data)
    except RequestError as error:
        raise RequestError(
            f"emotion schedule {path}: {error} (write a list of [time_s, emotion, intensity])"
        ) from None


def style_fields(style: Any) -> dict[str, float]:
    """A SpeakerStyle, its 5-vector, or a mapping of some of its fields -> a checked mapping."""
    from engine.data.style import STYLE_FIELDS, SpeakerStyle

    if style is None:
        return {}
    if isinstance(style, SpeakerStyle):
        return style.to_dict()
    if not isinstance(style, Mapping):
        try:
            return SpeakerStyle.from_vector(style).to_dict()
        except (TypeError, ValueError) as error:
            raise RequestError(f"style: {error}") from None
    unknown = sorted(set(style) - set(STYLE_FIELDS))
    if unknown:
        raise RequestError(f"unknown style setting(s) {', '.join(unknown)}; use {', '.join(STYLE_FIELDS)}")
    values = {name: _number(style[name], f"style {name}") for name in STYLE_FIELDS if name in style}
    try:
        SpeakerStyle(**values)
    except ValueError as error:
        raise RequestError(f"style: {error}") from None
    return values


def style_from_text(text: str) -> dict[str, float]:
    """A command-line style: a JSON object, or 'name=number,name=number'."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RequestError(f"--style must be JSON (an object of SpeakerStyle fields): {error}") from None
        return style_fields(data)
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise RequestError(
                f"--style entry {part!r} must look like name=number (or be a JSON object)"
            ) from None
    return style_fields(values)


def check_audio_path(path: str | Path) -> Path:
    """An audio file that exists, is not empty and has a type DualFace reads."""
    if not str(path).strip():
        raise AudioFileError("no audio file given; choose a wav, flac, ogg or mp3 recording")
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise AudioFileError(
            f"unsupported audio type {path.suffix or '(no extension)'!r} for {path.name}; "
            f"use one of {', '.join(AUDIO_SUFFIXES)}"
        )
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path} -- check the path")
    if path.stat().st_size == 0:
        raise AudioFileError(f"audio file {path} is empty (0 bytes) -- re-export the recording")
    return path


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise RequestError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise RequestError(f"{name} must be a finite number, got {value!r}")
    return number


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false, got {value!r}")
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"text must be a string, got {type(value).__name__}")
    return value


def _path(value: Any, suffixes: tuple[str, ...], name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or Path(value).suffix.lower() not in suffixes:
        endings = suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
        raise RequestError(f"{name} {value} must end in {endings}")
    return value


def _layers(value: Any) -> tuple[str, ...]:
    from engine.layers import parse_layers

    if not isinstance(value, str | Sequence | frozenset | set):
        raise RequestError(f"layers must be a list of blinks, gaze, head, got {value!r}")
    try:
        return tuple(sorted(parse_layers(value if isinstance(value, str) else list(value))))
    except ValueError as error:
        raise RequestError(str(error)) from None


def _caption_files(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | Path):
        value = [value]
    if not isinstance(value, Sequence):
        raise RequestError(f"caption_files must be a list of paths, got {value!r}")
    return tuple(str(_path(p, CAPTION_SUFFIXES, "caption file")) for p in value)


# ---- JSON Schema ------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a request's JSON form, generated from AnimateRequest's fields."""
    from engine.data.sentences import LANGUAGES
    from engine.data.style import STYLE_FIELDS

    properties: dict[str, Any] = {
        "schema_version": {
            "description": (
                f"version of this schema ({SCHEMA_VERSION}). Absent: version 1, where caption paths in "
                "'captions' and the keys srt, vtt, captions_json mean caption_files. Newer than the "
                "engine reads: refused (worker error code unsupported_version)"
            ),
            "type": "integer",
            "minimum": 1,
            "maximum": SCHEMA_VERSION,
        }
    }
    for f in fields(AnimateRequest):
        schema = f.metadata["schema"]
        if schema is None:
            continue
        entry = {"description": f.metadata["doc"], **schema}
        if f.name == "language":
            entry["enum"] = [*LANGUAGES, AUTO_LANGUAGE]
        if f.name == "style":
            entry = {**entry, "properties": {name: {"type": "number"} for name in STYLE_FIELDS}}
            entry["additionalProperties"] = False
        if f.name == "emotion":
            entry["default"] = f.default
        elif f.default is not dataclasses.MISSING:
            entry["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        properties[f.name] = entry
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "DualFace animate request",
        "description": "One take. Generated by `python -m engine.request --schema` from engine/request.py.",
        "type": "object",
        "required": ["audio"],
        "additionalProperties": False,
        "properties": properties,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.request", description=__doc__.splitlines()[0])
    parser.add_argument("--schema", action="store_true", help="print the request's JSON Schema")
    parser.add_argument("--check", metavar="JSON", help="validate a request file and print it normalised")
    args = parser.parse_args(argv)
    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.check:
        try:
            request = AnimateRequest.from_mapping(json.loads(Path(args.check).read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(json.dumps(request.to_mapping(), indent=2))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
