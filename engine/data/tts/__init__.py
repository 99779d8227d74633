"""Speech with exact phone timings from offline TTS engines (eSpeak NG, Flite, Festival).

from engine.data.tts import Voice, list_voices, synthesize
utt = synthesize("Peter picked a pepper.", Voice("espeak", "en-us", "en", variant="f3"))
utt.audio  # float32 mono, 16 kHz;  utt.phones  # [Phone("sil", 0.0, 0.01), Phone("P", ...), ...]
"""

from __future__ import annotations

from engine.data.tts.voice import (
    SAMPLE_RATE,
    TTSError,
    TTSUnavailableError,
    Utterance,
    Voice,
)

ENGINES = ("espeak", "flite", "festival")

__all__ = [
    "ENGINES",
    "SAMPLE_RATE",
    "TTSError",
    "TTSUnavailableError",
    "Utterance",
    "Voice",
    "list_voices",
    "synthesize",
]


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown TTS engine {engine!r}; choose one of: {', '.join(ENGINES)}")


def list_voices(engine: str | None = None, language: str | None = None) -> list[Voice]:
    """Every voice (at default rate and pitch) of the engines installed on this machine."""
    from engine.data.tts import espeak, festival, flite

    if engine is not None:
        _check_engine(engine)
    voices: list[Voice] = []
    if engine in (None, "espeak"):
        voices += espeak.list_espeak_voices(language)
    if engine in (None, "flite"):
        voices += flite.list_flite_voices(language)
    if engine in (None, "festival"):
        voices += festival.list_festival_voices(language)
    return voices


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak `text` with `voice`; phone times come from the engine, cover the clip, silences as sil."""
    if not isinstance(voice, Voice):
        raise TypeError(f"voice must be an engine.data.tts.Voice, got {type(voice).__name__}")
    _check_engine(voice.engine)
    if voice.engine == "espeak":
        from engine.data.tts.espeak import synthesize_espeak

        return synthesize_espeak(text, voice)
    if voice.engine == "flite":
        from engine.data.tts.flite import synthesize_flite

        return synthesize_flite(text, voice)
    from engine.data.tts.festival import synthesize_festival

    return synthesize_festival(text, voice)
