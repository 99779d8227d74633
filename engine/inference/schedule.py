"""Emotion over time: the per-frame conditioning the decoder reads, built from a few user keyframes.

The model's `cond [T, 8]` is the emotion one-hot scaled by intensity, per frame, so a schedule is just
keyframes linearly interpolated in that space: a cross-fade from happy to sad passes through a blend
of both rather than snapping at a frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.emotions import EMOTIONS, emotion_id

Keyframe = tuple[float, str, float]  # (time in seconds, emotion name, intensity 0..1)
EmotionSpec = str | Sequence[Keyframe]


def parse_schedule(emotion: EmotionSpec, intensity: float = 1.0) -> list[Keyframe]:
    """Validate `emotion` (a name or keyframes) and return sorted keyframes with `intensity` applied.

    `intensity` scales every keyframe, so a schedule written once can be played stronger or softer.
    """
    if not 0.0 <= float(intensity) <= 1.0 or math.isnan(float(intensity)):
        raise ValueError(f"intensity must be between 0 and 1, got {intensity}")
    if isinstance(emotion, str):
        emotion_id(emotion)
        return [(0.0, emotion.strip().lower(), float(intensity))]
    keys = list(emotion)
    if not keys:
        raise ValueError("the emotion schedule is empty; give at least one (time_s, emotion, intensity)")
    parsed: list[Keyframe] = []
    for key in keys:
        if isinstance(key, dict):
            key = (key.get("time"), key.get("emotion"), key.get("intensity", 1.0))
        if not isinstance(key, (tuple, list)) or len(key) != 3:
            raise ValueError(f"schedule entry {key!r} must be (time_s, emotion, intensity)")
        time_s, name, strength = key
        time_s, strength = float(time_s), float(strength)
        if not math.isfinite(time_s) or time_s < 0:
            raise ValueError(f"schedule time {time_s} must be a finite number of seconds >= 0")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"schedule intensity {strength} at {time_s}s must be between 0 and 1")
        emotion_id(str(name))
        parsed.append((time_s, str(name).strip().lower(), strength * float(intensity)))
    times = [k[0] for k in parsed]
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError(f"schedule times must be in ascending order, got {times}")
    return parsed


def schedule_to_cond(keys: Sequence[Keyframe], n_frames: int, fps: float, first_frame: int = 0) -> np.ndarray:
    """`[n_frames, 8]` conditioning of frames `first_frame...`: keyframes linearly interpolated at each
    frame's time, held before the first and after the last."""
    key_times = np.array([k[0] for k in keys], dtype=np.float64)
    key_vectors = np.zeros((len(keys), len(EMOTIONS)), dtype=np.float64)
    for i, (_, name, strength) in enumerate(keys):
        key_vectors[i, emotion_id(name)] = strength
    frame_times = (first_frame + np.arange(n_frames, dtype=np.float64)) / float(fps)
    cond = np.empty((n_frames, len(EMOTIONS)), dtype=np.float32)
    for column in range(len(EMOTIONS)):
        cond[:, column] = np.interp(frame_times, key_times, key_vectors[:, column])
    return cond


def emotion_cond(emotion: EmotionSpec, intensity: float, n_frames: int, fps: float) -> np.ndarray:
    return schedule_to_cond(parse_schedule(emotion, intensity), n_frames, fps)
