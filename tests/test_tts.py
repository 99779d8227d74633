"""Speech with timings: every backend's phone track tiles the clip, lines up with the waveform, and
every bad input is refused with a message that names the fix."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from engine.data.tts import SAMPLE_RATE, TTSUnavailableError, Voice, list_voices, synthesize
from engine.data.tts import espeak as espeak_backend
from engine.data.tts import festival as festival_backend
from engine.data.tts import flite as flite_backend
from engine.data.tts.espeak_phones import map_espeak_phone
from engine.phonemes import PHONES, SILENCE, VOWELS

needs_flite = pytest.mark.skipif(not flite_backend.is_available(), reason="flite not installed")
needs_festival = pytest.mark.skipif(not festival_backend.is_available(), reason="festival not installed")

SENTENCES = {
    "en": "Bob met my mum by the big pub, maybe.",
    "es": "Mi mamá pide pan y bombones para Pablo.",
    "de": "Mein Papa baut Boote im Mai.",
    "fr": "Mon papa boit un bon café au bord de la mer.",
    "it": "Mio papà mangia pane e burro a Bologna.",
}
ESPEAK_CASES = [
    Voice("espeak", "en-us", "en"),
    Voice("espeak", "en", "en", rate=240, pitch=20, variant="f3"),
    Voice("espeak", "es", "es", variant="m3"),
    Voice("espeak", "de", "de"),
    Voice("espeak", "fr", "fr", rate=130, pitch=80),
    Voice("espeak", "it", "it", variant="f1"),
]
ALL_CASES = [
    *[pytest.param(v, id=f"{v.id}") for v in ESPEAK_CASES],
    pytest.param(Voice("flite", "slt", "en"), id="flite-slt", marks=needs_flite),
    pytest.param(Voice("flite", "kal16", "en", rate=220, pitch=70), id="flite-kal16", marks=needs_flite),
    pytest.param(Voice("festival", "kal_diphone", "en"), id="festival-kal", marks=needs_festival),
    pytest.param(Voice("festival", "cmu_us_slt_arctic_hts", "en"), id="festival-slt", marks=needs_festival),
]


def _frame_rms(audio: np.ndarray, hop: int = 80) -> np.ndarray:
    n = len(audio) // hop
    return np.sqrt((audio[: n * hop].reshape(n, hop) ** 2).mean(axis=1))


@pytest.mark.parametrize("voice", ALL_CASES)
def test_phone_track_tiles_the_clip(voice: Voice) -> None:
    utt = synthesize(SENTENCES[voice.language], voice)
    assert utt.sample_rate == SAMPLE_RATE
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert np.isfinite(utt.audio).all() and np.abs(utt.audio).max() <= 1.0
    assert np.abs(utt.audio).max() > 0.05, "audio is (near) silent"
    phones = utt.phones
    assert phones[0].start == 0.0
    assert phones[-1].end == pytest.approx(utt.duration, abs=1e-9)
    for a, b in zip(phones, phones[1:]):
        assert a.end == pytest.approx(b.start, abs=1e-9), "gap or overlap between phones"
    assert all(p.end > p.start for p in phones)
    assert all(p.phone in PHONES for p in phones)
    speech = [p.phone for p in phones if p.phone != SILENCE]
    assert len(speech) >= 10 and {"P", "B", "M"} & set(speech)
    # words: ordered, inside the clip, each covering at least one phone
    assert len(utt.words) >= 4
    for (_, s0, e0), (_, s1, _) in zip(utt.words, utt.words[1:]):
        assert s0 < e0 <= s1 + 1e-6
    assert utt.words[-1][2] <= utt.duration + 1e-9


@pytest.mark.parametrize("voice", ALL_CASES)
def test_bilabials_line_up_with_lip_closure(voice: Voice) -> None:
    """Lips closed = quiet: inside P/B/M the waveform must be much weaker than inside vowels, and
    clearly more so than with the same track shifted by +-80 ms (a misaligned track)."""
    utt = synthesize(SENTENCES[voice.language], voice)
    rms = _frame_rms(utt.audio)
    fps = SAMPLE_RATE / 80

    def contrast(shift: float) -> float:
        """median loudness of vowels / median of the quietest frame inside each bilabial"""
        vowel, closure = [], []
        for p in utt.phones:
            a, b = int((p.start + shift) * fps), int((p.end + shift) * fps)
            if a < 0 or b >= len(rms) or b <= a:
                continue
            if p.phone in VOWELS:
                vowel.append(rms[a:b].mean())
            elif p.phone in {"P", "B", "M"}:
                closure.append(rms[a:b].min())
        return float(np.median(vowel) / max(np.median(closure), 1e-6))

    aligned = contrast(0.0)
    assert aligned > 4.0, f"bilabials are not quieter than vowels (contrast {aligned:.2f})"
    assert aligned > 1.5 * max(contrast(0.08), contrast(-0.08))


def test_espeak_is_deterministic_whatever_ran_before() -> None:
    voice = Voice("espeak", "en-us", "en", variant="m2")
    first = synthesize("Hello there, Peter.", voice)
    synthesize("Something completely different, and rather long, to disturb the state.", voice)
    again = synthesize("Hello there, Peter.", voice)
    assert np.array_equal(first.audio, again.audio)
    assert first.phones == again.phones and first.words == again.words


def test_rate_and_pitch_change_the_voice() -> None:
    slow = synthesize("The rain in Spain stays mainly in the plain.", Voice("espeak", "en", "en", rate=120))
    fast = synthesize("The rain in Spain stays mainly in the plain.", Voice("espeak", "en", "en", rate=300))
    assert slow.duration > 1.6 * fast.duration


def test_word_events_give_the_written_words() -> None:
    utt = synthesize("Peter picked a pepper.", Voice("espeak", "en", "en"))
    assert [w for w, _, _ in utt.words] == ["Peter", "picked", "a", "pepper"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\x00\x07\x1b", "empty"),
        ("😀🎉👍", "no letters or digits"),
        ("?!... --", "no letters or digits"),
        ("a" * 3000, "split it"),
    ],
)
def test_unspeakable_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize(text, Voice("espeak", "en", "en"))


@pytest.mark.parametrize(
    ("voice", "message"),
    [
        (Voice("espeak", "en", "xx"), "does not support language"),
        (Voice("espeak", "xx", "en"), "choose one of"),
        (Voice("espeak", "en", "en", variant="whisper"), "unknown eSpeak variant"),
        (Voice("espeak", "en", "en", rate=10), "rate"),
        (Voice("espeak", "en", "en", pitch=101), "pitch"),
        (Voice("mbrola", "en", "en"), "unknown TTS engine"),
        (Voice("flite", "slt", "de"), "English only"),
        (Voice("flite", "nobody", "en"), "unknown Flite voice"),
        (Voice("festival", "kal_diphone", "fr"), "English only"),
        (Voice("festival", "nobody", "en"), "unknown Festival voice"),
    ],
)
def test_bad_voice_is_refused(voice: Voice, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize("Hello there.", voice)


def test_missing_espeak_library_names_the_package(monkeypatch) -> None:
    def no_library(*args, **kwargs):
        raise OSError("libespeak-ng.so.1: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(TTSUnavailableError, match="apt-get install espeak-ng"):
        espeak_backend._Library()  # a fresh instance: the process-wide one is untouched


@pytest.mark.parametrize(
    ("voice", "package"),
    [
        (Voice("flite", "slt", "en"), "apt-get install flite"),
        (Voice("festival", "kal_diphone", "en"), "festival"),
    ],
)
def test_missing_command_line_engine_names_the_package(monkeypatch, voice: Voice, package: str) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(TTSUnavailableError, match=package):
        synthesize("Hello there.", voice)


def test_list_voices_filters_and_validates() -> None:
    es = list_voices("espeak", "es")
    assert es and all(v.engine == "espeak" and v.language == "es" for v in es)
    assert not any(v.variant in ("whisper", "whisperf") for v in list_voices("espeak"))
    assert len({v.id for v in list_voices()}) == len(list_voices())
    with pytest.raises(ValueError, match="unknown TTS engine"):
        list_voices("mbrola")


def test_espeak_symbols_map_to_the_inventory() -> None:
    # splits share the span exactly; unknown symbols fall back to a class instead of vanishing
    fire = map_espeak_phone("aI@", "en")
    assert [p for p, _ in fire] == ["AY", "ER"] and fire[-1][1][1] == pytest.approx(1.0)
    assert map_espeak_phone("**", "es") == [("RR", (0.0, 1.0))]
    assert map_espeak_phone("_:", "de") == [(SILENCE, (0.0, 1.0))]
    assert map_espeak_phone("(en)", "fr") == []
    unknown = map_espeak_phone("o#7", "it")
    assert len(unknown) == 1 and unknown[0][0] in PHONES and unknown[0][0] != SILENCE


@pytest.mark.parametrize(
    "voice",
    [
        pytest.param(Voice("flite", "slt", "en"), marks=needs_flite),
        pytest.param(Voice("festival", "kal_diphone", "en"), marks=needs_festival),
    ],
)
def test_ascii_engines_refuse_other_scripts_and_fold_accents(voice: Voice) -> None:
    with pytest.raises(ValueError, match="ASCII English only"):
        synthesize("Hello 你好", voice)
    utt = synthesize("A café “naïve” test", voice)
    assert [w for w, _, _ in utt.words] == ["A", "cafe", "naive", "test"]
