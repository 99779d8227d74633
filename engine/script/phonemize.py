"""Script words -> phones of engine.phonemes.PHONES, per word, in the take's language.

eSpeak NG (the library the corpus is synthesised with, so its phones match what the model learnt)
is asked for each word's phoneme mnemonics, which map onto the shared inventory with the corpus's own
tables. Without eSpeak NG (a stock Blender without the engine's tools) English words come from the
shipped CMU-dictionary lexicon; user lexicon entries win over both.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from dataclasses import dataclass

from engine.phonemes import SILENCE
from engine.script.lexicon import UserLexicon
from engine.script.normalize import Token

ESPEAK_LANGUAGE_VOICE = {"en": "en-us", "es": "es", "de": "de", "fr": "fr", "it": "it"}
_SEPARATOR_MODE = ord("|") << 8  # phoneme names separated by "|", words by spaces
_TEXT_UTF8 = 1
_STRESS = "',%="
_LOCK = threading.Lock()


class PhonemizeError(ValueError):
    """Words no available source can pronounce; the message lists them and the fix."""


@dataclass(frozen=True)
class WordPhones:
    token: Token
    phones: tuple[str, ...]
    source: str  # "user lexicon" | "espeak" | "lexicon"


def _espeak_library():
    """The process's eSpeak NG instance (shared with the TTS backend: it may be initialised only once)."""
    from engine.data.tts.espeak import _library

    library = _library()
    lib = library.lib
    if not getattr(lib, "_dualface_t2p_ready", False):
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib._dualface_t2p_ready = True
    return library


@functools.lru_cache(maxsize=1)
def espeak_available() -> bool:
    try:
        _espeak_library()
    except Exception:  # noqa: BLE001 -- any failure to load means "not available"
        return False
    return True


def _espeak_mnemonics(text: str, language: str) -> list[str]:
    """eSpeak's phoneme mnemonics for `text`, stress marks removed."""
    library = _espeak_library()
    lib = library.lib
    data = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(data))
    symbols: list[str] = []
    with library.lock, _LOCK:
        if lib.espeak_SetVoiceByName(ESPEAK_LANGUAGE_VOICE[language].encode()) != 0:
            raise PhonemizeError(f"eSpeak NG has no voice for language {language!r}")
        while pointer.value:
            clause = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _TEXT_UTF8, _SEPARATOR_MODE)
            if not clause:
                break
            for word in clause.decode("utf-8", "replace").split():
                symbols.extend(s.lstrip(_STRESS) for s in word.split("|"))
    return [s for s in symbols if s]


@functools.lru_cache(maxsize=65536)
def espeak_word_phones(spoken: str, language: str) -> tuple[str, ...]:
    from engine.data.tts.espeak_phones import map_espeak_phone

    phones: list[str] = []
    for symbol in _espeak_mnemonics(spoken, language):
        phones.extend(p for p, _ in map_espeak_phone(symbol, language) if p != SILENCE)
    return tuple(phones)


@functools.lru_cache(maxsize=1)
def _shipped_english() -> dict[str, tuple[str, ...]]:
    from engine.lexicon import english_lexicon

    table: dict[str, tuple[str, ...]] = {}
    for word, phones in english_lexicon().entries:
        table.setdefault(word.casefold(), phones)
    return table


def phonemizer_name(language: str) -> str:
    """Which source will pronounce words in `language` on this machine (shown in the UI)."""
    if espeak_available():
        return "espeak-ng"
    return "shipped English lexicon" if language == "en" else "none"


def _lexicon_phones(spoken: str) -> tuple[str, ...] | None:
    table = _shipped_english()
    phones: list[str] = []
    for word in spoken.split():
        entry = table.get(word.casefold().strip("'"))
        if entry is None:
            return None
        phones.extend(entry)
    return tuple(phones)


def _word_phones(token: Token, language: str, user: UserLexicon) -> tuple[tuple[str, ...] | None, str]:
    override = user.lookup(token.display) or user.lookup(token.spoken)
    if isinstance(override, tuple):
        return override, "user lexicon"
    spoken = override if isinstance(override, str) else token.spoken
    if espeak_available():
        return espeak_word_phones(spoken, language) or None, "espeak"
    if language == "en":
        return _lexicon_phones(spoken), "lexicon"
    return None, "none"


def phonemize(tokens: list[Token], language: str, user: UserLexicon | None = None) -> list[WordPhones]:
    """Phones for every token; words no source knows raise `PhonemizeError` naming them."""
    user = user or UserLexicon()
    words: list[WordPhones] = []
    missing: list[str] = []
    for token in tokens:
        phones, source = _word_phones(token, language, user)
        if not phones:
            missing.append(token.display)
            continue
        words.append(WordPhones(token, phones, source))
    if missing:
        if not espeak_available() and language != "en":
            raise PhonemizeError(
                f"script mode in {language!r} needs eSpeak NG (not found here); install it "
                "(`apt-get install espeak-ng`) or animate through the worker"
            )
        raise PhonemizeError(
            f"no pronunciation for {', '.join(repr(w) for w in missing[:10])}; add them to a lexicon "
            "file (`word P H O N E S` or `word = sounds like`, see docs/script-mode.md)"
            + ("" if espeak_available() else " or install eSpeak NG (`apt-get install espeak-ng`)")
        )
    return words
