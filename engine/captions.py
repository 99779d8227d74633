"""Captions that double as a lip-sync review: what the lips say, and where that disagrees with the audio.

The model's lip reader reads phones off the *generated* motion; the audio encoder's CTC head hears
phones in the *audio*. Each caption segment carries both the lip reader's confidence and a sync score:
how well the two phone streams agree over the segment, in content and in timing. A low sync score
marks the lines an animator should look at.

Agreement is measured on viseme classes, not phones: lips cannot show voicing or nasality, so /p/ read
as /b/ is perfect lip sync and must not be punished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.animation import Animation, Caption, TimedPhone
from engine.atomic_file import write_text_atomic
from engine.phonemes import SILENCE, VOCAB, VOWELS

PAUSE_S = 0.3  # a gap this long between phones splits a caption
MAX_SEGMENT_S = 5.0  # longer stretches are split so each caption stays readable
SYNC_TOLERANCE_S = 0.08  # matched phones closer than this count as in sync
SYNC_ZERO_S = 0.3  # ... and this far apart count as out of sync

_VISEME_CLASSES = (
    ("P", "B", "M"),
    ("F", "V"),
    ("TH", "DH"),
    ("T", "D", "N", "L", "S", "Z", "RR", "NY"),
    ("K", "G", "NG", "HH", "X", "Y"),
    ("CH", "JH", "SH", "ZH"),
    ("R", "ER"),
    ("W", "UW", "UH", "OW", "UE"),
    ("AO", "OY", "AW"),
    ("AA", "AH", "AY"),
    ("AE", "EH", "EY"),
    ("IH", "IY"),
)
VISEME: dict[str, int] = {phone: i for i, group in enumerate(_VISEME_CLASSES) for phone in group}

# How a phone reads in a caption when no word explains it.
_SPELLING = {
    "AA": "ah", "AE": "a", "AH": "u", "AO": "aw", "AW": "ow", "AY": "eye", "EH": "e", "ER": "er",
    "EY": "ay", "IH": "i", "IY": "ee", "OW": "oh", "OY": "oy", "UH": "oo", "UW": "oo", "UE": "ue",
    "B": "b", "CH": "ch", "D": "d", "DH": "th", "F": "f", "G": "g", "HH": "h", "JH": "j", "K": "k",
    "L": "l", "M": "m", "N": "n", "NG": "ng", "P": "p", "R": "r", "S": "s", "SH": "sh", "T": "t",
    "TH": "th", "V": "v", "W": "w", "Y": "y", "Z": "z", "ZH": "zh", "RR": "rr", "X": "kh", "NY": "ny",
}  # fmt: skip


def ctc_greedy_phones(logprobs: np.ndarray, frame_rate: float, time_offset: float = 0.0) -> list[TimedPhone]:
    """Best-path CTC decode of `[T, len(VOCAB)]` log-probabilities into timed phones.

    A phone starts at the first frame of its run and lasts until the next emitted symbol (CTC peaks
    are a frame or two wide, so the run alone would understate it); its confidence is the mean
    probability of its run. Silences are emitted too: they split captions.
    """
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if logprobs.ndim != 2 or logprobs.shape[1] != len(VOCAB):
        raise ValueError(f"expected CTC log-probabilities [T, {len(VOCAB)}], got {logprobs.shape}")
    n = logprobs.shape[0]
    if n == 0:
        return []
    best = logprobs.argmax(axis=1)
    prob = np.exp(logprobs[np.arange(n), best])
    runs: list[tuple[int, int, int]] = []  # (symbol, first frame, one past last frame)
    start = 0
    for t in range(1, n + 1):
        if t == n or best[t] != best[start]:
            if best[start] != 0:
                runs.append((int(best[start]), start, t))
            start = t
    phones = []
    for i, (symbol, first, last) in enumerate(runs):
        limit = runs[i + 1][1] if i + 1 < len(runs) else n
        end = min(limit, last + max(last - first, int(round(0.08 * frame_rate))))
        phones.append(
            TimedPhone(
                phone=VOCAB[symbol],
                start=time_offset + first / frame_rate,
                end=time_offset + max(end, last) / frame_rate,
                confidence=float(prob[first:last].mean()),
            )
        )
    return phones


def split_segments(phones: Sequence[TimedPhone]) -> list[list[TimedPhone]]:
    """Cut a phone stream at silences, pauses and the readable-length limit."""
    segments: list[list[TimedPhone]] = []
    current: list[TimedPhone] = []
    for phone in phones:
        if phone.phone == SILENCE:
            if current:
                segments.append(current)
            current = []
            continue
        if current and (
            phone.start - current[-1].end > PAUSE_S or phone.end - current[0].start > MAX_SEGMENT_S
        ):
            segments.append(current)
            current = []
        current.append(phone)
    if current:
        segments.append(current)
    return segments


def sync_score(lip: Sequence[TimedPhone], audio: Sequence[TimedPhone]) -> float:
    """Agreement 0..1 of two timed phone streams: viseme-level alignment, credited by timing.

    Phones are aligned by edit distance over viseme classes; every aligned pair of the same class
    earns 1 when their centres lie within SYNC_TOLERANCE_S, falling linearly to 0 at SYNC_ZERO_S.
    The sum is divided by the longer stream, so insertions, deletions, wrong visemes and late or
    early mouths all lower the score. Two empty streams agree perfectly.
    """
    a = [p for p in lip if p.phone != SILENCE]
    b = [p for p in audio if p.phone != SILENCE]
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    va = [VISEME.get(p.phone, -1) for p in a]
    vb = [VISEME.get(p.phone, -2) for p in b]
    n, m = len(a), len(b)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (va[i - 1] != vb[j - 1])
            )
    credit = 0.0
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (va[i - 1] != vb[j - 1]):
            if va[i - 1] == vb[j - 1]:
                offset = abs((a[i - 1].start + a[i - 1].end) - (b[j - 1].start + b[j - 1].end)) / 2
                credit += float(np.clip((SYNC_ZERO_S - offset) / (SYNC_ZERO_S - SYNC_TOLERANCE_S), 0.0, 1.0))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return credit / max(n, m)


def segment_text(phones: Sequence[str], lexicon=None) -> str:
    """Words where the lexicon explains the phones, bracketed syllables where it does not."""
    from engine.lexicon import WordMatch, syllables

    if lexicon is None:
        return _spell(syllables(list(phones)))
    words: list[str] = []
    unexplained: list[str] = []
    for piece in lexicon.segment(list(phones)):
        if isinstance(piece, WordMatch):
            if unexplained:
                words.append(_spell(syllables(unexplained)))
                unexplained = []
            words.append(piece.word)
        else:
            unexplained.append(piece)
    if unexplained:
        words.append(_spell(syllables(unexplained)))
    return " ".join(words)


def _spell(groups: list[list[str]]) -> str:
    return "[" + "-".join("".join(_SPELLING.get(p, p.lower()) for p in g) for g in groups) + "]"


def build_captions(
    lip_phones: Sequence[TimedPhone], audio_phones: Sequence[TimedPhone], language: str = "en"
) -> list[Caption]:
    """Timed caption segments from the lip-read phones, each scored against the audio-heard phones."""
    lexicon = None
    if language.lower().startswith("en") or language.lower() == "auto":  # auto without a script: English
        from engine.lexicon import english_lexicon

        lexicon = english_lexicon()
    captions = []
    for segment in split_segments(lip_phones):
        start, end = segment[0].start, segment[-1].end
        heard = [p for p in audio_phones if p.end > start and p.start < end and p.phone != SILENCE]
        heard_in_span = [p for p in heard if start <= (p.start + p.end) / 2 <= end]
        captions.append(
            Caption(
                start=round(start, 3),
                end=round(end, 3),
                text=segment_text([p.phone for p in segment], lexicon),
                confidence=float(np.mean([p.confidence for p in segment])),
                sync=sync_score(segment, heard_in_span),
            )
        )
    captions.extend(_unread_speech(lip_phones, audio_phones, captions))
    return sorted(captions, key=lambda c: c.start)


def _unread_speech(
    lip_phones: Sequence[TimedPhone], audio_phones: Sequence[TimedPhone], captions: Sequence[Caption]
) -> list[Caption]:
    """Speech the audio has but the lips do not show at all: the worst sync failure, so it gets a line."""
    covered = [(c.start, c.end) for c in captions]
    missing = [
        p
        for p in audio_phones
        if p.phone != SILENCE and not any(s <= (p.start + p.end) / 2 <= e for s, e in covered)
    ]
    extra = []
    for segment in split_segments(missing):
        if len(segment) < 2 or not any(p.phone in VOWELS for p in segment):
            continue  # a stray consonant is CTC noise, not an unanimated word
        extra.append(
            Caption(
                start=round(segment[0].start, 3),
                end=round(segment[-1].end, 3),
                text="[no lip movement]",
                confidence=0.0,
                sync=0.0,
            )
        )
    return extra


# ---- export ---------------------------------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(caption: Caption, with_scores: bool, word_times: bool = False) -> str:
    """The cue's text; with a script's words, VTT puts each word's time inline (karaoke timing) and
    the review line lists every word's sync score (SRT also its times: SRT has no inline timing)."""
    text = caption.text.replace("\n", " ").strip() or "[...]"
    if word_times and caption.words:
        text = caption.words[0].text + "".join(
            f" <{_timestamp(w.start, '.')}>{w.text}" for w in caption.words[1:]
        )
    if with_scores:
        text += f"\n(confidence {caption.confidence:.2f}, sync {caption.sync:.2f})"
        if caption.words:
            times = "" if word_times else " {:.2f}-{:.2f}s"
            text += "\nwords: " + "; ".join(
                f"{w.text}{times.format(w.start, w.end)} sync {w.sync:.2f}" for w in caption.words
            )
    return text


def to_srt(captions: Sequence[Caption], with_scores: bool = True) -> str:
    blocks = [
        f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(max(c.end, c.start + 0.001), ',')}\n"
        f"{_cue_text(c, with_scores)}\n"
        for i, c in enumerate(captions, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(captions: Sequence[Caption], with_scores: bool = True) -> str:
    blocks = ["WEBVTT\n"]
    for i, c in enumerate(captions, start=1):
        text = _cue_text(c, with_scores, word_times=True).replace("-->", "->")
        blocks.append(
            f"{i}\n{_timestamp(c.start, '.')} --> {_timestamp(max(c.end, c.start + 0.001), '.')}\n{text}\n"
        )
    return "\n".join(blocks)


def to_json(animation: Animation) -> str:
    """Captions plus both phone streams, for tools that want to draw their own review timeline; a
    scripted take adds its word captions' times and the alignment (`script`)."""
    return json.dumps(
        {
            "fps": animation.fps,
            "duration": animation.duration,
            "captions": [asdict(c) for c in animation.captions],
            "lip_phonemes": [asdict(p) for p in animation.lip_phonemes],
            "audio_phonemes": [asdict(p) for p in animation.audio_phonemes],
            **({"script": animation.meta["script"]} if "script" in animation.meta else {}),
        },
        indent=1,
    )


def write_captions(animation: Animation, path: str | Path) -> Path:
    """Write by extension: .srt, .vtt or .json."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".srt":
        text = to_srt(animation.captions)
    elif suffix == ".vtt":
        text = to_vtt(animation.captions)
    elif suffix == ".json":
        text = to_json(animation)
    else:
        raise ValueError(f"caption file {path.name}: use a .srt, .vtt or .json extension")
    return write_text_atomic(path, text, "caption file")
