"""Head nods, turns and brow raises that follow the voice.

Speakers nod on pitch accents, the head movement starting a little before the accent (Hadar et
al. 1983; Graf et al. 2002), raise their brows on the most prominent ones (Cavé et al. 1996), and
drift slowly while they talk. This layer is light: a few degrees, driven by prosody, scaled by the
emotion (sad heads droop and move little, happy and angry ones move more) and deterministic for a
seed. Angles are Blender Euler XYZ degrees of the head: x nods the nose down, y tilts, z turns the
nose toward the subject's left.
"""

from __future__ import annotations

import numpy as np

from engine.emotions import EMOTIONS, emotion_id
from engine.layers.prosody import Prosody

NOD_DEGREES = 2.5  # down-nod on the strongest accent
NOD_SECONDS, NOD_LEAD = 0.5, 0.12  # a nod's length, and how early it starts before the accent
DRIFT_DEGREES = np.array([1.2, 1.0, 2.0])  # slow sway per axis while speaking
DRIFT_HZ = (0.08, 0.35)
BROW_RAISE = 0.3  # browInnerUp on the strongest accent
BROW_ACCENT = 0.5  # accents weaker than this (of the strongest) do not lift the brows
FADE_SECONDS = 0.3  # motion fades in and out at the ends of the clip
# (motion gain, x bias deg (nose down), y bias deg (tilt), brow gain) at intensity 1
EMOTION_HEAD = {"neutral": (1.0, 0.0, 0.0, 1.0), "calm": (0.6, 0.0, 0.0, 0.6),
                "happy": (1.3, -1.0, 2.0, 1.2), "sad": (0.6, 4.0, 0.0, 0.5),
                "angry": (1.3, 2.0, 0.0, 0.3), "fearful": (0.9, -1.0, 0.0, 1.2),
                "disgust": (0.9, -2.0, -1.5, 0.4), "surprised": (1.2, -3.0, 0.0, 1.5)}  # fmt: skip
assert set(EMOTION_HEAD) == set(EMOTIONS)


def _pulse(times: np.ndarray, start: float, length: float) -> np.ndarray:
    phase = np.clip((times - start) / length, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(2 * np.pi * phase)


def _profile(emotion: str, intensity: float) -> tuple[float, float, float, float]:
    gain, down, tilt, brow = EMOTION_HEAD[EMOTIONS[emotion_id(emotion)]]
    return 1.0 + (gain - 1.0) * intensity, down * intensity, tilt * intensity, 1.0 + (brow - 1.0) * intensity


def head_motion(
    prosody: Prosody, emotion: str, intensity: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """([T, 3] head Euler degrees, [T] brow raise 0..1) for the clip."""
    n, fps = prosody.n_frames, prosody.fps
    times = np.arange(n) / fps
    gain, down, tilt, brow_gain = _profile(emotion, intensity)
    # slow sway, stronger while speaking
    freqs = rng.uniform(*DRIFT_HZ, size=(3, 3))
    phases = rng.uniform(0.0, 2 * np.pi, size=(3, 3))
    sway = np.sin(2 * np.pi * freqs[:, :, None] * times[None, None] + phases[:, :, None]).sum(axis=1) / 1.7
    width = max(1, int(round(0.5 * fps)))
    activity = np.convolve(prosody.energy.astype(np.float64), np.ones(width) / width, mode="same")
    angles = (sway * DRIFT_DEGREES[:, None] * (0.35 + 0.65 * activity)[None]).T
    brows = np.zeros(n)
    for when, strength in zip(prosody.accents, prosody.accent_strength):
        bump = _pulse(times, when - NOD_LEAD, NOD_SECONDS)
        angles[:, 0] += NOD_DEGREES * strength * bump
        angles[:, 2] += rng.normal(0.0, 0.6) * strength * bump
        if strength >= BROW_ACCENT:
            brows = np.maximum(brows, BROW_RAISE * strength * _pulse(times, when - 0.15, 0.6))
    angles *= gain
    angles[:, 0] += down
    angles[:, 1] += tilt
    fade = (
        np.clip(np.minimum(times, times[-1] - times if n else times) / FADE_SECONDS, 0.0, 1.0) if n else times
    )
    fade = 0.5 - 0.5 * np.cos(np.pi * fade)
    angles *= fade[:, None]
    return angles.astype(np.float32), np.clip(brows * brow_gain * fade, 0.0, 1.0).astype(np.float32)
