"""Build the synthetic talking-face corpus: TTS speech with exact phone times -> face motion -> dataset.

    python -m engine.data.synth --hours 2 --out data/synth --seed 0 --workers 2

Every clip is a pure function of (seed, clip index): its own random stream picks the voice, rate,
pitch, sentence, emotion, intensity, speaker style and augmentation. Workers only change the speed,
never the output. Clips are written in index order until the requested hours of audio are reached.

Splits hold out whole voices (a few eSpeak variants in every language and one Flite voice:
`test_voices`) and sentences (a stable hash of the text: `test_sentences`), so both new speakers and
new text can be measured. The dataset is written to DIR.partial and renamed to DIR only on success.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.emotions import EMOTIONS

LANGUAGES = ("en", "es", "de", "fr", "it")
SUPPORTED_FPS = (25.0, 30.0, 60.0)
ENGINE_SHARE_EN = {"espeak": 0.7, "flite": 0.2, "festival": 0.1}  # English clips per engine
HELD_OUT_VARIANTS = 3  # eSpeak variants held out in every language (all their voices)
RATE_RANGE = (130, 230)  # words per minute drawn per clip
PITCH_RANGE = (25, 75)
SENTENCE_HOLD_OUT = 0.1
VAL_FRACTION = 0.05
_NEUTRAL_SHARE = 0.2  # neutral is the common case at inference time: draw it more often


@dataclass(frozen=True)
class CorpusPlan:
    """Everything that is fixed for a corpus before the first clip: the voice pools and what is held out."""

    seed: int
    languages: tuple[str, ...]
    fps: float
    augment_prob: float
    voices: dict  # language -> engine -> list[Voice]
    held_out_voices: frozenset[str]  # Voice.id values


def make_plan(seed: int, languages: Sequence[str], fps: float, augment_prob: float) -> CorpusPlan:
    from engine.data.tts import list_voices
    from engine.data.tts.espeak import ESPEAK_VARIANTS

    rng = np.random.default_rng([seed, 0x5EED])
    pools: dict = {}
    for lang in languages:
        by_engine: dict = {}
        for voice in list_voices(language=lang):
            by_engine.setdefault(voice.engine, []).append(voice)
        if not by_engine:
            raise RuntimeError(f"no TTS voice for {lang!r}; install espeak-ng (`apt-get install espeak-ng`)")
        pools[lang] = by_engine
    variants = sorted(ESPEAK_VARIANTS)
    held_variants = {variants[i] for i in rng.choice(len(variants), HELD_OUT_VARIANTS, replace=False)}
    held = {
        v.id
        for by_engine in pools.values()
        for v in by_engine.get("espeak", [])
        if v.variant in held_variants
    }
    flite = sorted(v.id for by_engine in pools.values() for v in by_engine.get("flite", []))
    if len(flite) > 1:
        held.add(flite[int(rng.integers(len(flite)))])
    return CorpusPlan(seed, tuple(languages), float(fps), float(augment_prob), pools, frozenset(held))


@dataclass
class ClipResult:
    clip_id: str
    subject: str
    audio: np.ndarray
    arkit: np.ndarray
    vertices: np.ndarray
    meta: dict
    seconds_tts: float
    seconds_motion: float


def _pick_voice(plan: CorpusPlan, rng: np.random.Generator):
    lang = plan.languages[int(rng.integers(len(plan.languages)))]
    by_engine = plan.voices[lang]
    engines = sorted(by_engine)
    if len(engines) > 1:
        weights = np.array([ENGINE_SHARE_EN.get(e, 0.1) for e in engines])
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    else:
        engine = engines[0]
    pool = by_engine[engine]
    voice = pool[int(rng.integers(len(pool)))]
    rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    return voice.with_prosody(rate, pitch)


def make_clip(plan: CorpusPlan, index: int) -> ClipResult:
    """Clip `index` of the corpus: depends only on (plan.seed, index)."""
    from engine.audio.augment import augment_with_info
    from engine.data.motion import render_motion
    from engine.data.sentences import generate_sentences
    from engine.data.style import SpeakerStyle
    from engine.data.tts import TTSError, synthesize

    rng = np.random.default_rng([plan.seed, index])
    voice = _pick_voice(plan, rng)
    t0 = time.perf_counter()
    for attempt in range(3):
        text = generate_sentences(voice.language, 1, rng)[0]
        try:
            utt = synthesize(text, voice)
            break
        except TTSError:
            if attempt == 2:
                raise
    t1 = time.perf_counter()
    if rng.random() < _NEUTRAL_SHARE:
        emotion = "neutral"
    else:
        emotion = EMOTIONS[int(rng.integers(1, len(EMOTIONS)))]
    intensity = 1.0 if emotion == "neutral" else round(float(rng.uniform(0.3, 1.0)), 3)
    style = SpeakerStyle.random(rng)
    motion_seed = int(rng.integers(2**31 - 1))
    audio = utt.audio
    augmentation: dict | None = None
    if rng.random() < plan.augment_prob:
        audio, augmentation = augment_with_info(audio, utt.sample_rate, rng)
    duration = len(audio) / utt.sample_rate
    t2 = time.perf_counter()
    motion = render_motion(utt.phones, emotion, intensity, style, plan.fps, duration, motion_seed)
    t3 = time.perf_counter()
    clip_id = f"{index:06d}-{voice.language}"
    meta = {
        "text": utt.text,
        "language": voice.language,
        "voice": voice.to_dict(),
        "voice_id": voice.id,
        "phones": utt.phones,
        "words": [{"word": w, "start": s, "end": e} for w, s, e in utt.words],
        "emotion": emotion,
        "intensity": intensity,
        "style": style.to_dict(),
        "augmentation": augmentation,
        "motion_seed": motion_seed,
        "corpus_seed": plan.seed,
        "clip_index": index,
    }
    return ClipResult(clip_id, voice.id, audio, motion.arkit, motion.vertices, meta, t1 - t0, t3 - t2)


_WORKER_PLAN: CorpusPlan | None = None


def _init_worker(plan: CorpusPlan) -> None:
    """Once per worker process: keep the plan and start eSpeak (its init may run once per process)."""
    global _WORKER_PLAN
    _WORKER_PLAN = plan
    from engine.data.tts.espeak import is_available

    is_available()


def _worker_clip(index: int) -> ClipResult:
    assert _WORKER_PLAN is not None
    return make_clip(_WORKER_PLAN, index)


def _clips_in_order(plan: CorpusPlan, workers: int) -> Generator[ClipResult, None, None]:
    """Clip 0, 1, 2, ... forever (the caller stops), computed by `workers` processes."""
    if workers <= 1:
        index = 0
        while True:
            yield make_clip(plan, index)
            index += 1
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    batch = 8 * workers
    with ctx.Pool(workers, initializer=_init_worker, initargs=(plan,)) as pool:
        start = 0
        while True:
            yield from pool.imap(_worker_clip, range(start, start + batch))
            start += batch


def generate_corpus(
    out: str | Path,
    hours: float,
    seed: int = 0,
    workers: int = 1,
    languages: Sequence[str] = LANGUAGES,
    fps: float = 30.0,
    augment_prob: float = 0.3,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write the corpus to `out`; returns a summary (clips, audio hours, speed)."""
    from tqdm import tqdm

    from engine.data.layout import DatasetWriter
    from engine.data.sentences import is_held_out
    from engine.data.splits import build_splits
    from engine.face.template import load_template

    languages = _check_args(out, hours, workers, languages, fps, augment_prob, overwrite)
    plan = make_plan(seed, languages, fps, augment_prob)
    template = load_template().vertices.astype(np.float32)
    target = hours * 3600.0
    total = tts_s = motion_s = 0.0
    records: list[dict] = []
    started = time.perf_counter()
    with DatasetWriter(out, fps, template.shape[0], kind="synthetic", overwrite=overwrite) as writer:
        bar = tqdm(
            total=target, unit="s", desc="audio", disable=not progress, file=sys.stderr, unit_scale=True
        )
        clips = _clips_in_order(plan, workers)
        try:
            for clip in clips:
                writer.add(
                    clip.clip_id,
                    clip.subject,
                    clip.audio,
                    16000,
                    clip.vertices,
                    template,
                    clip.arkit,
                    clip.meta,
                )
                seconds = len(clip.audio) / 16000
                records.append({"clip_id": clip.clip_id, "subject": clip.subject, "text": clip.meta["text"]})
                total += seconds
                tts_s += clip.seconds_tts
                motion_s += clip.seconds_motion
                bar.update(min(seconds, max(target - bar.n, 0.0)))
                if total >= target:
                    break
        finally:
            clips.close()  # stops the worker pool
            bar.close()
        wall = time.perf_counter() - started
        held_sentences = {r["text"] for r in records if is_held_out(r["text"], SENTENCE_HOLD_OUT)}
        splits = build_splits(records, plan.held_out_voices, held_sentences, VAL_FRACTION, seed)
        summary = {
            "clips": len(records),
            "audio_hours": total / 3600.0,
            "wall_seconds": wall,
            "realtime_factor": total / wall if wall > 0 else math.inf,
            "tts_seconds": tts_s,
            "motion_seconds": motion_s,
            "workers": workers,
        }
        writer.finish(
            splits,
            extra={
                "generator": "engine.data.synth",
                "seed": seed,
                "languages": list(languages),
                "augment_prob": augment_prob,
                "held_out_voices": sorted(plan.held_out_voices),
                "sentence_hold_out_fraction": SENTENCE_HOLD_OUT,
                "split_sizes": {k: len(v) for k, v in splits.items()},
                "speed": summary,
            },
        )
    return summary


def _check_args(out, hours, workers, languages, fps, augment_prob, overwrite) -> tuple[str, ...]:
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ValueError(f"--hours must be a positive number, got {hours!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    langs = tuple(dict.fromkeys(lang.strip() for lang in languages if lang.strip()))
    unknown = [lang for lang in langs if lang not in LANGUAGES]
    if not langs or unknown:
        raise ValueError(f"--languages {','.join(languages)!r}: choose from {','.join(LANGUAGES)}")
    if float(fps) not in SUPPORTED_FPS:
        raise ValueError(f"--fps must be one of {', '.join(f'{f:g}' for f in SUPPORTED_FPS)}, got {fps!r}")
    if not 0.0 <= augment_prob <= 1.0:
        raise ValueError(f"--augment-prob must be in [0, 1], got {augment_prob!r}")
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    return langs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.data.synth",
        description="Generate the synthetic talking-face corpus (TTS speech + ground-truth face motion).",
    )
    parser.add_argument("--hours", type=float, required=True, help="hours of audio to generate")
    parser.add_argument("--out", required=True, help="output dataset folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma list (default: all)")
    parser.add_argument("--fps", type=float, default=30.0, help="motion frame rate: 25, 30 or 60")
    parser.add_argument("--augment-prob", type=float, default=0.3, help="share of clips with degraded audio")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        summary = generate_corpus(
            args.out,
            args.hours,
            seed=args.seed,
            workers=args.workers,
            languages=args.languages.split(","),
            fps=args.fps,
            augment_prob=args.augment_prob,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except (ValueError, FileExistsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary['clips']} clips, {summary['audio_hours'] * 60:.1f} min of audio to {args.out} "
        f"in {summary['wall_seconds']:.1f} s ({summary['realtime_factor']:.1f}x real time; "
        f"TTS {summary['tts_seconds']:.1f} s, motion {summary['motion_seconds']:.1f} s of worker time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
