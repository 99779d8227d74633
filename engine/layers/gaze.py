"""Where the eyes look: fixations on the listener (the camera), glances away, and saccades between.

Speakers look away from the listener for much of the time they talk, mostly at the start of a
phrase, and look back toward its end (Kendon 1967; Argyle & Cook 1976). Gaze moves in saccades:
fast (20-30 ms plus about 2.5 ms per degree, the main sequence of Bahill et al. 1975), mostly
small, between fixations of a few hundred milliseconds. Sadness lowers the gaze, fear makes it
restless, anger holds it. Angles are degrees: yaw toward the subject's left, pitch up.
"""

from __future__ import annotations

import numpy as np

from engine.arkit import ARKIT_NAMES
from engine.emotions import EMOTIONS, emotion_id
from engine.layers.prosody import Prosody

FULL_LOOK_DEGREES = 30.0  # an eyeLook* weight of 1 turns the eye this far
FIXATION_MEDIAN, FIXATION_SPREAD = 0.9, 0.45  # s, log-normal sigma
AWAY_PROBABILITY = 0.35  # a fixation away from the listener while speaking
AWAY_AT_PHRASE_START = 0.6  # ... right after a pause
AWAY_YAW, AWAY_PITCH = 9.0, 5.0  # degrees: typical glance away
SMALL_SACCADE = 1.2  # degrees: mean drift between fixations on the listener
# (aversion factor, pitch bias in degrees, restlessness factor) at intensity 1
EMOTION_GAZE = {"neutral": (1.0, 0.0, 1.0), "calm": (0.8, -2.0, 0.7), "happy": (0.9, 1.0, 1.1),
                "sad": (1.4, -8.0, 0.7), "angry": (0.4, 0.0, 0.8), "fearful": (1.3, 0.0, 1.8),
                "disgust": (1.2, -2.0, 1.0), "surprised": (0.6, 2.0, 1.3)}  # fmt: skip
assert set(EMOTION_GAZE) == set(EMOTIONS)


def _blend(value: float, intensity: float) -> float:
    return 1.0 + (value - 1.0) * intensity


def fixations(
    prosody: Prosody, emotion: str, intensity: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(start times [K] s, targets [K, 2] yaw/pitch degrees) of successive fixations."""
    aversion, bias, restless = EMOTION_GAZE[EMOTIONS[emotion_id(emotion)]]
    aversion, restless = _blend(aversion, intensity), _blend(restless, intensity)
    bias *= intensity
    duration = prosody.n_frames / prosody.fps
    pauses = sorted(prosody.pause_starts)
    starts, targets = [0.0], [np.array([0.0, bias])]
    t = 0.0
    while True:
        t += np.clip(FIXATION_MEDIAN / restless * np.exp(rng.normal(0.0, FIXATION_SPREAD)), 0.15, 4.0)
        if t >= duration:
            break
        frame = min(int(t * prosody.fps), prosody.n_frames - 1)
        after_pause = any(0.0 <= t - p < 0.6 for p in pauses)
        speaking = bool(prosody.speaking[frame]) if prosody.n_frames else False
        p_away = (AWAY_AT_PHRASE_START if after_pause else AWAY_PROBABILITY) * aversion if speaking else 0.15
        if rng.random() < min(p_away, 0.9):
            side = rng.choice([-1.0, 1.0])
            target = np.array([side * AWAY_YAW * rng.uniform(0.5, 1.5), rng.normal(-0.3, 1.0) * AWAY_PITCH])
        else:
            target = rng.normal(0.0, SMALL_SACCADE * restless, 2)
        target[1] += bias
        starts.append(t)
        targets.append(target)
    return np.asarray(starts), np.asarray(targets)


def gaze_angles(starts: np.ndarray, targets: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """[T, 2] yaw/pitch degrees: each fixation reached by a saccade on the main sequence."""
    times = np.arange(n_frames) / fps
    angles = np.tile(targets[0], (n_frames, 1)).astype(np.float64)
    for k in range(1, len(starts)):
        step = targets[k] - targets[k - 1]
        length = 0.025 + 0.0025 * float(np.linalg.norm(step))
        progress = np.clip((times - starts[k]) / length, 0.0, 1.0)
        angles += (0.5 - 0.5 * np.cos(np.pi * progress))[:, None] * step[None]
    return angles.astype(np.float32)


def gaze(prosody: Prosody, emotion: str, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """[T, 2] eye yaw/pitch in degrees (both eyes look the same way)."""
    starts, targets = fixations(prosody, emotion, intensity, rng)
    return gaze_angles(starts, targets, prosody.fps, prosody.n_frames)


def look_channels(angles: np.ndarray) -> dict[str, np.ndarray]:
    """ARKit eyeLook* weights for [T, 2] yaw/pitch degrees (yaw toward the subject's left)."""
    yaw = angles[:, 0] / FULL_LOOK_DEGREES
    pitch = angles[:, 1] / FULL_LOOK_DEGREES
    out = {
        "eyeLookOutLeft": yaw, "eyeLookInRight": yaw, "eyeLookInLeft": -yaw, "eyeLookOutRight": -yaw,
        "eyeLookUpLeft": pitch, "eyeLookUpRight": pitch, "eyeLookDownLeft": -pitch, "eyeLookDownRight": -pitch,
    }  # fmt: skip
    assert set(out) <= set(ARKIT_NAMES)
    return {name: np.clip(value, 0.0, 1.0).astype(np.float32) for name, value in out.items()}
