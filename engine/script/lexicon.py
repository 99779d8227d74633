"""Pronunciation overrides for names and made-up words, which no phonemizer says right.

A lexicon file is plain text, one word per line; `#` starts a comment:

    Zorblax   Z AO R B L AE K S      # phones of engine.phonemes.PHONES (ARPAbet, no stress)
    Nguyen  = win                    # or "sounds like": respelled, then phonemized in the take's language

Two files are picked up by themselves (the take's entries win):
  * per project: `dualface_lexicon.txt` in the audio file's folder;
  * per take: `<audio stem>.lexicon.txt` beside the audio (`line.lexicon.txt` for `line.wav`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.phonemes import PHONE_ID, SILENCE

PROJECT_LEXICON_NAME = "dualface_lexicon.txt"
TAKE_LEXICON_SUFFIX = ".lexicon.txt"


class LexiconError(ValueError):
    """A lexicon file line that cannot be read; the message names the file and line."""


@dataclass
class UserLexicon:
    """Word (case-folded) -> phones, or -> a respelling to phonemize instead of the word."""

    phones: dict[str, tuple[str, ...]] = field(default_factory=dict)
    respell: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.phones) + len(self.respell)

    def lookup(self, word: str) -> tuple[str, ...] | str | None:
        key = word.casefold()
        if key in self.phones:
            return self.phones[key]
        return self.respell.get(key)

    def update(self, other: UserLexicon) -> None:
        for key in other.phones:
            self.respell.pop(key, None)
        for key in other.respell:
            self.phones.pop(key, None)
        self.phones.update(other.phones)
        self.respell.update(other.respell)
        self.sources.extend(other.sources)


def parse_lexicon(lines: Iterable[str], source: str = "<lexicon>") -> UserLexicon:
    lexicon = UserLexicon(sources=[source])
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" in line:
            word, _, spelling = (part.strip() for part in line.partition("="))
            if not word or not spelling:
                raise LexiconError(f"{source}:{number}: write `word = sounds like`, got {raw.strip()!r}")
            lexicon.respell[word.casefold()] = spelling
            continue
        word, *phones = line.split()
        if not phones:
            raise LexiconError(f"{source}:{number}: {word!r} has no phones; write `word P H O N E S`")
        upper = tuple(p.upper().rstrip("012") for p in phones)
        unknown = [p for p, u in zip(phones, upper) if u not in PHONE_ID or u == SILENCE]
        if unknown:
            raise LexiconError(
                f"{source}:{number}: unknown phone(s) {unknown} for {word!r}; "
                "use the symbols of engine.phonemes.PHONES (ARPAbet) or `word = sounds like`"
            )
        lexicon.phones[word.casefold()] = upper
    return lexicon


def load_lexicon(path: str | Path) -> UserLexicon:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"cannot read lexicon {path}: {error}") from None
    return parse_lexicon(text.splitlines(), str(path))


def lexicon_paths_for(audio_path: str | Path) -> list[Path]:
    """The lexicon files that apply to a take recorded in `audio_path`, project first, take last."""
    audio = Path(audio_path)
    candidates = [audio.parent / PROJECT_LEXICON_NAME, audio.with_name(audio.stem + TAKE_LEXICON_SUFFIX)]
    return [p for p in candidates if p.is_file()]


def lexicon_for(audio_path: str | Path | None, extra: Iterable[str | Path] = ()) -> UserLexicon:
    """Merged overrides for a take: project file, take file, then any `extra` files, later ones win."""
    merged = UserLexicon()
    paths = [*(lexicon_paths_for(audio_path) if audio_path is not None else []), *map(Path, extra)]
    for path in paths:
        merged.update(load_lexicon(path))
    return merged
