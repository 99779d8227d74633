"""eSpeak NG phoneme mnemonics -> engine.phonemes.PHONES, per language.

eSpeak names phonemes per language (Kirshenbaum-like ASCII: "aI" = AY, "S" = SH, "**" = a Spanish
trill). The tables below were built from the symbols eSpeak NG 1.51 actually emits for each
language on varied text; `tests/test_tts.py` re-checks that generated sentences use no symbol
outside them. A symbol that is still unknown goes to its nearest class by its leading character
(and is counted in `FALLBACKS`), never dropped, so a new eSpeak release degrades instead of failing.

A symbol may map onto several phones ("aI@" in "fire" = AY + ER); each gets a share of the
symbol's time span.
"""

from __future__ import annotations

import logging
from collections import Counter

from engine.phonemes import PHONES, SILENCE

log = logging.getLogger(__name__)

Mapping = tuple[tuple[str, float], ...]  # (phone, share of the span), shares sum to 1

# Zero-width annotations: a language switch "(en)", palatalisation ";". Their (tiny) span goes to
# the phone before them.
MARKERS = frozenset({";", "(en)", "(fr)", "(es)", "(de)", "(it)", "_^_", "||", "|", "'", ",", "%", "="})
PAUSES = frozenset({"_", "_:", "_!", "_|", "_!_", "_::", "?"})  # "?" = glottal stop: a closed glottis

# Shared by every language (consonants with the same articulation everywhere).
_COMMON: dict[str, str] = {
    "b": "B", "d": "D", "f": "F", "g": "G", "h": "HH", "j": "Y", "k": "K", "l": "L", "m": "M",
    "n": "N", "p": "P", "s": "S", "t": "T", "v": "V", "w": "W", "z": "Z", "S": "SH", "Z": "ZH",
    "tS": "CH", "dZ": "JH", "N": "NG", "x": "X", "n^": "NY", "T": "TH", "D": "DH",
    "a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW", "y": "UE",
    "E": "EH", "I": "IH", "O": "AO", "U": "UH", "@": "AH", "@-": "AH",
}  # fmt: skip

_SPLITS_COMMON: dict[str, Mapping] = {
    "ts": (("T", 0.4), ("S", 0.6)),
    "dz": (("D", 0.4), ("Z", 0.6)),
    "pF": (("P", 0.4), ("F", 0.6)),
}

_EN: dict[str, str | Mapping] = {
    "0": "AA", "3": "ER", "3:": "ER", "@2": "AH", "@5": "AH", "@3": "ER", "A:": "AA", "A#": "AA",
    "I#": "IH", "I2": "IH", "O2": "AO", "O:": "AO", "OI": "OY", "V": "AH", "a": "AE", "a#": "AH",
    "aa": "AE", "aI": "AY", "aI2": "AY", "aU": "AW", "eI": "EY", "i": "IY", "i:": "IY", "oU": "OW",
    "u:": "UW", "u": "UW", "r": "R", "r-": "R", "t#": "T", "t2": "T", "t[": "T", "d#": "D", "n-": "N",
    "l/": "L", "l#": "L", "w#": "W", "z#": "Z", "z/2": "Z", "e": "EH", "o": "OW", "x": "HH",
    "@L": (("AH", 0.4), ("L", 0.6)),
    "A@": (("AA", 0.6), ("R", 0.4)),
    "O@": (("AO", 0.6), ("R", 0.4)),
    "o@": (("AO", 0.6), ("R", 0.4)),
    "U@": (("UH", 0.6), ("R", 0.4)),
    "e@": (("EH", 0.6), ("R", 0.4)),
    "i@": (("IH", 0.6), ("R", 0.4)),
    "i@3": (("IH", 0.6), ("R", 0.4)),
    "IR": (("IH", 0.6), ("R", 0.4)),
    "VR": (("AH", 0.6), ("R", 0.4)),
    "aI@": (("AY", 0.6), ("ER", 0.4)),
    "aI3": (("AY", 0.6), ("ER", 0.4)),
    "aU@": (("AW", 0.6), ("ER", 0.4)),
}  # fmt: skip

_ES: dict[str, str | Mapping] = {
    "r": "RR", "**": "RR", "R": "RR", "R2": "RR", "B": "B", "D": "DH", "Q": "G", "T": "TH",
    "J^": "JH", "l^": "L", "aU": "AW", "eI": "EY", "oI": "OY", "aI": "AY", "eU": "EH",
}  # fmt: skip

_DE: dict[str, str | Mapping] = {
    "3": "AH", "C": "X", "R": "RR", "r": "RR", "E:": "EH", "e:": "EY", "i:": "IY", "o:": "OW",
    "u:": "UW", "A:": "AA", "W": "UE", "Y": "UE", "Y:": "UE", "y:": "UE", "OY": "OY", "aI": "AY",
    "aU": "AW", "E2": "EH", "@2": "AH", "I2": "IH", "l#": "L", "A~": "AA", "A": "AA",
    "UR": (("UH", 0.6), ("AH", 0.4)),
}  # fmt: skip

_FR: dict[str, str | Mapping] = {
    "r": "RR", "R": "RR", "A~": "AA", "E~": "EH", "O~": "AO", "W": "UE", "W~": "UE", "Y": "UE",
    "a-": "AA", "e-": "EY", "e": "EY", "H": "W", "A": "AA", "o-": "OW", "i-": "IY", "y-": "UE", "z2": "Z",
}  # fmt: skip

_IT: dict[str, str | Mapping] = {
    "*": "RR", "r": "RR", "R": "RR", "l^": "L", "w2": "W", "j2": "Y", "e": "EY", "ss": "S",
    "ts2": (("T", 0.4), ("S", 0.6)),
    "dz2": (("D", 0.4), ("Z", 0.6)),
}  # fmt: skip

LANGUAGE_TABLES: dict[str, dict[str, str | Mapping]] = {
    "en": _EN,
    "es": _ES,
    "de": _DE,
    "fr": _FR,
    "it": _IT,
}

# Leading-character classes for symbols no table knows: the nearest sound by articulation.
_NEAREST_BY_LEAD: dict[str, str] = {
    "a": "AA", "A": "AA", "0": "AA", "e": "EH", "E": "EH", "i": "IY", "I": "IH", "o": "OW", "O": "AO",
    "u": "UW", "U": "UH", "@": "AH", "3": "ER", "V": "AH", "y": "UE", "Y": "UE", "W": "UE",
    "r": "R", "R": "RR", "*": "RR", "l": "L", "L": "L", "j": "Y", "J": "Y", "w": "W", "h": "HH",
    "C": "X", "x": "X", "X": "X", "Q": "G", "q": "K", "c": "K", "B": "B", "D": "DH", "T": "TH",
    "S": "SH", "Z": "ZH", "N": "NG", "n": "N", "m": "M", "b": "B", "p": "P", "d": "D", "t": "T",
    "g": "G", "k": "K", "f": "F", "v": "V", "s": "S", "z": "Z", "_": SILENCE,
}  # fmt: skip

FALLBACKS: Counter[tuple[str, str]] = Counter()  # (language, symbol) -> times the fallback was used


def _as_mapping(value: str | Mapping) -> Mapping:
    return ((value, 1.0),) if isinstance(value, str) else value


def lookup(symbol: str, language: str) -> Mapping | None:
    """The table entry for a symbol, or None when only the nearest-class fallback knows it."""
    if symbol in PAUSES:
        return ((SILENCE, 1.0),)
    table = LANGUAGE_TABLES.get(language, {})
    if symbol in table:
        return _as_mapping(table[symbol])
    if symbol in _SPLITS_COMMON:
        return _SPLITS_COMMON[symbol]
    if symbol in _COMMON:
        return _as_mapping(_COMMON[symbol])
    if symbol in _EN:  # eSpeak borrows English phonemes for loanwords ("Team", "Show") in other languages
        return _as_mapping(_EN[symbol])
    return None


def is_marker(symbol: str) -> bool:
    return symbol in MARKERS or (symbol.startswith("(") and symbol.endswith(")"))


def map_espeak_phone(symbol: str, language: str) -> list[tuple[str, tuple[float, float]]]:
    """Phones for one eSpeak symbol, each with its (start, end) fraction of the symbol's span.
    Markers return [] (the caller gives their span to the previous phone)."""
    if is_marker(symbol):
        return []
    mapping = lookup(symbol, language)
    if mapping is None:
        stripped = symbol.rstrip("#:;/-[]^0123456789~")
        mapping = lookup(stripped, language) if stripped else None
    if mapping is None:
        lead = _NEAREST_BY_LEAD.get(symbol[:1], "AH")
        FALLBACKS[(language, symbol)] += 1
        log.warning(
            "eSpeak symbol %r (%s) is not in the tables; using nearest class %s", symbol, language, lead
        )
        mapping = ((lead, 1.0),)
    out = []
    cursor = 0.0
    for phone, share in mapping:
        assert phone in PHONES, phone
        out.append((phone, (cursor, min(1.0, cursor + share))))
        cursor += share
    return out
