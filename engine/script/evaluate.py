"""Measure script mode on held-out TTS speech whose phone and word times are known exactly.

    python -m engine.script.evaluate --clips 24 --json out/script_eval.json
    python -m engine.script.evaluate --bench      # 60 s in-process CPU take, with and without text

Voices are the corpus's held-out ones (Flite slt; eSpeak variants Hugo, f3, norbert in every
language), sentences the held-out ones (`engine.data.sentences.is_held_out`). Reports per aligner and
language the median word-boundary error and cost ("shipped": the whole scripted take through
`Engine`, aligner "auto"; "ctc" and "pocketsphinx": encoding plus that aligner alone), and per
output (the audio-only take, the scripted take) the bilabial closure and silence rest rates for
vertex and ARKit output.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE

HELD_OUT_VOICES = (
    ("flite", "slt", "en", None),
    ("espeak", "en-us", "en", "f3"),
    ("espeak", "en-gb-x-rp", "en", "Hugo"),
    ("espeak", "en", "en", "norbert"),
    ("espeak", "es", "es", "f3"),
    ("espeak", "de", "de", "Hugo"),
    ("espeak", "fr", "fr", "norbert"),
    ("espeak", "it", "it", "f3"),
)


@dataclass
class Clip:
    audio: np.ndarray  # 16 kHz float32
    phones: list  # engine.data.record.Phone, covering the clip
    words: list  # (word, start, end)


def _join(first, second, pause_s: float) -> Clip:
    """Two utterances with `pause_s` of silence between them: a script line with a real pause."""
    from engine.data.record import Phone

    gap = np.zeros(int(round(pause_s * MODEL_SAMPLE_RATE)), np.float32)
    shift = (len(first.audio) + len(gap)) / MODEL_SAMPLE_RATE
    phones = list(first.phones)
    last = phones[-1]
    phones[-1] = Phone(last.phone, last.start, shift) if last.phone == "sil" else last
    if last.phone != "sil":
        phones.append(Phone("sil", last.end, shift))
    phones += [Phone(p.phone, p.start + shift, p.end + shift) for p in second.phones]
    merged: list = []
    for p in phones:  # fuse the silence runs the join creates
        if merged and p.phone == "sil" and merged[-1].phone == "sil":
            merged[-1] = Phone("sil", merged[-1].start, p.end)
        else:
            merged.append(p)
    words = list(first.words) + [(w, a + shift, b + shift) for w, a, b in second.words]
    return Clip(np.concatenate([first.audio, gap, second.audio]), merged, words)


def held_out_clips(n_clips: int, seed: int = 7):
    """(voice, script, clip): held-out voices speaking two held-out sentences with a pause between."""
    from engine.data.sentences import generate_sentences, is_held_out
    from engine.data.tts import Voice, synthesize

    rng = np.random.default_rng(seed)
    clips = []
    for k in range(n_clips):
        engine, name, language, variant = HELD_OUT_VOICES[k % len(HELD_OUT_VOICES)]
        held = [s for s in generate_sentences(language, 400, rng) if is_held_out(s)][:2]
        voice = Voice(engine, name, language, variant=variant)
        first, second = (synthesize(s, voice) for s in held)
        clips.append((voice, " ".join(held), _join(first, second, float(rng.uniform(0.5, 1.0)))))
    return clips


def _words_of(record: dict) -> list[tuple[str, float, float]]:
    return [(w["text"], w["start"], w["end"]) for w in record["words"]]


def boundary_errors(aligned: list[tuple[str, float, float]], reference: list) -> list[float]:
    """|start| and |end| errors of words matched in order (both lists: (word, start, end))."""
    errors = []
    for (_, start, end), (_, ref_start, ref_end) in zip(aligned, reference):
        errors += [abs(start - ref_start), abs(end - ref_end)]
    return errors


def _aligner_words(
    engine, clip: Clip, script: str, language: str, aligner: str
) -> list[tuple[str, float, float]]:
    """One aligner alone on the clip, fed exactly as `Engine` feeds script mode."""
    from engine.request import as_request
    from engine.script.scripted import align_logprobs
    from engine.script.take import ALIGN_RATE_FACTOR, align_take

    job = engine._prepare(as_request(clip.audio, sample_rate=MODEL_SAMPLE_RATE, text=""))
    logprobs = align_logprobs(engine.runner, engine._encode(job, None))
    rate = job.fps * ALIGN_RATE_FACTOR
    alignment = align_take(job.audio, script, language, logprobs, rate, aligner=aligner)
    return [(w.text, w.start, w.end) for w in alignment.words]


def _measure_clip(engine, voice, script: str, clip: Clip, fps: float, results: dict) -> None:
    from engine.script.evaluate_motion import motion_rates

    audio_s = len(clip.audio) / MODEL_SAMPLE_RATE
    started = time.perf_counter()
    take = engine.animate(
        clip.audio, sample_rate=MODEL_SAMPLE_RATE, fps=fps, text=script, language=voice.language
    )
    runs = {"shipped": (_words_of(take.meta["script"]), time.perf_counter() - started)}
    for aligner in ("ctc", "pocketsphinx") if voice.language == "en" else ("ctc",):
        started = time.perf_counter()
        try:
            words = _aligner_words(engine, clip, script, voice.language, aligner)
        except RuntimeError as error:
            print(f"{aligner} failed on {script!r}: {error}")
            results["failures"][aligner] = results["failures"].get(aligner, 0) + 1
            continue
        runs[aligner] = (words, time.perf_counter() - started)
    for aligner, (words, seconds) in runs.items():
        key = f"{aligner}/{voice.language}"
        results["cost_s"][key] = results["cost_s"].get(key, 0.0) + seconds
        results["audio_s_by"][key] = results["audio_s_by"].get(key, 0.0) + audio_s
        if len(words) == len(clip.words):
            results["errors"].setdefault(key, []).extend(boundary_errors(words, clip.words))
    motion_rates(engine, take, clip, fps, results["motion"])


def bench_scripted(seconds: float = 60.0, repeats: int = 3, threads: int | None = None) -> dict:
    """Wall and CPU time of an in-process CPU take of `seconds` of speech, with and without its
    script (CPU time is what a busy shared machine does not inflate, with one thread)."""
    from engine.api import Engine
    from engine.data.sentences import generate_sentences
    from engine.data.tts import Voice, synthesize

    voice = Voice("espeak", "en-us", "en", variant="f3")
    pieces, lines, total = [], [], 0.0
    for sentence in generate_sentences("en", 200, np.random.default_rng(3)):
        utt = synthesize(sentence, voice)
        pieces += [utt.audio, np.zeros(4000, np.float32)]
        lines.append(sentence)
        total += len(utt.audio) / MODEL_SAMPLE_RATE + 0.25
        if total >= seconds:
            break
    audio = np.concatenate(pieces)[: int(seconds * MODEL_SAMPLE_RATE)]
    script = " ".join(lines)
    engine = Engine(device="cpu", threads=threads)
    engine.animate(
        audio[: 2 * MODEL_SAMPLE_RATE], sample_rate=MODEL_SAMPLE_RATE, text=lines[0]
    )  # warm-up: imports, eSpeak, caches
    times: dict[str, list[float]] = {"audio_only": [], "with_text": []}
    cpu: dict[str, list[float]] = {"audio_only": [], "with_text": []}
    for _ in range(repeats):
        for key, text in (("audio_only", ""), ("with_text", script)):
            started, started_cpu = time.perf_counter(), time.process_time()
            engine.animate(audio, sample_rate=MODEL_SAMPLE_RATE, text=text)
            times[key].append(time.perf_counter() - started)
            cpu[key].append(time.process_time() - started_cpu)
    return {
        "audio_s": round(len(audio) / MODEL_SAMPLE_RATE, 1),
        "backend": engine.backend,
        **{f"{key}_s": round(float(np.median(v)), 3) for key, v in times.items()},
        **{f"{key}_cpu_s": round(float(np.median(v)), 3) for key, v in cpu.items()},
    }


def main(argv: list[str] | None = None) -> int:
    from engine.api import Engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--bench", action="store_true", help="time a 60 s take with and without its script")
    args = parser.parse_args(argv)
    if args.bench:
        print(json.dumps(bench_scripted(), indent=1))
        return 0
    engine = Engine(device="cpu", threads=1)
    results: dict = {"errors": {}, "cost_s": {}, "audio_s_by": {}, "motion": {}, "failures": {}}
    for voice, script, clip in held_out_clips(args.clips):
        _measure_clip(engine, voice, script, clip, args.fps, results)
    summary = {
        "median_word_boundary_error_ms": {
            k: round(1000 * float(np.median(v)), 1) for k, v in results["errors"].items()
        },
        "p90_word_boundary_error_ms": {
            k: round(1000 * float(np.percentile(v, 90)), 1) for k, v in results["errors"].items()
        },
        "seconds_per_audio_second": {
            k: round(v / results["audio_s_by"][k], 4) for k, v in results["cost_s"].items()
        },
        "aligner_failures": results["failures"],
        "motion": {k: round(v[0] / max(v[1], 1), 4) for k, v in results["motion"].items()},
        "motion_counts": results["motion"],
        "audio_s": round(sum(v for k, v in results["audio_s_by"].items() if k.startswith("shipped/")), 1),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
