"""How one synthetic speaker moves: the per-voice variation that keeps the model from learning one mouth.

The same five numbers are the model's style conditioning (``as_vector``), so a user can later ask for
"more jaw, less rounding" at inference time with the values the corpus was rendered with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# (low, high) accepted by the constructor, and the narrower range random() draws from.
_LIMITS: dict[str, tuple[float, float]] = {
    "articulation": (0.0, 2.0),
    "jaw_ratio": (0.0, 1.0),
    "lip_rounding": (0.0, 2.0),
    "timing_jitter": (0.0, 0.1),
    "smile_bias": (-1.0, 1.0),
}
_RANDOM_RANGES: dict[str, tuple[float, float]] = {
    "articulation": (0.7, 1.3),
    "jaw_ratio": (0.25, 0.75),
    "lip_rounding": (0.6, 1.4),
    "timing_jitter": (0.0, 0.025),
    "smile_bias": (-0.15, 0.25),
}


@dataclass(frozen=True)
class SpeakerStyle:
    """A speaker's articulation habits.

    articulation: overall amplitude of speech movements (1 = table values).
    jaw_ratio: share of mouth opening done by the jaw rather than the lips (0.5 = balanced).
    lip_rounding: amplitude of funnel/pucker on rounded sounds.
    timing_jitter: standard deviation (seconds) of per-phone timing offsets of the gestures.
    smile_bias: resting mouth-corner set, positive = smile, negative = frown.
    """

    articulation: float = 1.0
    jaw_ratio: float = 0.5
    lip_rounding: float = 1.0
    timing_jitter: float = 0.01
    smile_bias: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            if not np.isfinite(value) or not low <= value <= high:
                raise ValueError(f"SpeakerStyle.{name}={value!r} is outside [{low}, {high}]")

    def as_vector(self) -> np.ndarray:
        """[articulation, jaw_ratio, lip_rounding, timing_jitter, smile_bias] float32."""
        return np.array([getattr(self, name) for name in _LIMITS], dtype=np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray | list[float]) -> SpeakerStyle:
        values = [float(v) for v in np.asarray(vector, dtype=np.float64).reshape(-1)]
        if len(values) != len(_LIMITS):
            raise ValueError(
                f"a style vector has {len(_LIMITS)} values ({', '.join(_LIMITS)}), got {len(values)}"
            )
        return cls(*values)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def random(cls, rng: np.random.Generator) -> SpeakerStyle:
        """A plausible speaker; deterministic for a seeded generator."""
        return cls(**{name: float(rng.uniform(low, high)) for name, (low, high) in _RANDOM_RANGES.items()})


STYLE_FIELDS: tuple[str, ...] = tuple(_LIMITS)
