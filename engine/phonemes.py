"""One phoneme inventory shared by every TTS engine, language, the CTC heads and the captions.

ARPAbet (no stress) covers English; a few extra symbols cover the sounds of Spanish, German,
French and Italian that have no close English match. Index 0 is the CTC blank.
"""

from __future__ import annotations

SILENCE = "sil"
BLANK = "<blank>"

# One sound class per line; the formatter would split this into 44 lines.
# fmt: off
PHONES: tuple[str, ...] = (
    SILENCE,
    # vowels and diphthongs
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
    # consonants
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
    "T", "TH", "V", "W", "Y", "Z", "ZH",
    # beyond English: trill/tap r, velar/uvular fricative, front rounded vowel, palatal nasal
    "RR", "X", "UE", "NY",
)
# fmt: on
VOCAB: tuple[str, ...] = (BLANK, *PHONES)
PHONE_ID: dict[str, int] = {p: i for i, p in enumerate(VOCAB)}

VOWELS = frozenset(
    {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW", "UE"}
)
BILABIALS = frozenset({"P", "B", "M"})
LABIODENTALS = frozenset({"F", "V"})
ROUNDED = frozenset({"UW", "UH", "OW", "OY", "AO", "W", "UE", "SH", "ZH", "CH", "JH", "ER"})


def phone_id(phone: str) -> int:
    """Vocabulary index of a phone; unknown symbols are an error, never silently dropped."""
    try:
        return PHONE_ID[phone]
    except KeyError:
        raise ValueError(f"unknown phone {phone!r}; the inventory is engine.phonemes.PHONES") from None
