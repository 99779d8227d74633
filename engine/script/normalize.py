"""Script text -> spoken words: what the captions show and what the phonemizer reads, per word.

Scripts hold digits, abbreviations, symbols and stage punctuation. Each written word becomes one
`Token`: `display` is what the captions print (the script's own spelling, outer punctuation removed),
`spoken` is what is said ("Dr." -> "doctor", "42" stays "42" because eSpeak NG reads numbers in every
corpus language itself, "%" -> "percent"). Bracketed stage directions ("[laughs]", "(beat)") are not
spoken and are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from engine.data.sentences import LANGUAGES

MAX_SCRIPT_CHARS = 20_000  # ~20 minutes of speech; longer scripts belong in several takes

# Abbreviations a script uses that a phonemizer may spell out letter by letter.
ABBREVIATIONS: dict[str, dict[str, str]] = {
    "en": {
        "dr.": "doctor", "mr.": "mister", "mrs.": "missus", "ms.": "miz", "st.": "saint", "jr.": "junior",
        "sr.": "senior", "vs.": "versus", "etc.": "etcetera", "e.g.": "for example", "i.e.": "that is",
        "approx.": "approximately", "no.": "number", "prof.": "professor", "capt.": "captain", "ok": "okay",
    },
    "es": {"sr.": "señor", "sra.": "señora", "srta.": "señorita", "dr.": "doctor", "dra.": "doctora",
           "ud.": "usted", "uds.": "ustedes", "etc.": "etcétera", "p.ej.": "por ejemplo"},
    "de": {"dr.": "doktor", "hr.": "herr", "fr.": "frau", "z.b.": "zum beispiel", "usw.": "und so weiter",
           "bzw.": "beziehungsweise", "ca.": "circa", "nr.": "nummer", "d.h.": "das heißt"},
    "fr": {"m.": "monsieur", "mme": "madame", "mlle": "mademoiselle", "dr": "docteur", "dr.": "docteur",
           "etc.": "et cetera", "st": "saint", "ste": "sainte"},
    "it": {"sig.": "signor", "sig.ra": "signora", "dott.": "dottor", "prof.": "professor", "ecc.": "eccetera",
           "p.es.": "per esempio"},
}  # fmt: skip

SYMBOLS: dict[str, dict[str, str]] = {
    "en": {"%": "percent", "&": "and", "+": "plus", "@": "at", "$": "dollars", "€": "euros", "£": "pounds"},
    "es": {"%": "por ciento", "&": "y", "+": "más", "@": "arroba", "$": "dólares", "€": "euros"},
    "de": {"%": "prozent", "&": "und", "+": "plus", "@": "at", "$": "dollar", "€": "euro"},
    "fr": {"%": "pour cent", "&": "et", "+": "plus", "@": "arobase", "$": "dollars", "€": "euros"},
    "it": {"%": "per cento", "&": "e", "+": "più", "@": "chiocciola", "$": "dollari", "€": "euro"},
}  # fmt: skip

# Evidence for language detection: letters only some languages use, and their commonest short words.
_LETTERS: dict[str, str] = {"es": "ñ¿¡áíóú", "de": "äöüß", "fr": "çœàâêëîïôûùÿè", "it": "àèìòù"}
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are you of to it that was what this with have not for".split()),
    "es": frozenset("el la los las que es y en un una por con para no del está muy".split()),
    "de": frozenset("der die das und ist nicht ich ein eine zu mit den dem sie auf auch".split()),
    "fr": frozenset("le la les et est un une des que pas je vous il dans pour avec du".split()),
    "it": frozenset("il lo la gli le e è un una che non di per con sono della molto".split()),
}

_QUOTES = {ord("\u2018"): "'", ord("\u2019"): "'", ord("\u201c"): '"', ord("\u201d"): '"'}
_STAGE_DIRECTION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\{[^}]*\}|<[^>]*>")
_NUMBER_PARTS = re.compile(r"(\d+(?:[.,]\d+)*)")


@dataclass(frozen=True)
class Token:
    """One written word of the script: shown as `display`, said as `spoken` (one or more words)."""

    display: str
    spoken: str
    index: int  # position among the script's words


def check_language(language: str) -> str:
    lang = str(language).strip().lower()[:2]
    if lang not in LANGUAGES:
        raise ValueError(f"language {language!r} is not supported; choose one of: {', '.join(LANGUAGES)}")
    return lang


def clean_script(text: str) -> str:
    """Reject unusable scripts with a clear message; fold typographic quotes and whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if len(text) > MAX_SCRIPT_CHARS:
        raise ValueError(
            f"the script has {len(text)} characters (limit {MAX_SCRIPT_CHARS}); split it over several takes"
        )
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_QUOTES)
    text = _STAGE_DIRECTION.sub(" ", text)
    text = " ".join(text.split())
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        raise ValueError("the script has no words (only punctuation, symbols or stage directions)")
    return text


def detect_language(text: str) -> str:
    """The corpus language the text is unambiguously written in, else "en".

    Votes come from language-specific letters and common short words; a language wins only with
    at least two votes and twice the runner-up's, so short or mixed lines stay English.
    """
    lowered = text.lower()
    words = re.findall(r"[^\W\d_]+", lowered)
    votes = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    for lang, letters in _LETTERS.items():
        votes[lang] += sum(lowered.count(c) for c in letters)
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= 2 and top >= 2 * second:
        return best
    return "en"


def _strip_punctuation(word: str) -> str:
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS" and word[start] not in "$€£":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS" and word[end - 1] not in "%":
        end -= 1
    return word[start:end]


def _spoken(word: str, language: str) -> str:
    lowered = word.lower()
    abbreviations = ABBREVIATIONS[language]
    if lowered in abbreviations:
        return abbreviations[lowered]
    if lowered.rstrip(".") + "." in abbreviations and lowered.endswith("."):
        return abbreviations[lowered.rstrip(".") + "."]
    symbols = SYMBOLS[language]
    if len(word) > 1 and word[0] in "$€£" and word[1].isdigit():
        word = word[1:] + " " + word[0]  # "$42" is said "42 dollars"
    parts = []
    for piece in _NUMBER_PARTS.split(word):
        if not piece:
            continue
        if piece[0].isdigit():
            parts.append(piece.replace(",", "") if language == "en" else piece)
            continue
        spelled = "".join(f" {symbols[c]} " if c in symbols else c for c in piece)
        parts.append(spelled)
    spoken = " ".join(" ".join(parts).replace("-", " ").split())
    return spoken.strip(".'\"")


def tokenize(text: str, language: str) -> list[Token]:
    """The script's words in order, each with what is said for it; unsayable tokens are dropped."""
    language = check_language(language)
    tokens: list[Token] = []
    for raw in clean_script(text).split():
        bare = raw.strip(".,;:!?\"'")
        if bare in SYMBOLS[language]:  # a symbol standing alone ("rock & roll") is a spoken word
            tokens.append(Token(display=bare, spoken=SYMBOLS[language][bare], index=len(tokens)))
            continue
        display = _strip_punctuation(raw)
        if not display or not any(unicodedata.category(c)[0] in "LN" for c in display):
            continue
        spoken = _spoken(display if not raw.endswith(".") else display + ".", language)
        if spoken:
            tokens.append(Token(display=display, spoken=spoken, index=len(tokens)))
    if not tokens:
        raise ValueError("the script has no words to align (only punctuation or stage directions)")
    return tokens
