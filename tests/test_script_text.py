"""Script mode, text side: normalisation, language detection, user lexicons and phonemization."""

from __future__ import annotations

import pytest

from engine.script.lexicon import LexiconError, lexicon_for, parse_lexicon
from engine.script.normalize import check_language, detect_language, tokenize
from engine.script.phonemize import PhonemizeError, espeak_available, phonemize
from engine.script.take import prepare_script, resolve_language

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="eSpeak NG is not installed")


def test_tokens_keep_the_written_word_and_say_abbreviations_symbols_and_numbers():
    tokens = tokenize('Dr. Smith paid $42 (sighs) for 3 "peppers" [beat] & left, OK?', "en")
    assert [t.display for t in tokens] == [
        "Dr",
        "Smith",
        "paid",
        "$42",
        "for",
        "3",
        "peppers",
        "&",
        "left",
        "OK",
    ]
    spoken = {t.display: t.spoken for t in tokens}
    assert spoken["Dr"] == "doctor" and spoken["OK"] == "okay" and spoken["&"] == "and"
    assert spoken["$42"] == "42 dollars"  # said in speaking order
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert [t.spoken for t in tokenize("z.B. 12 %", "de")] == ["zum beispiel", "12", "prozent"]


def test_scripts_without_words_and_unknown_languages_are_refused():
    with pytest.raises(ValueError, match="no words"):
        tokenize("[laughs] ... !!", "en")
    with pytest.raises(ValueError, match="not supported"):
        tokenize("hello", "klingon")
    with pytest.raises(ValueError, match="split it over several takes"):
        tokenize("word " * 5000, "en")
    assert check_language("DE") == "de"


def test_language_is_detected_only_when_the_text_is_unambiguous():
    assert detect_language("Der Bäcker backt heute die Brötchen nicht.") == "de"
    assert detect_language("¿Dónde está la biblioteca? No es muy lejos.") == "es"
    assert detect_language("Ça va très bien, merci pour le café.") == "fr"
    assert detect_language("Non è molto lontano, il museo è vicino.") == "it"
    assert detect_language("The cat sat on the mat.") == "en"
    assert detect_language("Hola") == "en"  # too little evidence: English
    assert resolve_language("Der Hund ist nicht hier und die Katze auch nicht", "auto") == "de"
    assert resolve_language("Der Hund ist nicht hier", "it") == "it"  # an explicit language wins


def test_lexicon_files_parse_phones_and_respellings_and_name_bad_lines(tmp_path):
    lexicon = parse_lexicon(["# names", "Zorblax  Z AO1 R B L AE K S", "Nguyen = win", ""], "x.txt")
    assert lexicon.lookup("ZORBLAX") == ("Z", "AO", "R", "B", "L", "AE", "K", "S")
    assert lexicon.lookup("nguyen") == "win" and lexicon.lookup("other") is None
    with pytest.raises(LexiconError, match=r"x.txt:1: unknown phone.*QQ"):
        parse_lexicon(["Zed Z QQ"], "x.txt")
    with pytest.raises(LexiconError, match=r"x.txt:2: 'Zed' has no phones"):
        parse_lexicon(["# c", "Zed"], "x.txt")
    # project file in the audio's folder, take file beside it; the take's entry wins
    (tmp_path / "dualface_lexicon.txt").write_text("Zed = zee\nKara K AA R AH\n", encoding="utf-8")
    (tmp_path / "line.lexicon.txt").write_text("Zed Z EH D\n", encoding="utf-8")
    merged = lexicon_for(tmp_path / "line.wav")
    assert merged.lookup("zed") == ("Z", "EH", "D") and merged.lookup("kara") == ("K", "AA", "R", "AH")
    assert len(merged.sources) == 2
    assert len(lexicon_for(tmp_path / "other" / "x.wav")) == 0


@needs_espeak
def test_phonemize_gives_inventory_phones_per_word_and_user_entries_win():
    words = phonemize(
        tokenize("Peter met Zorblax.", "en"), "en", parse_lexicon(["Zorblax Z AO R B L AE K S"])
    )
    assert [w.token.display for w in words] == ["Peter", "met", "Zorblax"]
    assert words[0].phones[0] == "P" and "M" in words[1].phones
    assert words[2].phones == ("Z", "AO", "R", "B", "L", "AE", "K", "S") and words[2].source == "user lexicon"
    german = phonemize(tokenize("Brötchen", "de"), "de")
    assert german[0].phones[0] == "B" and "UE" in german[0].phones  # a front rounded vowel, not English


def test_without_espeak_english_comes_from_the_shipped_lexicon(monkeypatch):
    import engine.script.phonemize as phonemize_module

    monkeypatch.setattr(phonemize_module, "espeak_available", lambda: False)
    words = phonemize_module.phonemize(tokenize("the people", "en"), "en")
    assert words[0].source == "lexicon" and words[1].phones[0] == "P"
    with pytest.raises(PhonemizeError, match="'Zorblax'.*lexicon file"):
        phonemize_module.phonemize(tokenize("the Zorblax", "en"), "en")
    with pytest.raises(PhonemizeError, match="needs eSpeak NG"):
        phonemize_module.phonemize(tokenize("der Hund", "de"), "de")


def test_a_script_file_beside_the_audio_is_picked_up_and_an_empty_text_opts_out(tmp_path):
    audio = tmp_path / "line.wav"
    audio.write_bytes(b"")
    assert prepare_script(None, str(audio), "auto") == (None, [])
    (tmp_path / "line.txt").write_text("\ufeffHello there.", encoding="utf-8")
    text, notes = prepare_script(None, str(audio), "auto")
    assert text == "Hello there." and "line.txt" in notes[0]
    assert prepare_script("", str(audio), "auto") == (None, [])
    assert prepare_script("Other words.", str(audio), "en") == ("Other words.", [])
