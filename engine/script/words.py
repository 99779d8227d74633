"""Word captions and timing exports of a scripted take.

Captions are the script's own words at their aligned times, grouped into lines at pauses. Each word
carries two scores: `confidence`, how well the audio supports the word where it was aligned, and
`sync`, how well the lip reader (reading the generated motion) agrees with the word's aligned phones,
the same viseme-level sync score as the audio-only captions. A low sync marks a word to look at.

The aligned phones and words also export on their own, for pipelines that drive other rigs: a JSON
timing file and a Rhubarb-Lip-Sync-style TSV of mouth cues (time, shape A-H/X).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.animation import Animation, Caption, CaptionWord, TimedPhone
from engine.phonemes import SILENCE
from engine.script.align import AlignedWord, Alignment

LINE_PAUSE_S = 0.3  # a gap this long between words starts a new caption line
LINE_MAX_S = 5.0  # ... and so does a line growing longer than this
TIMING_FORMAT = "dualface-timing/1"

# Rhubarb Lip Sync's mouth shapes: A closed (p b m), B teeth/most consonants, C open (e, a),
# D wide open (ah), E rounded (o, er), F puckered (oo, w), G f/v, H tongue up (l), X rest.
RHUBARB_SHAPE: dict[str, str] = {
    **dict.fromkeys(("P", "B", "M"), "A"),
    **dict.fromkeys(
        (
            "K",
            "G",
            "NG",
            "HH",
            "X",
            "Y",
            "S",
            "Z",
            "T",
            "D",
            "N",
            "TH",
            "DH",
            "IY",
            "IH",
            "CH",
            "JH",
            "SH",
            "ZH",
            "RR",
            "NY",
        ),
        "B",
    ),  # fmt: skip
    **dict.fromkeys(("EH", "AE", "EY", "AH", "AY"), "C"),
    **dict.fromkeys(("AA", "AW"), "D"),
    **dict.fromkeys(("AO", "OY", "ER", "R", "OW"), "E"),
    **dict.fromkeys(("UW", "UH", "W", "UE"), "F"),
    **dict.fromkeys(("F", "V"), "G"),
    "L": "H",
    SILENCE: "X",
}


def _timed(word: AlignedWord) -> list[TimedPhone]:
    return [TimedPhone(p.phone, p.start, p.end) for p in word.phones]


def group_lines(words: Sequence[AlignedWord]) -> list[list[AlignedWord]]:
    """Consecutive words split into lines at pauses and at the readable-length limit."""
    lines: list[list[AlignedWord]] = []
    for word in words:
        if lines and (
            word.start - lines[-1][-1].end < LINE_PAUSE_S and word.end - lines[-1][0].start <= LINE_MAX_S
        ):
            lines[-1].append(word)
        else:
            lines.append([word])
    return lines


def word_captions(alignment: Alignment, lip_phones: Sequence[TimedPhone]) -> list[Caption]:
    """One caption per line of script words, each word scored against the lip-read phones."""
    from engine.captions import sync_score

    spoken = [p for p in lip_phones if p.phone != SILENCE]
    centres = np.array([0.5 * (p.start + p.end) for p in spoken])

    def lips_in(start: float, end: float) -> list[TimedPhone]:
        lo, hi = np.searchsorted(centres, [start, end], side="left"), np.searchsorted(centres, end, "right")
        return spoken[int(lo[0]) : int(hi)]

    captions = []
    for line in group_lines(alignment.words):
        words = tuple(
            CaptionWord(
                text=w.text,
                start=round(w.start, 3),
                end=round(w.end, 3),
                confidence=round(float(w.score), 3),
                sync=round(sync_score(lips_in(w.start, w.end), _timed(w)), 3),
            )
            for w in line
        )
        start, end = line[0].start, line[-1].end
        aligned = [p for w in line for p in _timed(w)]
        captions.append(
            Caption(
                start=round(start, 3),
                end=round(end, 3),
                text=" ".join(w.text for w in line),
                confidence=round(float(np.mean([w.score for w in line])), 3),
                sync=round(sync_score(lips_in(start, end), aligned), 3),
                words=words,
            )
        )
    return captions


def alignment_record(alignment: Alignment, language: str, phonemizer: str, warnings: list[str]) -> dict:
    """The alignment as plain data (kept in the take's meta, written by `write_timing`)."""
    return {
        "format": TIMING_FORMAT,
        "language": language,
        "aligner": alignment.aligner,
        "phonemizer": phonemizer,
        "score": round(alignment.score, 3),
        "warnings": list(warnings),
        "words": [
            {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "score": round(w.score, 3)}
            for w in alignment.words
        ],
        "phones": [
            {"phone": p.phone, "start": round(p.start, 3), "end": round(p.end, 3)} for p in alignment.phones
        ],
    }


def rhubarb_cues(phones: Sequence[dict]) -> list[tuple[float, str]]:
    """Mouth cues (time a shape starts, shape letter), merged where the shape does not change."""
    cues: list[tuple[float, str]] = []
    for phone in phones:
        if phone["end"] - phone["start"] < 0.005:
            continue  # shorter than the TSV's resolution
        shape = RHUBARB_SHAPE.get(phone["phone"], "B")
        if not cues or cues[-1][1] != shape:
            cues.append((float(phone["start"]), shape))
    return cues


def to_rhubarb_tsv(record: dict) -> str:
    cues = rhubarb_cues(record["phones"])
    end = record["phones"][-1]["end"] if record["phones"] else 0.0
    if cues and cues[-1][1] != "X":
        cues.append((float(end), "X"))
    return "".join(f"{t:.2f}\t{shape}\n" for t, shape in cues)


def write_timing(animation: Animation, path: str | Path) -> Path:
    """Write a scripted take's word and phone timing: .json (words, phones, scores) or .tsv (Rhubarb)."""
    from engine.atomic_file import write_text_atomic

    path = Path(path)
    record = animation.meta.get("script")
    if not record:
        raise ValueError("this take has no script: timing export needs a take animated with text")
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(record, indent=1, ensure_ascii=False)
    elif suffix == ".tsv":
        text = to_rhubarb_tsv(record)
    else:
        raise ValueError(f"timing file {path.name}: use a .json or .tsv extension")
    return write_text_atomic(path, text, "timing file")
