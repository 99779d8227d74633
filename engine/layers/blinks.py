"""Spontaneous blinks: when they happen, how long they last, and the lid closure curve.

Numbers from the blink literature: about 17 blinks a minute at rest and 20-26 in conversation
(Bentivoglio et al. 1997; Doughty 2001), inter-blink intervals right-skewed with a refractory
minimum (gamma-like), a blink lasting 100-400 ms with the lid closing faster than it reopens
(Kwon et al. 2013), and blinks bunching at speech pauses and phrase boundaries (Nakano &
Kitazawa 2010). Anxiety and fear raise the rate, surprise and attention suppress it.
"""

from __future__ import annotations

import numpy as np

from engine.emotions import EMOTIONS, emotion_id
from engine.layers.prosody import Prosody

RATE_PER_MINUTE = 21.0  # conversation
MIN_INTERVAL = 0.6  # s: refractory gap between blinks
INTERVAL_SHAPE = 2.2  # gamma shape of the inter-blink interval
DURATION_MEDIAN, DURATION_SPREAD, DURATION_RANGE = 0.2, 0.25, (0.12, 0.4)  # s, log-normal sigma, clip
CLOSING_SHARE, HOLD_SHARE = 0.3, 0.12  # of the duration; the rest is the slower reopening
PAUSE_BLINK_PROBABILITY = 0.6  # a blink within 0.05-0.3 s of a pause's start
# Rate and duration factors at intensity 1 (interpolated from 1 at intensity 0).
EMOTION_RATE = {"neutral": 1.0, "calm": 0.75, "happy": 1.05, "sad": 0.85, "angry": 1.15,
                "fearful": 1.5, "disgust": 1.1, "surprised": 0.5}  # fmt: skip
EMOTION_DURATION = {"neutral": 1.0, "calm": 1.15, "happy": 1.0, "sad": 1.25, "angry": 0.9,
                    "fearful": 0.9, "disgust": 1.0, "surprised": 0.9}  # fmt: skip
assert set(EMOTION_RATE) == set(EMOTIONS) == set(EMOTION_DURATION)


def blink_times(
    prosody: Prosody, emotion: str, intensity: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(start times [K] s, durations [K] s) of the blinks over the clip."""
    name = EMOTIONS[emotion_id(emotion)]
    rate = RATE_PER_MINUTE * (1.0 + (EMOTION_RATE[name] - 1.0) * intensity)
    length = 1.0 + (EMOTION_DURATION[name] - 1.0) * intensity
    duration = prosody.n_frames / prosody.fps
    mean_gap = 60.0 / rate
    pauses = list(prosody.pause_starts)
    starts: list[float] = []
    t = rng.uniform(0.2, min(mean_gap, 2.0))
    while t < duration:
        upcoming = [p for p in pauses if (starts[-1] if starts else -1.0) + MIN_INTERVAL <= p < t]
        for p in upcoming:  # a pause came before the next spontaneous blink: maybe blink there
            pauses.remove(p)
            if rng.random() < PAUSE_BLINK_PROBABILITY:
                t = p + rng.uniform(0.05, 0.3)
                break
        starts.append(t)
        gap = rng.gamma(INTERVAL_SHAPE, (mean_gap - MIN_INTERVAL) / INTERVAL_SHAPE)
        t += MIN_INTERVAL + gap
    starts_arr = np.asarray([s for s in starts if s < duration])
    durations = np.clip(
        DURATION_MEDIAN * length * np.exp(rng.normal(0.0, DURATION_SPREAD, len(starts_arr))), *DURATION_RANGE
    )
    return starts_arr, durations


def closure_curve(starts: np.ndarray, durations: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """[T] lid closure 0..1; each blink holds full closure for at least one frame."""
    times = np.arange(n_frames) / fps
    curve = np.zeros(n_frames)
    for start, length in zip(starts, durations):
        close = CLOSING_SHARE * length
        hold = max(HOLD_SHARE * length, 1.0 / fps)
        reopen = length - close
        rel = times - start
        closing = 0.5 - 0.5 * np.cos(np.pi * np.clip(rel / close, 0.0, 1.0))
        opening = 0.5 + 0.5 * np.cos(np.pi * np.clip((rel - close - hold) / reopen, 0.0, 1.0))
        shape = np.where(rel < close, closing, np.where(rel < close + hold, 1.0, opening))
        shape[(rel < 0) | (rel > close + hold + reopen)] = 0.0
        curve = np.maximum(curve, shape)
    return curve.astype(np.float32)


def blinks(prosody: Prosody, emotion: str, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """[T] closure of both lids for the clip."""
    starts, durations = blink_times(prosody, emotion, intensity, rng)
    return closure_curve(starts, durations, prosody.fps, prosody.n_frames)
