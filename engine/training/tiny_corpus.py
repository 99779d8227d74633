"""A seconds-to-build corpus for smoke tests of training and evaluation: no TTS engine needed.

Audio is a buzz whose pitch and two resonances depend on the phone (noise for fricatives, silence
for `sil`), so it carries real information about the phones; motion comes from the same renderer as
the full corpus (engine.data.motion). It checks that the pipeline runs and learns, nothing more --
use `python -m engine.data.synth` for a corpus worth training on.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE as SAMPLE_RATE
from engine.data.record import Phone

_VOWELS = ("AA", "IY", "UW", "EH", "OW")
_CONSONANTS = ("P", "B", "M", "F", "S", "T", "L")
_FRICATIVES = {"F", "S"}


def _phone_audio(phone: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = max(1, int(round(seconds * SAMPLE_RATE)))
    if phone == "sil":
        return np.zeros(n, np.float32)
    if phone in _FRICATIVES:
        noise = rng.normal(size=n)
        spectrum = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        centre = 3500.0 if phone == "S" else 1800.0
        spectrum *= np.exp(-(((freqs - centre) / 600.0) ** 2))
        out = np.fft.irfft(spectrum, n)
        return (0.2 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)
    code = zlib.crc32(phone.encode())
    f0 = 110.0 + code % 60
    f1, f2 = 300.0 + code % 600, 900.0 + (code >> 8) % 1500
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for k in range(1, 30):
        f = k * f0
        if f > 7000:
            break
        gain = np.exp(-(((f - f1) / 150.0) ** 2)) + 0.6 * np.exp(-(((f - f2) / 250.0) ** 2)) + 0.02
        out += gain * np.sin(2 * np.pi * f * t)
    amplitude = 0.15 if phone in _CONSONANTS else 0.3
    return (amplitude * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def _utterance(rng: np.random.Generator, n_syllables: int) -> tuple[np.ndarray, list[Phone]]:
    phones: list[Phone] = []
    chunks: list[np.ndarray] = []
    t = 0.0

    def add(symbol: str, seconds: float) -> None:
        nonlocal t
        audio = _phone_audio(symbol, seconds, rng)
        chunks.append(audio)
        end = t + len(audio) / SAMPLE_RATE
        phones.append(Phone(symbol, t, end))
        t = end

    add("sil", 0.15)
    for _ in range(n_syllables):
        add(str(rng.choice(_CONSONANTS)), float(rng.uniform(0.06, 0.12)))
        add(str(rng.choice(_VOWELS)), float(rng.uniform(0.1, 0.2)))
    add("sil", 0.15)
    return np.concatenate(chunks), phones


def write_tiny_corpus(
    root: str | Path, n_clips: int = 6, seed: int = 0, fps: float = 30.0, syllables: int = 8
) -> Path:
    """Write `n_clips` clips (3 voices; 1 test_voices clip, 1 test_sentences, 1 val, rest train)."""
    from engine.data.layout import DatasetWriter
    from engine.data.motion import render_motion
    from engine.data.style import SpeakerStyle
    from engine.emotions import EMOTIONS
    from engine.face.template import load_template

    if n_clips < 4:
        raise ValueError(f"a tiny corpus needs at least 4 clips (train, val and two tests), got {n_clips}")
    rng = np.random.default_rng(seed)
    template = load_template().vertices
    styles = {f"voice{i}": SpeakerStyle.random(rng) for i in range(3)}
    writer = DatasetWriter(root, fps=fps, n_vertices=len(template))
    splits: dict[str, list[str]] = {"train": [], "val": [], "test_sentences": [], "test_voices": []}
    with writer:
        for i in range(n_clips):
            clip_id = f"tiny{i:03d}"
            voice = "voice2" if i == n_clips - 1 else f"voice{i % 2}"
            audio, phones = _utterance(rng, syllables)
            emotion = EMOTIONS[i % len(EMOTIONS)]
            intensity = float(rng.uniform(0.3, 1.0))
            motion = render_motion(
                phones, emotion, intensity, styles[voice], fps=fps, duration=len(audio) / SAMPLE_RATE, seed=i
            )
            writer.add(
                clip_id,
                voice,
                audio,
                SAMPLE_RATE,
                motion.vertices,
                template,
                arkit=motion.arkit,
                meta={
                    "text": f"tiny sentence {i}",
                    "phones": [(p.phone, p.start, p.end) for p in phones],
                    "language": "en" if i % 3 else "es",
                    "voice": voice,
                    "emotion": emotion,
                    "intensity": intensity,
                    "style": styles[voice].to_dict(),
                    "motion_seed": i,
                },
            )
            if i == n_clips - 1:
                splits["test_voices"].append(clip_id)
            elif i == n_clips - 2:
                splits["test_sentences"].append(clip_id)
            elif i == n_clips - 3:
                splits["val"].append(clip_id)
            else:
                splits["train"].append(clip_id)
        return writer.finish(splits, extra={"note": "tiny smoke-test corpus"})
