"""What each of the 8 RAVDESS emotions does to the face, on top of articulation.

Two effects, both proportional to intensity so that any emotion at intensity 0 is exactly neutral:
an *expression* added to the upper face and mouth corners (values follow the FACS action units usually
reported for the basic emotions: AU6+12 happy, AU1+4+15 sad, AU4+5+7+23 angry, AU1+2+4+5+7+20 fearful,
AU9+10+15 disgust, AU1+2+5+26 surprised; calm is a soft smile under relaxed, lowered lids), sized so
that at intensity 1 the defining region moves by about a centimetre as in real expressions (>= 6 mm for
brows and mouth corners; tests/test_emotion_strength.py), and a change of *articulation* (angry
speech uses a stronger jaw, sad speech is hypo-articulated). The intensity drifts slowly over time so that held emotions do
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
        {
            "mouthSmile": 0.40,
            "eyeBlink": 0.40,
            "eyeSquint": 0.15,
            "cheekSquint": 0.25,
            "browDown": 0.15,
            "eyeLookDown": 0.15,
        },
        articulation=0.88,
        jaw=0.95,
    ),  # fmt: skip
    "happy": EmotionProfile(
        {
            "mouthSmile": 0.80,
            "cheekSquint": 0.65,
            "eyeSquint": 0.45,
            "mouthDimple": 0.20,
            "browOuterUp": 0.15,
            "mouthUpperUp": 0.10,
        },
        articulation=1.05,
    ),  # fmt: skip
    "sad": EmotionProfile(
        {
            "browInnerUp": 0.85,
            "browDown": 0.20,
            "mouthFrown": 0.80,
            "mouthShrugLower": 0.35,
            "eyeLookDown": 0.25,
            "eyeSquint": 0.10,
        },
        articulation=0.70,
        jaw=0.85,
    ),  # fmt: skip
    "angry": EmotionProfile(
        {
            "browDown": 0.95,
            "eyeSquint": 0.40,
            "eyeWide": 0.15,
            "noseSneer": 0.35,
            "mouthPress": 0.40,
            "mouthFrown": 0.20,
        },
        articulation=1.20,
        jaw=1.25,
    ),  # fmt: skip
    "fearful": EmotionProfile(
        {
            "browInnerUp": 0.90,
            "browOuterUp": 0.55,
            "browDown": 0.20,
            "eyeWide": 0.80,
            "eyeSquint": 0.30,
            "mouthStretch": 0.60,
        },
        articulation=0.95,
        jaw=1.05,
    ),  # fmt: skip
    "disgust": EmotionProfile(
        {
            "noseSneer": 0.85,
            "mouthUpperUp": 0.45,
            "browDown": 0.45,
            "cheekSquint": 0.40,
            "eyeSquint": 0.30,
            "mouthFrown": 0.70,
            "mouthStretch": 0.30,
            "mouthShrugUpper": 0.15,
        },
        articulation=0.90,
    ),  # fmt: skip
    "surprised": EmotionProfile(
        {"browInnerUp": 0.85, "browOuterUp": 0.85, "eyeWide": 0.85},
        articulation=1.10,
        jaw=1.30,
        jaw_rest=0.15,
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
