"""What every TTS backend takes (a Voice) and returns (an Utterance), plus the checks they share.

Backends differ in how they time phones; this module makes their output look the same: 16 kHz mono
float32 audio and a phone track that covers the clip from 0 to its end without gaps or overlaps.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.signal import resample_poly

from engine.audio.io import MODEL_SAMPLE_RATE as SAMPLE_RATE
from engine.data.record import Phone
from engine.phonemes import PHONES, SILENCE

DEFAULT_RATE = 175  # words per minute, espeak's default; every backend reads rate on this scale
DEFAULT_PITCH = 50  # 0..100, 50 = the voice's own pitch
RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 100)
MAX_TEXT_CHARS = 2000
PITCH_OCTAVES = 0.5  # pitch 0..100 spans -half..+half an octave around an f0 target (Flite, Festival)
RUN_TIMEOUT_S = 60  # a TTS command still running after this long has hung


class TTSError(RuntimeError):
    """The engine ran but could not produce a usable utterance."""


class TTSUnavailableError(TTSError):
    """A system package a backend needs is missing; the message names the install command."""


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak", "flite" or "festival"
    name: str  # engine voice name: "en-us", "slt", "kal_diphone", ...
    language: str  # ISO 639-1: "en", "es", "de", "fr", "it"
    rate: int = DEFAULT_RATE  # words per minute
    pitch: int = DEFAULT_PITCH  # 0..100
    variant: str | None = None  # espeak voice variant ("f3", "m1", "croak"); None for the plain voice

    @property
    def id(self) -> str:
        """The speaker identity: engine, voice and variant. Rate and pitch are per-take, not identity."""
        base = f"{self.engine}-{self.name}"
        return f"{base}+{self.variant}" if self.variant else base

    def with_prosody(self, rate: int, pitch: int) -> Voice:
        return Voice(self.engine, self.name, self.language, int(rate), int(pitch), self.variant)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Voice:
        return Voice(
            engine=str(d["engine"]),
            name=str(d["name"]),
            language=str(d["language"]),
            rate=int(d.get("rate", DEFAULT_RATE)),
            pitch=int(d.get("pitch", DEFAULT_PITCH)),
            variant=d.get("variant"),
        )


@dataclass
class Utterance:
    audio: np.ndarray  # [N] float32 mono, SAMPLE_RATE
    sample_rate: int
    phones: list[Phone]
    words: list[tuple[str, float, float]]  # (word, start s, end s)
    text: str
    voice: Voice
    engine_symbols: list[str] = field(default_factory=list)  # the engine's own phone names, for debugging

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def check_text(text: str) -> str:
    """Reject text no engine can say, so a caller never gets silence labelled as speech."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise ValueError("text is empty or only whitespace/control characters; pass a sentence to speak")
    if len(cleaned) > MAX_TEXT_CHARS:
        raise ValueError(
            f"text has {len(cleaned)} characters; split it into sentences of at most {MAX_TEXT_CHARS}"
        )
    if not any(unicodedata.category(c)[0] in "LN" for c in cleaned):
        raise ValueError(
            f"text {text[:40]!r} has no letters or digits (only symbols/emoji/punctuation); "
            "nothing in it can be spoken"
        )
    return cleaned


_ASCII_PUNCTUATION = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                                    "\u2014": "-", "\u2026": "...", "\u00a0": " "})  # fmt: skip


def ascii_english(text: str, engine: str) -> str:
    """Text for engines that read only ASCII English (Flite, Festival): accents are dropped
    ("cafe"), typographic punctuation becomes ASCII, other symbols become spaces; a letter with no
    ASCII form is an error, since these engines would skip it silently."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_PUNCTUATION))
    out = []
    for c in decomposed:
        if c.isascii():
            out.append(c)
        elif unicodedata.category(c) == "Mn":
            continue  # combining accent
        elif unicodedata.category(c)[0] in "LN":
            raise ValueError(
                f"{engine} reads ASCII English only and cannot say {c!r} in {text[:40]!r}; "
                "use an espeak voice for other scripts and languages"
            )
        else:
            out.append(" ")
    return check_text("".join(out))


def check_prosody(voice: Voice) -> None:
    lo, hi = RATE_RANGE
    if not lo <= voice.rate <= hi:
        raise ValueError(
            f"voice rate {voice.rate} wpm is outside {lo}..{hi}; {DEFAULT_RATE} is normal speech"
        )
    lo, hi = PITCH_RANGE
    if not lo <= voice.pitch <= hi:
        raise ValueError(
            f"voice pitch {voice.pitch} is outside {lo}..{hi}; {DEFAULT_PITCH} is the voice's own"
        )


def check_english_voice(voice: Voice, engine: str, known: dict[str, float | None]) -> None:
    """The voice checks of the English-only command-line engines (Flite, Festival): no variants."""
    if voice.language != "en":
        raise ValueError(f"{engine} speaks English only (language 'en'), not {voice.language!r}; use espeak")
    if voice.name not in known:
        raise ValueError(f"unknown {engine} voice {voice.name!r}; choose one of: {', '.join(known)}")
    if voice.variant is not None:
        raise ValueError(f"{engine} voices have no variants; set variant=None")
    check_prosody(voice)


def target_f0(voice_f0: float | None, voice: Voice) -> float | None:
    """The f0 (Hz) the voice's `pitch` asks of an engine that takes an f0 target; None to leave the
    engine's own (no target known for the voice, or the default pitch)."""
    if voice_f0 is None or voice.pitch == DEFAULT_PITCH:
        return None
    return voice_f0 * 2.0 ** ((voice.pitch - DEFAULT_PITCH) / 50.0 * PITCH_OCTAVES)


def to_model_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """int16 or float samples at any rate -> float32 mono at SAMPLE_RATE in [-1, 1]."""
    audio = np.asarray(samples)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / 32768.0
    audio = audio.astype(np.float32, copy=False)
    if sample_rate != SAMPLE_RATE:
        g = np.gcd(int(sample_rate), SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


def tile_phones(segments: list[tuple[str, float, float]], duration: float) -> list[Phone]:
    """Turn timed segments into a track that tiles [0, duration]: clip to the clip, fill holes with
    silence, merge adjacent silences, drop zero-length pieces. Segments must be sorted by start.
    """
    if duration <= 0:
        raise TTSError("the engine produced no audio")
    track: list[list] = []

    def push(phone: str, start: float, end: float) -> None:
        if end - start <= 1e-6:
            return
        if track and track[-1][0] == SILENCE and phone == SILENCE:
            track[-1][2] = end
            return
        track.append([phone, start, end])

    cursor = 0.0
    for phone, start, end in segments:
        if phone not in PHONES:
            raise TTSError(f"backend produced {phone!r}, which is not in engine.phonemes.PHONES")
        start = min(max(start, cursor), duration)
        end = min(max(end, start), duration)
        if start > cursor:
            push(SILENCE, cursor, start)
        push(phone, start, end)
        cursor = max(cursor, end)
    if cursor < duration:
        push(SILENCE, cursor, duration)
    if not any(p != SILENCE for p, _, _ in track):
        raise TTSError("the engine produced no speech sounds for this text (only silence)")
    track[-1][2] = duration
    return [Phone(p, float(s), float(e)) for p, s, e in track]
