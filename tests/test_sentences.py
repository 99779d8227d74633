"""The sentence grammar: deterministic, grammatical slot filling, phone coverage, stable hold-out."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.sentences import GRAMMARS, LANGUAGE_PHONES, LANGUAGES, generate_sentences, is_held_out
from engine.data.splits import normalize_sentence
from engine.data.tts import Voice, synthesize
from engine.data.tts.espeak_phones import FALLBACKS
from engine.phonemes import PHONES

COVERAGE_VOICES = {"en": "en-us", "es": "es", "de": "de", "fr": "fr", "it": "it"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_same_rng_same_sentences(language: str) -> None:
    a = generate_sentences(language, 30, np.random.default_rng(7))
    b = generate_sentences(language, 30, np.random.default_rng(7))
    c = generate_sentences(language, 30, np.random.default_rng(8))
    assert a == b and a != c
    assert len(a) == 30 and all(isinstance(s, str) and s.strip() for s in a)


@pytest.mark.parametrize("language", LANGUAGES)
def test_sentences_are_filled_distinct_and_capitalised(language: str) -> None:
    sentences = generate_sentences(language, 200, np.random.default_rng(0))
    assert len({normalize_sentence(s) for s in sentences}) == len(sentences), "duplicates"
    for s in sentences:
        assert "{" not in s and "}" not in s, s
        assert s[-1] in ".?!", s
        first = s.lstrip("¿")[0]
        assert first.isupper() or first.isdigit(), s


def test_romance_adjectives_agree_with_the_subject() -> None:
    rng = np.random.default_rng(3)
    grammar = GRAMMARS["es"]
    feminine = {phrase for phrase, g in grammar.subjects if g == "f"}
    fem_forms = {f for m, f in grammar.adjectives if m != f}
    masc_forms = {m for m, f in grammar.adjectives if m != f}
    checked = 0
    for s in generate_sentences("es", 300, rng):
        if "parece" not in s:
            continue
        subject = s.split(" parece ")[0]
        adjective = s.split(" parece ")[1].split()[0].rstrip(".?")
        is_fem = subject[0].lower() + subject[1:] in feminine
        assert adjective not in (masc_forms if is_fem else fem_forms), s
        checked += 1
    assert checked > 10


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
def test_fifty_sentences_cover_every_phone_of_the_language(language: str) -> None:
    FALLBACKS.clear()
    seen: set[str] = set()
    voice = Voice("espeak", COVERAGE_VOICES[language], language)
    for text in generate_sentences(language, 50, np.random.default_rng(0)):
        seen.update(p.phone for p in synthesize(text, voice).phones)
    missing = sorted(LANGUAGE_PHONES[language] - seen)
    assert not missing, f"{language}: 50 sentences never produce {missing}"
    assert not FALLBACKS, f"eSpeak symbols missing from the {language} table: {dict(FALLBACKS)}"


def test_english_inventory_is_all_of_arpabet() -> None:
    extras = {"RR", "X", "UE", "NY"}
    assert LANGUAGE_PHONES["en"] == set(PHONES) - extras


def test_held_out_is_stable_and_ignores_case_and_punctuation() -> None:
    sentences = generate_sentences("en", 400, np.random.default_rng(1))
    held = [s for s in sentences if is_held_out(s, 0.1)]
    assert 0.04 * len(sentences) < len(held) < 0.2 * len(sentences)
    for s in held:
        assert is_held_out(s.upper().replace(".", " !"), 0.1)
    assert not any(is_held_out(s, 0.0) for s in sentences)
    assert all(is_held_out(s, 1.0) for s in sentences)
    # a different salt gives a different (but equally sized) set
    other = [s for s in sentences if is_held_out(s, 0.1, salt="v2")]
    assert set(other) != set(held)


def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="choose one of"):
        generate_sentences("xx", 3, rng)
    with pytest.raises(ValueError, match="non-negative"):
        generate_sentences("en", -1, rng)
    with pytest.raises(TypeError, match="default_rng"):
        generate_sentences("en", 3, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fraction"):
        is_held_out("Hello.", 1.5)
    assert generate_sentences("en", 0, rng) == []
