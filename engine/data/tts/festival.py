"""Festival through a generated Scheme script: synthesise, save the wave, print the Segment and Word
relations with their end times. English only (the installed voices are US/UK English).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

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

ENGINE = "festival"
_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))
# Voice -> the f0 its intonation model aims at (Hz), None where the voice has no such target (HTS).
FESTIVAL_VOICES: dict[str, float | None] = {
    "kal_diphone": 105.0,
    "ked_diphone": 105.0,
    "cmu_us_slt_arctic_hts": None,
}
_PACKAGES = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k"}
_PHONE_MAP = {"pau": SILENCE, "h#": SILENCE, "#": SILENCE, "ax": "AH", "axr": "ER", "dx": "T", "el": "L",
              "em": "M", "en": "N", "nx": "N", "hv": "HH"}  # fmt: skip


def _installed_voices() -> list[str]:
    found = []
    for name in FESTIVAL_VOICES:
        if any(any(base.glob(f"*/{name}")) for base in _VOICE_DIRS if base.is_dir()):
            found.append(name)
    return found


def is_available() -> bool:
    return shutil.which("festival") is not None and bool(_installed_voices())


def list_festival_voices(language: str | None = None) -> list[Voice]:
    if language not in (None, "en") or shutil.which("festival") is None:
        return []
    return [Voice(ENGINE, name, "en") for name in _installed_voices()]


def _check_voice(voice: Voice) -> None:
    check_english_voice(voice, "Festival", FESTIVAL_VOICES)
    if shutil.which("festival") is None:
        raise TTSUnavailableError("`festival` not found on PATH; install it with `apt-get install festival`")
    if voice.name not in _installed_voices():
        package = _PACKAGES.get(voice.name, "festvox-us-slt-hts")
        raise TTSUnavailableError(
            f"Festival voice {voice.name!r} is not installed; install it with `apt-get install {package}`"
        )


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def map_festival_phone(symbol: str) -> str:
    phone = _PHONE_MAP.get(symbol, symbol.upper())
    if phone not in PHONES:
        raise TTSError(
            f"Festival produced the unknown segment {symbol!r}; add it to engine.data.tts.festival._PHONE_MAP"
        )
    return phone


def _script(text: str, voice: Voice, wav_path: str) -> str:
    lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {DEFAULT_RATE / voice.rate:.4f})"]
    target = target_f0(FESTIVAL_VOICES[voice.name], voice)
    if target is not None:
        lines.append(
            f"(set! int_lr_params '((target_f0_mean {target:.1f}) (target_f0_std {0.14 * target:.1f}) "
            "(model_f0_mean 170) (model_f0_std 34)))"
        )
    lines += [
        f"(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))",
        f"(utt.save.wave utt {_scheme_string(wav_path)} 'riff)",
        '(mapcar (lambda (s) (format t "S\\t%s\\t%f\\n" (item.name s) (item.feat s "end")))'
        " (utt.relation.items utt 'Segment))",
        '(mapcar (lambda (w) (format t "W\\t%s\\t%f\\t%f\\n" (item.name w)'
        ' (item.feat w "R:SylStructure.daughter1.daughter1.segment_start")'
        ' (item.feat w "R:SylStructure.daughtern.daughtern.end")))'
        " (utt.relation.items utt 'Word))",
    ]
    return "\n".join(lines) + "\n"


def synthesize_festival(text: str, voice: Voice) -> Utterance:
    _check_voice(voice)
    cleaned = ascii_english(check_text(text), "Festival")
    with tempfile.TemporaryDirectory(prefix="dualface-festival-") as tmp:
        wav_path = os.path.join(tmp, "out.wav")
        script_path = os.path.join(tmp, "synth.scm")
        Path(script_path).write_text(_script(cleaned, voice, wav_path), encoding="utf-8")
        try:
            done = subprocess.run(
                ["festival", "--batch", script_path],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=RUN_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise TTSError(f"Festival did not finish within {RUN_TIMEOUT_S} s") from None
        if done.returncode != 0 or "SIOD ERROR" in done.stdout + done.stderr or not os.path.exists(wav_path):
            raise TTSError(f"Festival failed: {(done.stderr or done.stdout).strip()[:300]}")
        raw, sr = sf.read(wav_path, dtype="int16", always_2d=False)
    if len(raw) == 0:
        raise TTSError(f"Festival produced no audio for {text[:40]!r}")
    audio = to_model_audio(raw, int(sr))
    duration = len(audio) / SAMPLE_RATE
    segments: list[tuple[str, float, float]] = []
    symbols: list[str] = []
    words: list[tuple[str, float, float]] = []
    cursor = 0.0
    for line in done.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "S" and len(fields) == 3:
            end = float(fields[2])
            symbols.append(fields[1])
            segments.append((map_festival_phone(fields[1]), cursor, end))
            cursor = end
        elif fields[0] == "W" and len(fields) == 4:
            start, end = float(fields[2]), float(fields[3])
            if end > start:
                words.append((fields[1], min(start, duration), min(end, duration)))
    if not segments:
        raise TTSError(f"Festival printed no segments for {text[:40]!r}")
    phones = tile_phones(segments, duration)
    return Utterance(audio, SAMPLE_RATE, phones, words, cleaned, voice, symbols)
