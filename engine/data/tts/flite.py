"""CMU Flite through its command line: `flite -psdur` prints each segment with its end time.

English only. Flite's segments already use the CMU (ARPAbet) phone set, so mapping is 1:1 except
`pau` -> sil and `ax` -> AH. Word times are not printed, so words are recovered by counting each
word's phones with `t2p` (Flite's own letter-to-sound) and walking the segment list.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile

import soundfile as sf

from engine.data.tts.voice import (
    DEFAULT_RATE,
    RUN_TIMEOUT_S,
    SAMPLE_RATE,
    TTSError,
    TTSUnavailableError,
    Utterance,
    Voice,
    ascii_english,
    check_english_voice,
    check_text,
    target_f0,
    tile_phones,
    to_model_audio,
)
from engine.phonemes import PHONES, SILENCE

log = logging.getLogger(__name__)

ENGINE = "flite"
# Voice -> its typical f0 in Hz, so `pitch` can move it. "awb_time" is a talking clock (says only
# times) and "kal" is "kal16" at 8 kHz: both left out. rms ignores f0 targets.
FLITE_VOICES: dict[str, float | None] = {"slt": 160.0, "kal16": 95.0, "awb": 120.0, "rms": None}
_PHONE_MAP = {"pau": SILENCE, "ax": "AH", "axr": "ER", "dx": "T", "h#": SILENCE, "brth": SILENCE}


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TTSUnavailableError(f"`{name}` not found on PATH; install Flite with `apt-get install flite`")
    return path


def is_available() -> bool:
    return shutil.which("flite") is not None and shutil.which("t2p") is not None


def list_flite_voices(language: str | None = None) -> list[Voice]:
    if language not in (None, "en") or not is_available():
        return []
    return [Voice(ENGINE, name, "en") for name in FLITE_VOICES]


def _check_voice(voice: Voice) -> None:
    check_english_voice(voice, "Flite", FLITE_VOICES)


def map_flite_phone(symbol: str) -> str:
    phone = _PHONE_MAP.get(symbol, symbol.upper().rstrip("012"))
    if phone not in PHONES:
        raise TTSError(
            f"Flite produced the unknown segment {symbol!r}; add it to engine.data.tts.flite._PHONE_MAP"
        )
    return phone


def _run(args: list[str]) -> str:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise TTSError(f"{os.path.basename(args[0])} did not finish within {RUN_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise TTSError(f"{os.path.basename(args[0])} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout


def synthesize_flite(text: str, voice: Voice) -> Utterance:
    _check_voice(voice)
    cleaned = ascii_english(check_text(text), "Flite")
    flite = _binary("flite")
    options = ["-voice", voice.name, "--setf", f"duration_stretch={DEFAULT_RATE / voice.rate:.4f}"]
    target = target_f0(FLITE_VOICES[voice.name], voice)
    if target is not None:
        options += ["--setf", f"int_f0_target_mean={target:.1f}"]
    with tempfile.TemporaryDirectory(prefix="dualface-flite-") as tmp:
        wav_path = os.path.join(tmp, "out.wav")
        out = _run([flite, *options, "-psdur", "-t", cleaned, "-o", wav_path])
        raw, sr = sf.read(wav_path, dtype="int16", always_2d=False)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    seg_line = next((line for line in lines if ":" in line.split(" ")[0]), None)
    if seg_line is None or len(raw) == 0:
        raise TTSError(f"Flite produced no speech for {text[:40]!r}")
    audio = to_model_audio(raw, int(sr))
    duration = len(audio) / SAMPLE_RATE
    segments: list[tuple[str, float, float]] = []
    symbols: list[str] = []
    cursor = 0.0
    for item in seg_line.split():
        symbol, _, end = item.rpartition(":")
        end_s = float(end)
        symbols.append(symbol)
        segments.append((map_flite_phone(symbol), cursor, end_s))
        cursor = end_s
    phones = tile_phones(segments, duration)
    words = _words(_tokens(cleaned), segments)
    return Utterance(audio, SAMPLE_RATE, phones, words, cleaned, voice, symbols)


def _tokens(text: str) -> list[str]:
    """The text's words as written (punctuation stripped); "42" stays one word though it says two."""
    tokens = [t.strip(".,;:!?\"'()[]{}") for t in text.split()]
    return [t for t in tokens if any(c.isalnum() for c in t)]


def _words(words: list[str], segments: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Assign consecutive speech segments to written words by each word's phone count from `t2p`."""
    if not words:
        return []
    t2p = _binary("t2p")
    # Commas make t2p put a pause between words, so one call gives every word's phones.
    listing = _run([t2p, ", ".join(words)]).split()
    counts: list[int] = []
    run = 0
    for sym in listing:
        if sym == "pau":
            if run:
                counts.append(run)
            run = 0
        else:
            run += 1
    if run:
        counts.append(run)
    speech = [s for s in segments if s[0] != SILENCE]
    if len(counts) != len(words) or sum(counts) != len(speech):
        log.warning("could not align Flite words to segments for %r; words left empty", " ".join(words))
        return []
    out = []
    k = 0
    for word, count in zip(words, counts):
        chunk = speech[k : k + count]
        k += count
        out.append((word, float(chunk[0][1]), float(chunk[-1][2])))
    return out
