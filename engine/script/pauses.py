"""Pauses the aligners miss: cut phones short where the audio goes quiet.

A CTC head fills a pause with blanks, and a path of blanks belongs to the phone before it; the
pocketsphinx word graph has no optional silence between words. Either way the last phone before a
pause would span it and the mouth would hang open through the silence. Quiet runs in the audio
(energy far under the clip's speech level, long enough not to be a stop closure) give the pause back.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE
from engine.script.align import AlignedPhone, Alignment

HOP_S = 0.01
QUIET_RATIO = 0.03  # under 3 % of the loud frames' RMS (-30 dB) is silence
MIN_QUIET_S = 0.12  # quieter runs than this are stop closures, not pauses
MIN_PHONE_S = 0.04  # a phone keeps at least this much when a pause is cut out of it


def quiet_runs(audio: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE) -> list[tuple[float, float]]:
    """(start, end) seconds of every quiet stretch at least MIN_QUIET_S long."""
    hop = int(sample_rate * HOP_S)
    n = len(audio) // hop
    if n == 0:
        return []
    frames = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = float(np.percentile(rms, 95))
    if loud <= 0:
        return [(0.0, n * HOP_S)]
    quiet = np.concatenate([[False], rms < QUIET_RATIO * loud, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = []
    for first, last in zip(edges[::2], edges[1::2]):
        if (last - first) * HOP_S >= MIN_QUIET_S:
            runs.append((first * HOP_S, last * HOP_S))
    return runs


def _carve(phones: list[AlignedPhone], lo: float, hi: float) -> None:
    """Give the quiet run [lo, hi] back as silence, in place: the phone it begins in ends at `lo`;
    when the run ends inside that phone, the following phone starts at `hi` (speech resumes there)."""
    for i, phone in enumerate(phones):
        if not (phone.start + MIN_PHONE_S <= lo < phone.end):
            continue
        old_end = phone.end
        phones[i] = AlignedPhone(phone.phone, phone.start, lo)
        following = i + 1 < len(phones) and phones[i + 1].start >= old_end - 1e-6
        if hi < old_end - HOP_S and following:
            nxt = phones[i + 1]
            phones[i + 1] = AlignedPhone(nxt.phone, hi, nxt.end)
        return


def carve_pauses(alignment: Alignment, audio: np.ndarray, sample_rate: int = MODEL_SAMPLE_RATE) -> Alignment:
    """The alignment with phones cut back out of the audio's pauses (the gaps become silence)."""
    runs = quiet_runs(audio, sample_rate)
    if not runs:
        return alignment
    flat = [p for w in alignment.words for p in w.phones]
    for lo, hi in runs:
        _carve(flat, lo, hi)
    words = []
    cursor = 0
    for word in alignment.words:
        phones = tuple(flat[cursor : cursor + len(word.phones)])
        cursor += len(word.phones)
        words.append(replace(word, phones=phones, start=phones[0].start, end=phones[-1].end))
    return replace(alignment, words=tuple(words))
