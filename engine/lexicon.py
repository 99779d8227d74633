"""Turn lip-read phones back into English words, tolerating the errors a lip reader makes.

The lexicon is the most frequent words of the CMU dictionary shipped with pocketsphinx 5.1.1
(`cmudict-en-us.dict`), ranked by the unigram probabilities of pocketsphinx's `en-us.lm.bin`, stored
as a small text asset so inference needs neither pocketsphinx nor the 3 MB dictionary.
Rebuild with `python -m engine.lexicon --words 6000`.

Matching is edit distance with a one-deletion index (each pronunciation is also filed under every
variant with one phone removed), so a span of phones finds its near words by a few dict look-ups
instead of a scan over the whole vocabulary.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.metrics import edit_distance  # one Levenshtein for captions and evaluation
from engine.phonemes import PHONE_ID, SILENCE, VOWELS

LEXICON_PATH = Path(__file__).resolve().parent / "assets" / "lexicon_en.txt"
MAX_WORD_PHONES = 10
UNKNOWN_PHONE_COST = 1.0  # the cost of leaving a phone unexplained by any word
WORD_COST = 0.35  # per word, so one long word beats several short ones that spell the same phones


@dataclass(frozen=True)
class WordMatch:
    word: str
    start: int  # index of the first phone it covers
    end: int  # one past the last phone
    distance: int  # phone edits between the span and the word's pronunciation


class Lexicon:
    """Frequency-ordered pronunciations with a fuzzy phone-span -> word look-up."""

    def __init__(self, entries: Sequence[tuple[str, tuple[str, ...]]]):
        self.entries = list(entries)
        self._exact: dict[tuple[str, ...], tuple[int, str]] = {}
        self._deletions: dict[tuple[str, ...], list[tuple[int, str, tuple[str, ...]]]] = {}
        for rank, (word, phones) in enumerate(self.entries):
            self._exact.setdefault(phones, (rank, word))
            for variant in _one_deletions(phones):
                self._deletions.setdefault(variant, []).append((rank, word, phones))

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, path: str | Path = LEXICON_PATH) -> Lexicon:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"lexicon {path} is missing; rebuild it with `python -m engine.lexicon`")
        entries = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                word, *phones = line.split()
                entries.append((word, tuple(phones)))
        return cls(entries)

    def nearest(self, phones: Sequence[str]) -> tuple[str, int] | None:
        """The most frequent word within 2 edits of `phones` (and within half its length), or None.

        Spans under 3 phones match exactly or not at all: one edit away from two phones lie hundreds
        of words, so a fuzzy match there is a guess, and the slowest one to make."""
        key = tuple(phones)
        if key in self._exact:
            return self._exact[key][1], 0
        if len(key) < 3:
            return None
        best: tuple[int, int, str] | None = None  # (distance, rank, word)
        for variant in (key, *_one_deletions(key)):
            for rank, word, pron in self._deletions.get(variant, ()):
                distance = edit_distance(key, pron)
                if best is None or (distance, rank) < best[:2]:
                    best = (distance, rank, word)
        if best is None or best[0] > max(1, len(key) // 2):
            return None
        return best[2], best[0]

    def segment(self, phones: Sequence[str]) -> list[WordMatch | str]:
        """Split a pause-free run of phones into words; phones no word explains stay as strings.

        Dynamic programming over span ends: each span costs its edit distance (or one unit per phone
        left unexplained) plus a per-word cost, and the cheapest cover wins.
        """
        n = len(phones)
        best_cost = [0.0] + [float("inf")] * n
        back: list[tuple[int, tuple[str, int] | None]] = [(0, None)] * (n + 1)
        for end in range(1, n + 1):
            # one unexplained phone
            cost = best_cost[end - 1] + UNKNOWN_PHONE_COST
            if cost < best_cost[end]:
                best_cost[end], back[end] = cost, (end - 1, None)
            for start in range(max(0, end - MAX_WORD_PHONES - 1), end):
                match = self._cached_nearest(tuple(phones[start:end]))
                if match is None:
                    continue
                cost = best_cost[start] + match[1] + WORD_COST
                if cost < best_cost[end]:
                    best_cost[end], back[end] = cost, (start, match)
        pieces: list[WordMatch | str] = []
        end = n
        while end > 0:
            start, match = back[end]
            if match is None:
                pieces.append(phones[start])
            else:
                pieces.append(WordMatch(match[0], start, end, match[1]))
            end = start
        return pieces[::-1]

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one lexicon per process, spans repeat a lot
    def _cached_nearest(self, phones: tuple[str, ...]) -> tuple[str, int] | None:
        return self.nearest(phones)


def _one_deletions(phones: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {phones[:i] + phones[i + 1 :] for i in range(len(phones))} if len(phones) > 1 else set()


@functools.lru_cache(maxsize=1)
def english_lexicon() -> Lexicon:
    return Lexicon.load(LEXICON_PATH)


def build_lexicon(n_words: int, out: Path = LEXICON_PATH) -> int:
    """Write the `n_words` most frequent CMU-dictionary words with their pronunciations."""
    import os

    import pocketsphinx

    model_dir = Path(pocketsphinx.get_model_path())
    dictionary = model_dir / "en-us" / "cmudict-en-us.dict"
    if not dictionary.exists():
        dictionary = model_dir / "cmudict-en-us.dict"
    pocketsphinx.set_loglevel("FATAL")
    lm = pocketsphinx.NGramModel(
        pocketsphinx.Config(), pocketsphinx.LogMath(), os.path.join(model_dir, "en-us", "en-us.lm.bin")
    )
    prons: dict[str, list[tuple[str, ...]]] = {}
    for line in dictionary.read_text(encoding="utf-8").splitlines():
        head, *raw = line.split()
        word = head.split("(")[0]
        if not word.replace("'", "").isalpha() or word.startswith("'") or not raw:
            continue  # abbreviations, numbers and clipped forms ('bout) read badly in captions
        phones = tuple(p.rstrip("012") for p in raw)
        if len(phones) > MAX_WORD_PHONES or any(p not in PHONE_ID or p == SILENCE for p in phones):
            continue
        prons.setdefault(word, []).append(phones)
    ranked = sorted(prons, key=lambda w: (-lm.prob([w]), w))[:n_words]
    lines = [
        "# word phones...  (most frequent first; from pocketsphinx 5.1.1 cmudict-en-us.dict ranked by "
        "en-us.lm.bin unigrams; rebuild: python -m engine.lexicon)"
    ]
    for word in ranked:
        lines.extend(f"{word} {' '.join(p)}" for p in prons[word])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(ranked)


def syllables(phones: Sequence[str]) -> list[list[str]]:
    """Group phones around vowel nuclei (consonants join the following vowel, trailing ones the last)."""
    groups: list[list[str]] = []
    pending: list[str] = []
    for phone in phones:
        pending.append(phone)
        if phone in VOWELS:
            groups.append(pending)
            pending = []
    if pending:
        if groups:
            groups[-1].extend(pending)
        else:
            groups.append(pending)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the English caption lexicon asset.")
    parser.add_argument("--words", type=int, default=6000, help="how many of the most frequent words to keep")
    parser.add_argument("--out", type=Path, default=LEXICON_PATH)
    args = parser.parse_args(argv)
    count = build_lexicon(args.words, args.out)
    print(f"wrote {count} words to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
