"""The engine side of script mode: one call turns a decoded take into a scripted one.

`Engine` decodes the audio as always (the audio head's log-probs drive the aligner, and the model's
motion is the fallback), then `script_take` aligns the text, drives the rig from the aligned phones,
keeps the model's motion where words did not align and builds word captions. It works with either
backend (torch or the numpy runtime) through the runner's `audio_logprobs`; nothing here imports torch
unless the features are torch tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.animation import Caption, TimedPhone
from engine.script.lexicon import lexicon_for
from engine.script.motion import blend_motion, fallback_mask, scripted_motion
from engine.script.take import ALIGN_RATE_FACTOR, phones_for_motion, script_result
from engine.script.words import alignment_record, word_captions

Motion = tuple[np.ndarray, np.ndarray]  # (offsets [T, 468, 3], ARKit [T, 52])


@dataclass
class ScriptedTake:
    offsets: np.ndarray
    arkit: np.ndarray
    captions: list[Caption]
    record: dict  # alignment_record(...): goes into the take's meta["script"]


@dataclass(frozen=True)
class ScriptInput:
    """What script mode needs to know about a prepared take."""

    text: str
    language: str | None  # None or "auto": detected from the text
    audio: np.ndarray  # 16 kHz mono float32
    fps: float
    schedule: list  # emotion keyframes (time_s, emotion, intensity)
    style: np.ndarray  # the speaker-style vector
    source: str | None = None  # the audio file (its folder's lexicon files apply), None for arrays
    aligner: str = "auto"


def upsample_frames(features, factor: int):
    """[T, D] features (numpy or torch) at the motion rate -> [T * factor, D], linear in time."""
    n = int(features.shape[0])
    position = np.arange(n * factor, dtype=np.float64) / factor
    lo = np.minimum(np.floor(position).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = (position - lo)[:, None].astype(np.float32)
    if isinstance(features, np.ndarray):
        return features[lo] + (features[hi] - features[lo]) * frac
    import torch

    weight = torch.from_numpy(frac).to(features.device, features.dtype)
    lo_t, hi_t = torch.from_numpy(lo).to(features.device), torch.from_numpy(hi).to(features.device)
    return features[lo_t] + (features[hi_t] - features[lo_t]) * weight


def align_logprobs(runner, clip) -> np.ndarray:
    """The audio head's log-probs at ALIGN_RATE_FACTOR x the motion rate: finer phone boundaries."""
    finer = dataclasses.replace(clip, audio_feat=upsample_frames(clip.audio_feat, ALIGN_RATE_FACTOR))
    return np.asarray(runner.audio_logprobs(finer), dtype=np.float64)


def script_take(
    runner,
    take: ScriptInput,
    clip,
    model_motion: Callable[[], Motion],
    lip_phones: list[TimedPhone],
    n_frames: int,
) -> ScriptedTake:
    """Align the take's text and return its scripted motion and word captions.

    `clip` is the runner's decoder input (its audio features feed the aligner); `model_motion()`
    gives the model's finished audio-only motion, asked for only when some words did not align;
    `lip_phones` is what the lip reader reads off the model's motion. The words' sync scores compare
    those with the aligned phones: where the model, hearing only the audio, moved the lips as the
    script says, script and audio agree.
    """
    fps = take.fps
    lexicon = lexicon_for(take.source)
    logprobs = align_logprobs(runner, clip)
    result = script_result(
        take.audio, take.text, take.language, logprobs, fps * ALIGN_RATE_FACTOR, take.aligner, lexicon
    )
    offsets, arkit = scripted_motion(
        phones_for_motion(result.alignment), n_frames, fps, take.schedule, take.style
    )
    mask = fallback_mask(result.bad_words, n_frames, fps) if result.fits else np.ones(n_frames)
    if mask.any():
        offsets, arkit = blend_motion((offsets, arkit), model_motion(), mask)
    record = alignment_record(result.alignment, result.language, result.phonemizer, result.warnings)
    record["fits"] = result.fits
    record["bad_words"] = [w.text for w in result.bad_words]
    record["fallback_seconds"] = round(float(mask.sum()) / fps, 3)
    record["lexicons"] = list(lexicon.sources)
    captions = word_captions(result.alignment, lip_phones)
    return ScriptedTake(offsets.astype(np.float32), arkit.astype(np.float32), captions, record)
