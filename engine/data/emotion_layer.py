"""What each of the 8 RAVDESS emotions does to the face, on top of articulation.

Two effects, both proportional to intensity so that any emotion at intensity 0 is exactly neutral:
an *expression* added to the upper face and mouth corners (values follow the FACS action units usually
reported for the basic emotions: AU6+12 happy, AU1+4+15 sad, AU4+5+7+23 angry, AU1+2+4+5+20 fearful,
AU9+10 disgust, AU1+2+5+26 surprised), and a change of *articulation* (angry speech uses a stronger
jaw, sad speech is hypo-articulated). The intensity drifts slowly over time so that held emotions do
not look frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES
from engine.emotions import EMOTIONS, emotion_id


@dataclass(frozen=True)
class EmotionProfile:
    """An emotion at intensity 1.

    expression: ARKit weights added to the face (names without a side apply to both sides).
    articulation: factor on all speech movement; jaw: extra factor on jawOpen during speech;
    jaw_rest: jaw opening held even in silence (surprise drops the jaw).
    """

    expression: dict[str, float] = field(default_factory=dict)
    articulation: float = 1.0
    jaw: float = 1.0
    jaw_rest: float = 0.0


PROFILES: dict[str, EmotionProfile] = {
    "neutral": EmotionProfile(),
    "calm": EmotionProfile(
        {"mouthSmile": 0.08, "eyeSquint": 0.08, "cheekSquint": 0.04, "eyeLookDown": 0.05},
        articulation=0.88,
        jaw=0.95,
    ),
    "happy": EmotionProfile(
        {
            "mouthSmile": 0.55,
            "cheekSquint": 0.45,
            "eyeSquint": 0.35,
            "mouthDimple": 0.15,
            "browOuterUp": 0.10,
            "mouthUpperUp": 0.05,
        },
        articulation=1.05,
    ),  # fmt: skip
    "sad": EmotionProfile(
        {
            "browInnerUp": 0.60,
            "browDown": 0.15,
            "mouthFrown": 0.45,
            "mouthShrugLower": 0.20,
            "eyeLookDown": 0.15,
            "eyeSquint": 0.10,
        },
        articulation=0.70,
        jaw=0.85,
    ),  # fmt: skip
    "angry": EmotionProfile(
        {
            "browDown": 0.70,
            "eyeSquint": 0.35,
            "eyeWide": 0.10,
            "noseSneer": 0.25,
            "mouthPress": 0.20,
            "mouthFrown": 0.15,
        },
        articulation=1.20,
        jaw=1.25,
    ),  # fmt: skip
    "fearful": EmotionProfile(
        {
            "browInnerUp": 0.60,
            "browOuterUp": 0.35,
            "browDown": 0.15,
            "eyeWide": 0.50,
            "mouthStretch": 0.35,
        },
        articulation=0.95,
        jaw=1.05,
    ),  # fmt: skip
    "disgust": EmotionProfile(
        {
            "noseSneer": 0.60,
            "mouthUpperUp": 0.30,
            "browDown": 0.35,
            "cheekSquint": 0.30,
            "eyeSquint": 0.25,
            "mouthFrown": 0.20,
            "mouthShrugUpper": 0.10,
        },
        articulation=0.90,
    ),  # fmt: skip
    "surprised": EmotionProfile(
        {"browInnerUp": 0.70, "browOuterUp": 0.70, "eyeWide": 0.60},
        articulation=1.10,
        jaw=1.30,
        jaw_rest=0.08,
    ),
}
assert set(PROFILES) == set(EMOTIONS)


def _expression_vector(profile: EmotionProfile) -> np.ndarray:
    vector = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, value in profile.expression.items():
        names = [name] if name in ARKIT_INDEX else [name + "Left", name + "Right"]
        for n in names:
            if n not in ARKIT_INDEX:
                raise KeyError(f"emotion profile names unknown ARKit shape {name!r}")
            vector[ARKIT_INDEX[n]] = value
    return vector


EXPRESSIONS: np.ndarray = np.stack([_expression_vector(PROFILES[e]) for e in EMOTIONS])  # [8, 52]


def intensity_curve(intensity: float, n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame intensity in 0..1: the requested level with a slow (0.05-0.4 Hz) drift of about +-15 %.

    The random numbers are drawn whatever the intensity, so the same seed gives the same drift for
    every emotion and intensity 0 stays exactly zero.
    """
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"emotion intensity must be in 0..1, got {intensity!r}")
    freqs = rng.uniform(0.05, 0.4, size=3)
    phases = rng.uniform(0.0, 2 * np.pi, size=3)
    amps = rng.uniform(0.5, 1.0, size=3)
    t = np.arange(n_frames, dtype=np.float64) / fps
    drift = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    drift *= 0.15 / amps.sum()
    return np.clip(intensity * (1.0 + drift), 0.0, 1.0).astype(np.float32)


def articulation_gain(emotion: str, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(speech gain [T], extra jaw gain [T], resting jaw opening [T]) for an intensity curve."""
    profile = PROFILES[EMOTIONS[emotion_id(emotion)]]
    speech = 1.0 + (profile.articulation - 1.0) * curve
    jaw = 1.0 + (profile.jaw - 1.0) * curve
    return speech, jaw, profile.jaw_rest * curve


def expression(emotion: str, curve: np.ndarray) -> np.ndarray:
    """[T, 52] expression weights to add to the face."""
    return curve[:, None] * EXPRESSIONS[emotion_id(emotion)][None]
