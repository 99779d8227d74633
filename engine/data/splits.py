"""Train/val/test splits: held-out voices and held-out sentences for our corpus, and the standard
FaceFormer/CodeTalker splits for VOCASET and BIWI.

Our corpus has two test sets because they answer different questions: ``test_sentences`` (voices seen
in training, sentences never seen) measures generalisation to new text; ``test_voices`` (voices never
seen, any sentence) measures generalisation to new speakers. A clip of a held-out voice always goes to
``test_voices``, even if its sentence is also held out, so no held-out voice leaks into training.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test_sentences", "test_voices")


def normalize_sentence(text: str) -> str:
    """Sentence identity ignores case, punctuation and spacing ("Hello, world." == "hello world")."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def pick_held_out(
    values: Iterable[str], fraction: float, rng: np.random.Generator, minimum: int = 1
) -> list[str]:
    """A random ``fraction`` of the distinct values (at least ``minimum``, never all of them)."""
    distinct = sorted(set(values))
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction!r}")
    if not distinct:
        return []
    count = max(minimum, int(round(fraction * len(distinct)))) if fraction > 0 else 0
    count = min(count, len(distinct) - 1)  # keep at least one for training
    if count <= 0:
        return []
    chosen = rng.choice(len(distinct), size=count, replace=False)
    return sorted(distinct[i] for i in chosen)


def _in_val(clip_id: str, val_fraction: float, seed: int) -> bool:
    """Stable per-clip draw: adding clips to a corpus never moves existing clips between train and val."""
    return zlib.crc32(f"{seed}:{clip_id}".encode()) / 2**32 < val_fraction


def build_splits(
    clips: Iterable[Mapping[str, Any]],
    held_out_voices: Collection[str] = (),
    held_out_sentences: Collection[str] = (),
    val_fraction: float = 0.05,
    seed: int = 0,
    voice_key: str = "subject",
    sentence_key: str = "text",
) -> dict[str, list[str]]:
    """Split clip metadata (each a mapping with ``clip_id``, a voice and a sentence) into id lists.

    held_out_voices: voices only in ``test_voices``. held_out_sentences: sentences (compared after
    ``normalize_sentence``) only in ``test_sentences`` (for seen voices). The rest goes to train, and
    a stable ``val_fraction`` of it to val.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    voices = set(held_out_voices)
    sentences = {normalize_sentence(s) for s in held_out_sentences}
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    seen: set[str] = set()
    for i, clip in enumerate(clips):
        for key in ("clip_id", voice_key, sentence_key):
            if key not in clip:
                raise KeyError(f"clip metadata #{i} has no {key!r} (keys: {sorted(clip)})")
        clip_id = str(clip["clip_id"])
        if clip_id in seen:
            raise ValueError(f"clip id {clip_id!r} appears twice in the metadata")
        seen.add(clip_id)
        if clip[voice_key] in voices:
            out["test_voices"].append(clip_id)
        elif normalize_sentence(str(clip[sentence_key])) in sentences:
            out["test_sentences"].append(clip_id)
        elif _in_val(clip_id, val_fraction, seed):
            out["val"].append(clip_id)
        else:
            out["train"].append(clip_id)
    return out


def check_splits(splits: Mapping[str, Sequence[str]], clip_ids: Collection[str]) -> None:
    """Raise if a split name is unknown, an id is not a clip, or an id is in two splits."""
    unknown = set(splits) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; use {', '.join(SPLIT_NAMES)}")
    owner: dict[str, str] = {}
    ids = set(clip_ids)
    for name, members in splits.items():
        for clip_id in members:
            if clip_id not in ids:
                raise ValueError(f"split {name!r} names clip {clip_id!r}, which is not in the dataset")
            if clip_id in owner:
                raise ValueError(
                    f"clip {clip_id!r} is in both {owner[clip_id]!r} and {name!r}; splits must be disjoint"
                )
            owner[clip_id] = name


# ---- real datasets ------------------------------------------------------------------------------
# FaceFormer (Fan et al., CVPR 2022) and CodeTalker (Xing et al., CVPR 2023) split by subject and by the
# sentence number, i.e. the last two digits of the clip name.

VOCASET_SUBJECTS: dict[str, tuple[str, ...]] = {
    "train": (
        "FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170725_00137_TA",
        "FaceTalk_170915_00223_TA", "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
        "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA",
    ),
    "val": ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"),
    "test": ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"),
}  # fmt: skip
VOCASET_SENTENCES = {"train": range(1, 41), "val": range(21, 41), "test": range(21, 41)}

BIWI_SEEN_SUBJECTS: tuple[str, ...] = ("F2", "F3", "F4", "M3", "M4", "M5")
BIWI_UNSEEN_SUBJECTS: tuple[str, ...] = ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6")  # BIWI-Test-B
BIWI_SENTENCES = {"train": range(1, 33), "val": range(33, 37), "test": range(37, 41)}


def subject_and_sentence(clip_id: str) -> tuple[str, int]:
    """("FaceTalk_170725_00137_TA", 1) from "FaceTalk_170725_00137_TA_sentence01"; ("F2", 1) from "F2_e01"."""
    subject, sep, tail = clip_id.rpartition("_")
    digits = re.search(r"(\d{1,2})$", tail)
    if not sep or not subject or digits is None:
        raise ValueError(
            f"clip name {clip_id!r} is not SUBJECT_SENTENCE (e.g. FaceTalk_170725_00137_TA_sentence01, F2_e01)"
        )
    return subject, int(digits.group(1))


def vocaset_splits(clip_ids: Iterable[str]) -> dict[str, list[str]]:
    """FaceFormer's VOCASET split: 8 training subjects x sentences 1-40; 2 validation subjects x 21-40;
    2 test subjects x 21-40 (unseen voices -> ``test_voices``). Other subjects are left out."""
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    target = {"train": "train", "val": "val", "test": "test_voices"}
    for clip_id in sorted(clip_ids):
        subject, sentence = subject_and_sentence(clip_id)
        for part, subjects in VOCASET_SUBJECTS.items():
            if subject in subjects and sentence in VOCASET_SENTENCES[part]:
                out[target[part]].append(clip_id)
    return out


def biwi_splits(clip_ids: Iterable[str]) -> dict[str, list[str]]:
    """FaceFormer/CodeTalker BIWI split for the 6 seen subjects: sentences 1-32 train, 33-36 val, 37-40
    test (BIWI-Test-A -> ``test_sentences``); the 8 unseen subjects' sentences 37-40 are BIWI-Test-B
    (-> ``test_voices``)."""
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for clip_id in sorted(clip_ids):
        subject, sentence = subject_and_sentence(clip_id)
        if subject in BIWI_SEEN_SUBJECTS:
            for part, target in (("train", "train"), ("val", "val"), ("test", "test_sentences")):
                if sentence in BIWI_SENTENCES[part]:
                    out[target].append(clip_id)
        elif subject in BIWI_UNSEEN_SUBJECTS and sentence in BIWI_SENTENCES["test"]:
            out["test_voices"].append(clip_id)
    return out
