"""Reading our synthetic corpus, VOCASET and BIWI through one API: ``open_dataset(root).clips(split)``.

Vertices are opened as read-only memory maps: a Clip costs almost no memory until its frames are used,
so listing a 40-hour corpus or all of BIWI (23 370 vertices a frame) is cheap. Convert with
``np.asarray(clip.vertices, dtype=np.float32)`` when you need an in-memory copy.

Layouts (detected from the folder):

- synthetic: written by ``engine.data.layout.DatasetWriter``; has ``dataset.json`` and ``meta/``.
- VOCASET as prepared by FaceFormer: ``wav/``, ``vertices_npy/`` ([T, 5023*3] at 60 fps),
  ``templates.pkl``; names ``FaceTalk_170725_00137_TA_sentence01``.
- BIWI as prepared by CodeTalker: ``wav/``, ``vertices_npy/`` ([T, 23370*3] at 25 fps),
  ``templates.pkl``; names ``F2_e01``, ``M3_40``.

Real sets without ``splits.json`` get the standard FaceFormer/CodeTalker splits (``engine.data.splits``).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.arkit import ARKIT_NAMES
from engine.data.layout import (
    DATASET_FILE,
    MEL_DIR,
    META_DIR,
    PARTIAL_SUFFIX,
    SPLITS_FILE,
    TEMPLATES_FILE,
    VERTICES_DIR,
    VIEWS_FILE,
    WAV_DIR,
)
from engine.data.record import Clip, Phone
from engine.data.splits import SPLIT_NAMES, biwi_splits, check_splits, subject_and_sentence, vocaset_splits


@dataclass(frozen=True)
class RealLayout:
    kind: str
    fps: float
    n_vertices: int


VOCASET = RealLayout("vocaset", 60.0, 5023)
BIWI = RealLayout("biwi", 25.0, 23370)
_REAL_BY_VERTICES = {VOCASET.n_vertices: VOCASET, BIWI.n_vertices: BIWI}
_SPLIT_RULES = {"vocaset": vocaset_splits, "biwi": biwi_splits}


class DatasetError(ValueError):
    """A dataset folder that cannot be read as any supported layout; the message says what to fix."""


@dataclass
class Dataset:
    root: Path
    kind: str  # "synthetic", "vocaset", "biwi"
    fps: float
    n_vertices: int
    templates: dict[str, np.ndarray]
    splits: dict[str, list[str]]
    clip_ids: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # dataset.json (synthetic) or detection facts
    skipped: list[str] = field(default_factory=list)  # real sets: names with only audio or only motion
    _id_set: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._id_set = set(self.clip_ids)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def ids(self, split: str | None = None) -> list[str]:
        if split is None:
            return list(self.clip_ids)
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; this dataset has {', '.join(self.splits)}")
        return list(self.splits[split])

    def clips(self, split: str | None = None) -> list[Clip]:
        """Clips of a split (all clips for None), vertices memory-mapped."""
        return [self.clip(clip_id) for clip_id in self.ids(split)]

    def clip(self, clip_id: str) -> Clip:
        if clip_id not in self._id_set:
            raise KeyError(f"no clip {clip_id!r} in {self.root}")
        if self.kind == "synthetic":
            return self._synthetic_clip(clip_id)
        subject, _ = subject_and_sentence(clip_id)
        vertices = _open_vertices(self.root / VERTICES_DIR / f"{clip_id}.npy", self.n_vertices)
        return Clip(
            clip_id=clip_id,
            subject=subject,
            audio_path=self.root / WAV_DIR / f"{clip_id}.wav",
            fps=self.fps,
            vertices=vertices,
            template=self.templates[subject],
        )

    def _synthetic_clip(self, clip_id: str) -> Clip:
        meta_path = self.root / META_DIR / f"{clip_id}.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(
                f"cannot read {meta_path}: {exc}; the dataset is damaged, regenerate it"
            ) from exc
        subject = meta["subject"]
        if subject not in self.templates:
            raise DatasetError(f"{self.root / TEMPLATES_FILE} has no template for subject {subject!r}")
        vertices = _open_vertices(self.root / VERTICES_DIR / f"{clip_id}.npy", self.n_vertices)
        arkit = None
        if meta.get("arkit"):
            arkit = np.load(self.root / meta["arkit"], mmap_mode="r")
            if arkit.shape != (vertices.shape[0], len(ARKIT_NAMES)):
                raise DatasetError(
                    f"{self.root / meta['arkit']} has shape {arkit.shape}, expected "
                    f"({vertices.shape[0]}, {len(ARKIT_NAMES)}) to match the vertices"
                )
        phones = meta.get("phones")
        mel_path = self.root / MEL_DIR / f"{clip_id}.npy"
        return Clip(
            clip_id=clip_id,
            subject=subject,
            audio_path=self.root / WAV_DIR / f"{clip_id}.wav",
            fps=float(meta.get("fps", self.fps)),
            vertices=vertices,
            template=self.templates[subject],
            arkit=arkit,
            phones=[Phone(p["phone"], float(p["start"]), float(p["end"])) for p in phones]
            if phones
            else None,
            text=meta.get("text", ""),
            language=meta.get("language", "en"),
            emotion=meta.get("emotion", "neutral"),
            intensity=float(meta.get("intensity", 0.0)),
            meta=meta,
            mel_path=mel_path if mel_path.is_file() else None,
        )


def _open_vertices(path: Path, n_vertices: int) -> np.ndarray:
    """[T, V, 3] read-only memory map of a [T, V*3] (or [T, V, 3]) .npy file."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing; the dataset is incomplete")
    try:
        data = np.load(path, mmap_mode="r")
    except ValueError as exc:  # pickled object arrays cannot be mapped
        raise DatasetError(f"{path} is not a plain numeric .npy ({exc}); re-save it with np.save") from exc
    if data.ndim == 2 and data.shape[1] == n_vertices * 3:
        return data.reshape(data.shape[0], n_vertices, 3)
    if data.ndim == 3 and data.shape[1:] == (n_vertices, 3):
        return data
    raise DatasetError(
        f"{path} has shape {data.shape}; expected [T, {n_vertices * 3}] ({n_vertices} vertices)"
    )


TRUST_PICKLE_ENV = "DUALFACE_TRUST_PICKLE"  # "1": unpickle templates.pkl without restrictions

# What a {subject: array} pickle needs (numpy<2 and numpy 2 module names); anything else could run code.
_TEMPLATE_PICKLE_CLASSES = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}
_TEMPLATE_PICKLE_CLASSES |= {
    ("_codecs", "encode")
}  # how protocol-2 pickles spell bytes: encodes a str, nothing more


class _TemplateUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, strings and numpy arrays -- never a class that could run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in _TEMPLATE_PICKLE_CLASSES or (module, name) == ("__builtin__", "object"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it holds {module}.{name}, which DualFace does not unpickle: save the templates as a plain "
            f"{{subject: numpy array}} dict, or set {TRUST_PICKLE_ENV}=1 for a file you trust "
            "(see docs/reliability.md)"
        )


def _unpickle_templates(path: Path):
    with open(path, "rb") as f:
        if os.environ.get(TRUST_PICKLE_ENV) == "1":
            return pickle.load(f, encoding="latin1")  # the user's explicit opt-in
        return _TemplateUnpickler(f, encoding="latin1").load()  # FaceFormer's were pickled by Python 2


def _load_templates(path: Path, n_vertices: int) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing: it must map each subject to its neutral face [V, 3]")
    try:
        raw = _unpickle_templates(path)
    except Exception as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise DatasetError(f"{path} must hold a non-empty dict {{subject: [V, 3] array}}")
    out = {}
    for subject, value in raw.items():
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape == (n_vertices * 3,):
            arr = arr.reshape(n_vertices, 3)
        if arr.shape != (n_vertices, 3):
            raise DatasetError(
                f"{path}: template of {subject!r} has shape {arr.shape}, expected ({n_vertices}, 3)"
            )
        arr.setflags(write=False)
        out[str(subject)] = arr
    return out


def _read_splits(root: Path, ids: list[str]) -> dict[str, list[str]] | None:
    path = root / SPLITS_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{path} must be an object of id lists ({', '.join(SPLIT_NAMES)})")
    splits = {name: [str(i) for i in raw.get(name, [])] for name in SPLIT_NAMES}
    try:
        check_splits({k: v for k, v in raw.items()}, ids)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    return {**splits, **_read_views(root, ids)}


def _read_views(root: Path, ids: list[str]) -> dict[str, list[str]]:
    """Named, possibly overlapping clip lists beside the splits (the unseen-engine folds)."""
    path = root / VIEWS_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    known = set(ids)
    if not isinstance(raw, dict) or any(not isinstance(v, list) for v in raw.values()):
        raise DatasetError(f"{path} must be an object of id lists")
    for name, members in raw.items():
        missing = [str(i) for i in members if str(i) not in known]
        if missing or name in SPLIT_NAMES:
            raise DatasetError(f"{path}: view {name!r} names unknown clips {missing[:3]} or shadows a split")
    return {str(name): [str(i) for i in members] for name, members in raw.items()}


def _require(root: Path, names: list[str], layout: str) -> None:
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DatasetError(
            f"{root} is missing {', '.join(missing)} for the {layout} layout. Expected either our corpus "
            f"(dataset.json, meta/, wav/, vertices_npy/, templates.pkl, splits.json; make one with "
            f"`python -m engine.data.synth`) or a FaceFormer/CodeTalker VOCASET or BIWI folder "
            f"(wav/, vertices_npy/, templates.pkl)"
        )


def _open_synthetic(root: Path) -> Dataset:
    try:
        info = json.loads((root / DATASET_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{root / DATASET_FILE} is not valid JSON: {exc}") from exc
    for key in ("kind", "fps", "n_vertices"):
        if key not in info:
            raise DatasetError(f"{root / DATASET_FILE} lacks {key!r}; regenerate the dataset")
    unpacked = (root / MEL_DIR).is_dir()  # engine.data.pack: log-mels of the training clips, no audio
    _require(root, [VERTICES_DIR, META_DIR, TEMPLATES_FILE] + ([] if unpacked else [WAV_DIR]), "synthetic")
    n_vertices = int(info["n_vertices"])
    ids = sorted(p.stem for p in (root / META_DIR).glob("*.json"))
    if not ids:
        raise DatasetError(f"{root / META_DIR} holds no clips")
    missing = [i for i in ids if not (root / VERTICES_DIR / f"{i}.npy").is_file()]
    if not unpacked:
        missing += [i for i in ids if not (root / WAV_DIR / f"{i}.wav").is_file()]
    if missing:
        raise DatasetError(f"{root}: clips {sorted(set(missing))[:5]} lack their wav or vertices; regenerate")
    splits = _read_splits(root, ids)
    if splits is None:
        raise DatasetError(
            f"{root / SPLITS_FILE} is missing; the writer always creates it, regenerate the dataset"
        )
    return Dataset(
        root=root,
        kind=str(info["kind"]),
        fps=float(info["fps"]),
        n_vertices=n_vertices,
        templates=_load_templates(root / TEMPLATES_FILE, n_vertices),
        splits=splits,
        clip_ids=ids,
        info=info,
    )


def _open_real(root: Path) -> Dataset:
    _require(root, [WAV_DIR, VERTICES_DIR, TEMPLATES_FILE], "VOCASET/BIWI")
    motion = {p.stem for p in (root / VERTICES_DIR).glob("*.npy")}
    audio = {p.stem for p in (root / WAV_DIR).glob("*.wav")}
    ids = sorted(motion & audio)
    if not ids:
        raise DatasetError(
            f"{root}: no clip has both wav/NAME.wav and vertices_npy/NAME.npy "
            f"({len(audio)} wav, {len(motion)} npy files)"
        )
    first = np.load(root / VERTICES_DIR / f"{ids[0]}.npy", mmap_mode="r")
    width = int(np.prod(first.shape[1:]))
    layout = _REAL_BY_VERTICES.get(width // 3) if width % 3 == 0 else None
    if layout is None:
        raise DatasetError(
            f"{root / VERTICES_DIR / ids[0]}.npy has {first.shape} values a frame; VOCASET has "
            f"{VOCASET.n_vertices * 3} and BIWI {BIWI.n_vertices * 3}. For another mesh add a dataset.json "
            f'with {{"kind": ..., "fps": ..., "n_vertices": ...}} and meta/ as written by DatasetWriter'
        )
    templates = _load_templates(root / TEMPLATES_FILE, layout.n_vertices)
    bad_names, no_template = [], set()
    for clip_id in ids:
        try:
            subject, _ = subject_and_sentence(clip_id)
        except ValueError:
            bad_names.append(clip_id)
            continue
        if subject not in templates:
            no_template.add(subject)
    if bad_names:
        raise DatasetError(
            f"{root}: clip names {bad_names[:5]} are not SUBJECT_SENTENCE ({layout.kind} naming)"
        )
    if no_template:
        raise DatasetError(
            f"{root / TEMPLATES_FILE} has no template for subjects {sorted(no_template)}; "
            f"it holds {sorted(templates)[:6]}"
        )
    for clip_id in ids:  # header-only reads: catches a wrong file before training starts
        _open_vertices(root / VERTICES_DIR / f"{clip_id}.npy", layout.n_vertices)
    splits = _read_splits(root, ids)
    info: dict[str, Any] = {"kind": layout.kind, "fps": layout.fps, "n_vertices": layout.n_vertices}
    if splits is None:
        splits = _SPLIT_RULES[layout.kind](ids)
        info["splits"] = "standard FaceFormer/CodeTalker rule"
    skipped = sorted(motion ^ audio)
    return Dataset(
        root=root,
        kind=layout.kind,
        fps=layout.fps,
        n_vertices=layout.n_vertices,
        templates=templates,
        splits=splits,
        clip_ids=ids,
        info=info,
        skipped=skipped,
    )


def open_dataset(root: str | Path) -> Dataset:
    """Open a dataset folder of any supported layout (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        partial = root.with_name(root.name + PARTIAL_SUFFIX)
        hint = f" ({partial} exists: the writer did not finish; rerun it)" if partial.exists() else ""
        raise DatasetError(f"dataset folder {root} does not exist{hint}")
    if (root / DATASET_FILE).is_file():
        return _open_synthetic(root)
    return _open_real(root)
