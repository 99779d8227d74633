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

from engine.audio.io import MODEL_SAMPLE_RATE
from engine.data.sentences import LANGUAGES
from engine.emotions import EMOTIONS

CORPUS_FPS = (25.0, 30.0, 60.0)  # motion rates a corpus is written at
# Clips per language: English, the language of most users and the only one with three engines, leads
LANGUAGE_SHARE = {"en": 0.4, "es": 0.15, "de": 0.15, "fr": 0.15, "it": 0.15}
# English clips per engine, balanced so that no one engine's sound becomes "speech" to the model
ENGINE_SHARE_EN = {"espeak": 0.4, "flite": 0.3, "festival": 0.3}
PAUSED_PAIR_PROB = 0.45  # clips of two sentences with a pause between them
BETWEEN_PAUSE_S = (0.3, 1.2)
EDGE_PAUSE_MAX_S = 0.8
SPEAKER_CHANGE_PROB = 0.6  # clips whose voice gets a new vocal tract / pitch (engine.audio.speaker)
RATE_CHANGE_PROB = 0.3  # of those, the share whose speaking rate is stretched too
EXTREME_SPEAKER_PROB = 0.04  # clips given a speaker outside the training ranges: test only
EXTREME_SUFFIX = "~extreme"  # subject of such clips (held out like an unseen voice)
LEVEL_JITTER_DB = 4.0  # level after normalisation varies this much (engine.audio.level)
HELD_OUT_VARIANTS = 3  # eSpeak variants held out in every language (all their voices)
DRAWN_RATE_RANGE = (130, 230)  # words per minute drawn per clip (the voice accepts 80..450)
DRAWN_PITCH_RANGE = (25, 75)  # pitch drawn per clip (the voice accepts 0..100)
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
    shares = np.array([LANGUAGE_SHARE.get(lang, 0.15) for lang in plan.languages])
    lang = plan.languages[int(rng.choice(len(plan.languages), p=shares / shares.sum()))]
    by_engine = plan.voices[lang]
    engines = sorted(by_engine)
    if len(engines) > 1:
        weights = np.array([ENGINE_SHARE_EN.get(e, 0.1) for e in engines])
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    else:
        engine = engines[0]
    pool = by_engine[engine]
    voice = pool[int(rng.integers(len(pool)))]
    rate = int(rng.integers(DRAWN_RATE_RANGE[0], DRAWN_RATE_RANGE[1] + 1))
    pitch = int(rng.integers(DRAWN_PITCH_RANGE[0], DRAWN_PITCH_RANGE[1] + 1))
    return voice.with_prosody(rate, pitch)


def make_clip(plan: CorpusPlan, index: int) -> ClipResult:
    """Clip `index` of the corpus: depends only on (plan.seed, index)."""
    from engine.audio.augment import augment_with_info
    from engine.audio.level import TARGET_DBFS, normalize_level
    from engine.data.motion import render_motion
    from engine.data.sentences import generate_sentences
    from engine.data.style import SpeakerStyle
    from engine.data.tts import TTSError, synthesize

    rng = np.random.default_rng([plan.seed, index])
    voice = _pick_voice(plan, rng)
    t0 = time.perf_counter()

    def speak():
        for attempt in range(3):
            text = generate_sentences(voice.language, 1, rng)[0]
            try:
                return synthesize(text, voice)
            except TTSError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    utt = _with_pauses([speak() for _ in range(2 if rng.random() < PAUSED_PAIR_PROB else 1)], rng)
    t1 = time.perf_counter()
    if rng.random() < _NEUTRAL_SHARE:
        emotion = "neutral"
    else:
        emotion = EMOTIONS[int(rng.integers(1, len(EMOTIONS)))]
    intensity = 1.0 if emotion == "neutral" else round(float(rng.uniform(0.3, 1.0)), 3)
    style = SpeakerStyle.random(rng)
    motion_seed = int(rng.integers(2**31 - 1))
    audio, phones, words, speaker = _new_speaker(utt, rng)
    augmentation: dict | None = None
    if rng.random() < plan.augment_prob:
        audio, augmentation = augment_with_info(audio, utt.sample_rate, rng)
    audio = normalize_level(audio, TARGET_DBFS + float(rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)))
    duration = len(audio) / utt.sample_rate
    t2 = time.perf_counter()
    motion = render_motion(phones, emotion, intensity, style, plan.fps, duration, motion_seed)
    t3 = time.perf_counter()
    clip_id = f"{index:06d}-{voice.language}"
    subject = voice.id + (EXTREME_SUFFIX if speaker and speaker.get("extreme") else "")
    meta = {
        "text": utt.text,
        "language": voice.language,
        "voice": voice.to_dict(),
        "voice_id": voice.id,
        "engine": voice.engine,
        "speaker_change": speaker,
        "phones": phones,
        "words": [{"word": w, "start": s, "end": e} for w, s, e in words],
        "emotion": emotion,
        "intensity": intensity,
        "style": style.to_dict(),
        "augmentation": augmentation,
        "motion_seed": motion_seed,
        "corpus_seed": plan.seed,
        "clip_index": index,
    }
    return ClipResult(clip_id, subject, audio, motion.arkit, motion.vertices, meta, t1 - t0, t3 - t2)


def _with_pauses(utterances: list, rng: np.random.Generator):
    """One utterance from several, with silence before, between and after them.

    Users' takes have pauses (breaths, sentence breaks, a silent head and tail); the face must rest
    in them. Single TTS sentences have almost none, so the corpus adds them (0.3-1.2 s between
    sentences, up to 0.8 s at the ends), with the phone track extended by silence to match."""
    from dataclasses import replace

    from engine.data.tts.voice import tile_phones
    from engine.phonemes import SILENCE

    sr = utterances[0].sample_rate
    pieces: list[np.ndarray] = []
    segments: list[tuple[str, float, float]] = []
    words: list[tuple[str, float, float]] = []
    cursor = 0.0

    def silence(seconds: float) -> None:
        nonlocal cursor
        pieces.append(np.zeros(int(round(seconds * sr)), dtype=np.float32))
        cursor += len(pieces[-1]) / sr

    silence(float(rng.uniform(0.0, EDGE_PAUSE_MAX_S)) if rng.random() < 0.5 else 0.0)
    for i, utt in enumerate(utterances):
        if i:
            silence(float(rng.uniform(*BETWEEN_PAUSE_S)))
        segments += [(p.phone, p.start + cursor, p.end + cursor) for p in utt.phones if p.phone != SILENCE]
        words += [(w, a + cursor, b + cursor) for w, a, b in utt.words]
        pieces.append(np.asarray(utt.audio, dtype=np.float32))
        cursor += len(utt.audio) / sr
    silence(float(rng.uniform(0.0, EDGE_PAUSE_MAX_S)) if rng.random() < 0.5 else 0.0)
    audio = np.concatenate(pieces)
    phones = tile_phones(segments, len(audio) / sr)
    text = " ".join(u.text for u in utterances)
    return replace(utterances[0], audio=audio, phones=phones, words=words, text=text)


def _new_speaker(utt, rng: np.random.Generator):
    """Maybe give the utterance a new speaker (and rate): (audio, phones, words, record or None)."""
    from engine.audio.speaker import SpeakerChange, change_rate, change_speaker
    from engine.data.record import Phone

    if rng.random() >= SPEAKER_CHANGE_PROB:
        return utt.audio, utt.phones, utt.words, None
    extreme = bool(rng.random() < EXTREME_SPEAKER_PROB)
    change = SpeakerChange.random(rng, extreme)
    audio = change_speaker(utt.audio, utt.sample_rate, change)
    factor = 1.0
    if rng.random() < RATE_CHANGE_PROB:
        audio, factor = change_rate(audio, change.rate)
    phones = [Phone(p.phone, p.start * factor, p.end * factor) for p in utt.phones]
    words = [(w, a * factor, b * factor) for w, a, b in utt.words]
    record = change.to_dict() | {"rate": round(1.0 / factor, 4), "extreme": extreme}
    return audio, phones, words, record


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
                    MODEL_SAMPLE_RATE,
                    clip.vertices,
                    template,
                    clip.arkit,
                    clip.meta,
                )
                seconds = len(clip.audio) / MODEL_SAMPLE_RATE
                records.append(
                    {
                        "clip_id": clip.clip_id,
                        "subject": clip.subject,
                        "text": clip.meta["text"],
                        "engine": clip.meta["engine"],
                        "language": clip.meta["language"],
                    }
                )
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
        held_voices = set(plan.held_out_voices) | {
            r["subject"] for r in records if EXTREME_SUFFIX in r["subject"]
        }
        splits = build_splits(records, held_voices, held_sentences, VAL_FRACTION, seed)
        views = unseen_engine_views(records, splits)
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
                "view_sizes": {k: len(v) for k, v in views.items()},
                "speed": summary,
            },
            views=views,
        )
    return summary


def unseen_engine_views(records: Sequence[dict], splits: dict[str, list[str]]) -> dict[str, list[str]]:
    """The unseen-engine folds, for every English engine E with clips: `unseen-E` (E's English clips,
    from any split, extreme speakers excepted), `train-without-E` and `val-without-E` (train / val
    without any English clip of E). Train on one fold, test on its `unseen-E` (engine.eval)."""
    views: dict[str, list[str]] = {}
    english = [r for r in records if r["language"] == "en"]
    for engine in sorted({r["engine"] for r in english}):
        of_engine = {r["clip_id"] for r in english if r["engine"] == engine}
        views[f"unseen-{engine}"] = [
            r["clip_id"] for r in english if r["clip_id"] in of_engine and EXTREME_SUFFIX not in r["subject"]
        ]
        views[f"train-without-{engine}"] = [i for i in splits["train"] if i not in of_engine]
        views[f"val-without-{engine}"] = [i for i in splits["val"] if i not in of_engine]
    return views


def _check_args(out, hours, workers, languages, fps, augment_prob, overwrite) -> tuple[str, ...]:
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ValueError(f"--hours must be a positive number, got {hours!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    langs = tuple(dict.fromkeys(lang.strip() for lang in languages if lang.strip()))
    unknown = [lang for lang in langs if lang not in LANGUAGES]
    if not langs or unknown:
        raise ValueError(f"--languages {','.join(languages)!r}: choose from {','.join(LANGUAGES)}")
    if float(fps) not in CORPUS_FPS:
        raise ValueError(f"--fps must be one of {', '.join(f'{f:g}' for f in CORPUS_FPS)}, got {fps!r}")
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
