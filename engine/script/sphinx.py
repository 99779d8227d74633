"""Forced alignment with pocketsphinx's en-us acoustic model (trained on recorded human speech).

Optional: imported only when asked for, and only for English. Words the CMU dictionary lacks (names,
numbers) are added under a private name with the phonemizer's phones, so every script word aligns.
Times come at pocketsphinx's 100 frames per second.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from engine.script.align import AlignedPhone, AlignedWord, Alignment
from engine.script.phonemize import WordPhones

SPHINX_FRAME_RATE = 100.0
SPHINX_SAMPLE_RATE = 16000  # the rate pocketsphinx's acoustic model was trained at
# Our inventory's extra phones have no CMU symbol: the nearest sound it has.
_TO_CMU = {"RR": "R", "X": "HH", "UE": "UW", "NY": "N"}
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def sphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _decoder():
    import pocketsphinx

    return pocketsphinx.Decoder(samprate=SPHINX_SAMPLE_RATE, bestpath=False, loglevel="FATAL")


def _dictionary_words(decoder, words: list[WordPhones]) -> list[list[str]]:
    """Per script word, the dictionary words pocketsphinx aligns for it."""
    out = []
    for word in words:
        spoken = [w.lower().strip("'\".,;:!?") for w in word.token.spoken.split()]
        if word.source != "user lexicon" and all(w and decoder.lookup_word(w) for w in spoken):
            out.append(spoken)
            continue
        phones = [_TO_CMU.get(p, p) for p in word.phones]
        name = "dualface_" + "_".join(phones).lower()  # one entry per pronunciation, reused across takes
        if decoder.lookup_word(name) is None:
            decoder.add_word(name, " ".join(phones), False)
        out.append([name])
    return out


def _run(decoder, pcm: bytes, groups: list[list[str]], phones: bool) -> list[list[tuple[str, float, float]]]:
    """Per dictionary word, its (phone, start, end) list; with `phones=False` one "WORD" entry each."""
    decoder.set_align_text(" ".join(w for group in groups for w in group))
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        raise RuntimeError("pocketsphinx found no path through the script for this audio")
    rate = SPHINX_FRAME_RATE
    if not phones:
        return [
            [("WORD", seg.start_frame / rate, (seg.end_frame + 1) / rate)]
            for seg in decoder.seg()
            if not seg.word.startswith(("<", "["))
        ]
    try:
        decoder.set_alignment()
    except RuntimeError as error:
        raise RuntimeError(f"pocketsphinx could not align the script's phones: {error}") from None
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    result = decoder.get_alignment()
    if result is None:
        raise RuntimeError("pocketsphinx could not align the script to this audio")
    return [
        [(p.name, p.start / rate, (p.start + p.duration) / rate) for p in w]
        for w in result
        if not w.name.startswith(("<", "["))
    ]


def sphinx_align(
    audio: np.ndarray, words: list[WordPhones], sample_rate: int = SPHINX_SAMPLE_RATE, phones: bool = True
) -> Alignment:
    """Align the script words to 16 kHz mono float audio; raises RuntimeError when it cannot.

    `phones=False` runs only the word pass (half the cost): each word then carries one phone named
    "WORD" spanning it, for the caller to fill with phones timed another way.
    """
    if sample_rate != SPHINX_SAMPLE_RATE:
        raise ValueError("pocketsphinx alignment needs 16 kHz audio")
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    with _LOCK:
        decoder = _decoder()
        groups = _dictionary_words(decoder, words)
        entries = _run(decoder, pcm, groups, phones)
    duration = len(audio) / sample_rate
    aligned = []
    cursor = 0
    for word, group in zip(words, groups):
        mine = [p for entry in entries[cursor : cursor + len(group)] for p in entry if p[0] != "SIL"]
        cursor += len(group)
        if not mine:
            raise RuntimeError(f"pocketsphinx lost the word {word.token.display!r}")
        timed = tuple(AlignedPhone(name, start, end) for name, start, end in mine)
        aligned.append(
            AlignedWord(word.token.display, timed[0].start, timed[-1].end, timed, 1.0, word.token.index)
        )
    if cursor != len(entries):
        raise RuntimeError("pocketsphinx returned a different number of words than the script has")
    return Alignment(tuple(aligned), "pocketsphinx", duration)
