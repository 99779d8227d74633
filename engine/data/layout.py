"""Writing a dataset in the VOCASET-style layout, so our corpus and the real sets share one reader.

::

    root/
      wav/{id}.wav               mono, 16-bit PCM
      vertices_npy/{id}.npy      [T, V*3] float32 absolute positions (VOCASET/FaceFormer convention)
      arkit_npy/{id}.npy         [T, 52] float32 ARKit weights (synthetic data only)
      meta/{id}.json             text, phones with times, words, language, voice, emotion, style, ...
      log_mel_npy/{id}.npy       [Tm, 80] float32 log-mels, only in a corpus unpacked without its audio
                                 (engine.data.pack: training moved to another machine)
      templates.pkl              {subject: [V, 3] float32}
      splits.json                {"train": [...], "val": [...], "test_sentences": [...], "test_voices": [...]}
      dataset.json               {"kind", "fps", "n_vertices", "n_clips", ...}

The writer builds everything in ``root.partial`` and renames it to ``root`` only in ``finish``: a crash
or an exception inside ``with DatasetWriter(...)`` leaves no half-written dataset behind.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.arkit import ARKIT_NAMES
from engine.data.splits import SPLIT_NAMES, check_splits
from engine.phonemes import PHONES

LAYOUT_VERSION = 1
WAV_DIR, VERTICES_DIR, ARKIT_DIR, META_DIR = "wav", "vertices_npy", "arkit_npy", "meta"
MEL_DIR = "log_mel_npy"  # features that stand in for the audio in an unpacked corpus (engine.data.pack)
TEMPLATES_FILE, SPLITS_FILE, DATASET_FILE = "templates.pkl", "splits.json", "dataset.json"
VIEWS_FILE = "views.json"  # optional named clip lists that may overlap (e.g. unseen-engine folds)
PARTIAL_SUFFIX = ".partial"
CLIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FRAME_TOLERANCE = 2  # vertices may differ from the audio's length by this many frames (rounding)
_PHONE_SET = frozenset(PHONES)


def partial_path(root: Path) -> Path:
    return root.with_name(root.name + PARTIAL_SUFFIX)


def _jsonable(value: Any) -> Any:
    """Meta values as plain JSON: dataclasses (Phone, Voice, SpeakerStyle) to dicts, arrays to lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"meta holds a non-finite number {value!r}")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"meta value {value!r} of type {type(value).__name__} cannot be stored as JSON")


def _phones_json(phones: Iterable[Any], clip_id: str) -> list[dict[str, Any]]:
    out = []
    for item in phones:
        if isinstance(item, Mapping):
            phone, start, end = item["phone"], item["start"], item["end"]
        elif isinstance(item, tuple | list):
            phone, start, end = item
        else:
            phone, start, end = item.phone, item.start, item.end
        if phone not in _PHONE_SET:
            raise ValueError(f"clip {clip_id}: phone {phone!r} is not in engine.phonemes.PHONES")
        out.append({"phone": str(phone), "start": float(start), "end": float(end)})
    return out


class DatasetWriter:
    """Accumulates clips into ``root.partial`` and publishes the dataset atomically in ``finish``."""

    def __init__(
        self, root: str | Path, fps: float, n_vertices: int, kind: str = "synthetic", overwrite: bool = False
    ) -> None:
        self.root = Path(root)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if int(n_vertices) <= 0:
            raise ValueError(f"n_vertices must be positive, got {n_vertices!r}")
        if self.root.exists() and not overwrite:
            raise FileExistsError(f"{self.root} already exists; choose another --out or pass overwrite=True")
        self.fps = float(fps)
        self.n_vertices = int(n_vertices)
        self.kind = kind
        self.overwrite = overwrite
        self.partial = partial_path(self.root)
        if self.partial.exists():  # left by a killed run: ours to discard
            shutil.rmtree(self.partial)
        for sub in (WAV_DIR, VERTICES_DIR, ARKIT_DIR, META_DIR):
            (self.partial / sub).mkdir(parents=True)
        self.templates: dict[str, np.ndarray] = {}
        self.clip_ids: list[str] = []
        self._ids: set[str] = set()
        self.total_seconds = 0.0
        self._closed = False

    # -- context manager: an exception discards everything ------------------------------------
    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._closed:
            self.abort()

    def abort(self) -> None:
        """Discard the partial dataset (nothing is left on disk)."""
        if self.partial.exists():
            shutil.rmtree(self.partial, ignore_errors=True)
        self._closed = True

    # -- clips ----------------------------------------------------------------------------------
    def add(
        self,
        clip_id: str,
        subject: str,
        audio: np.ndarray,
        sample_rate: int,
        vertices: np.ndarray,
        template: np.ndarray,
        arkit: np.ndarray | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Validate one clip completely, then write its files (a rejected clip writes nothing)."""
        if self._closed:
            raise RuntimeError("this DatasetWriter is finished or aborted; create a new one")
        if not isinstance(clip_id, str) or not CLIP_ID_PATTERN.match(clip_id):
            raise ValueError(f"clip id {clip_id!r} must be letters, digits, '_', '-', '.' (a safe file name)")
        if clip_id in self._ids:
            raise ValueError(f"clip id {clip_id!r} was already added; ids must be unique")
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"clip {clip_id}: subject must be a non-empty string, got {subject!r}")

        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"clip {clip_id}: audio must be mono 1-D samples, got shape {audio.shape}")
        audio = audio.astype(np.float32)
        if not np.isfinite(audio).all():
            raise ValueError(f"clip {clip_id}: audio holds NaN/inf")
        peak = float(np.abs(audio).max())
        if peak > 1.0 + 1e-4:
            raise ValueError(f"clip {clip_id}: audio peak {peak:.3f} exceeds 1.0; normalise it before adding")
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"clip {clip_id}: sample_rate must be a positive integer, got {sample_rate!r}")

        vertices = np.asarray(vertices, dtype=np.float32)
        v = self.n_vertices
        if vertices.ndim == 2 and vertices.shape[1] == v * 3:
            vertices = vertices.reshape(-1, v, 3)
        if vertices.ndim != 3 or vertices.shape[1:] != (v, 3) or vertices.shape[0] == 0:
            raise ValueError(
                f"clip {clip_id}: vertices must be [T, {v}, 3] or [T, {v * 3}], got {vertices.shape}"
            )
        if not np.isfinite(vertices).all():
            raise ValueError(f"clip {clip_id}: vertices hold NaN/inf")
        n = vertices.shape[0]
        audio_seconds = audio.size / float(sample_rate)
        expected = math.ceil(audio_seconds * self.fps - 1e-6)
        if abs(n - expected) > _FRAME_TOLERANCE:
            raise ValueError(
                f"clip {clip_id}: {n} frames at {self.fps:g} fps do not match {audio_seconds:.3f}s of audio "
                f"(expected about {expected}); render the motion with duration=len(audio)/sample_rate"
            )

        template = np.asarray(template, dtype=np.float32)
        if template.shape == (v * 3,):
            template = template.reshape(v, 3)
        if template.shape != (v, 3) or not np.isfinite(template).all():
            raise ValueError(f"clip {clip_id}: template must be finite [{v}, 3], got {template.shape}")
        known = self.templates.get(subject)
        if known is not None and not np.allclose(known, template, atol=1e-6):
            raise ValueError(
                f"clip {clip_id}: subject {subject!r} was added with a different template; one subject has "
                "one neutral face -- use a distinct subject id per face"
            )

        if arkit is not None:
            arkit = np.asarray(arkit, dtype=np.float32)
            if arkit.shape != (n, len(ARKIT_NAMES)) or not np.isfinite(arkit).all():
                raise ValueError(
                    f"clip {clip_id}: arkit must be finite [{n}, {len(ARKIT_NAMES)}], got {arkit.shape}"
                )

        record = {k: _jsonable(val) for k, val in (meta or {}).items()}
        if "phones" in record:
            record["phones"] = _phones_json((meta or {})["phones"], clip_id)
        record.update(
            clip_id=clip_id,
            subject=subject,
            fps=self.fps,
            n_frames=n,
            sample_rate=int(sample_rate),
            duration=audio_seconds,
            arkit=f"{ARKIT_DIR}/{clip_id}.npy" if arkit is not None else None,
        )
        text = json.dumps(record, ensure_ascii=False, indent=1)

        import soundfile as sf  # only the writer needs it: readers and training run without it

        sf.write(self.partial / WAV_DIR / f"{clip_id}.wav", audio, int(sample_rate), subtype="PCM_16")
        np.save(self.partial / VERTICES_DIR / f"{clip_id}.npy", vertices.reshape(n, v * 3))
        if arkit is not None:
            np.save(self.partial / ARKIT_DIR / f"{clip_id}.npy", arkit)
        (self.partial / META_DIR / f"{clip_id}.json").write_text(text, encoding="utf-8")
        if known is None:
            self.templates[subject] = template
        self.clip_ids.append(clip_id)
        self._ids.add(clip_id)
        self.total_seconds += audio_seconds

    # -- publish ----------------------------------------------------------------------------------
    def finish(
        self,
        splits: Mapping[str, Iterable[str]],
        extra: Mapping[str, Any] | None = None,
        views: Mapping[str, Iterable[str]] | None = None,
    ) -> Path:
        """Write templates, splits, views and dataset.json, then move the dataset into place."""
        if self._closed:
            raise RuntimeError("this DatasetWriter is finished or aborted; create a new one")
        if not self.clip_ids:
            raise ValueError("no clips were added; nothing to publish")
        full = {name: list(splits.get(name, [])) for name in SPLIT_NAMES}
        unknown = set(splits) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"unknown split names {sorted(unknown)}; use {', '.join(SPLIT_NAMES)}")
        check_splits(full, self._ids)

        with open(self.partial / TEMPLATES_FILE, "wb") as f:
            pickle.dump(self.templates, f, protocol=4)
        (self.partial / SPLITS_FILE).write_text(json.dumps(full, indent=1), encoding="utf-8")
        if views:
            named = {str(k): list(v) for k, v in views.items()}
            strays = sorted({i for v in named.values() for i in v} - self._ids)
            if strays or set(named) & set(SPLIT_NAMES):
                raise ValueError(f"views must name known clips and not shadow a split (strays: {strays[:3]})")
            (self.partial / VIEWS_FILE).write_text(json.dumps(named, indent=1), encoding="utf-8")
        info = {
            "kind": self.kind,
            "layout_version": LAYOUT_VERSION,
            "fps": self.fps,
            "n_vertices": self.n_vertices,
            "n_clips": len(self.clip_ids),
            "hours": self.total_seconds / 3600.0,
            "subjects": sorted(self.templates),
            "arkit_names": list(ARKIT_NAMES),
            **{k: _jsonable(v) for k, v in (extra or {}).items()},
        }
        (self.partial / DATASET_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")

        old = None
        if self.root.exists():
            if not self.overwrite:
                raise FileExistsError(f"{self.root} appeared while writing; not replacing it")
            old = self.root.with_name(self.root.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            self.root.rename(old)
        self.partial.rename(self.root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._closed = True
        return self.root
