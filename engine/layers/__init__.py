"""Layers on top of the lips: blinks, gaze and head motion, each optional and each its own take layer.

The engine's animation is the *lips* layer (everything the model predicts). The other layers are
computed here from the voice's prosody, the emotion and a seed, without a model:

    blinks  eyeBlinkLeft/Right from a blink generator (engine.layers.blinks)
    gaze    eye yaw/pitch and the eyeLook* channels (engine.layers.gaze)
    head    head rotation and brow raises from pitch accents (engine.layers.head_motion)

Each layer *owns* its ARKit channels: when it is on, the lips layer leaves them out and the layer
supplies them (the model's own level, e.g. a calm face's lowered lids, plus the layer's motion),
so muting one layer in Blender leaves the others intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.arkit import ARKIT_INDEX
from engine.emotions import emotion_id
from engine.layers import blinks as blink_layer
from engine.layers import gaze as gaze_layer
from engine.layers import head_motion as head_layer
from engine.layers.prosody import Prosody, measure

LAYER_NAMES = ("lips", "blinks", "gaze", "head")
OPTIONAL_LAYERS = LAYER_NAMES[1:]
BLINK_CHANNELS = ("eyeBlinkLeft", "eyeBlinkRight")
GAZE_CHANNELS = tuple(f"eyeLook{d}{s}" for d in ("Down", "In", "Out", "Up") for s in ("Left", "Right"))
BROW_CHANNELS = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight")
OWNED = {"blinks": BLINK_CHANNELS, "gaze": GAZE_CHANNELS, "head": BROW_CHANNELS}
VESTIBULAR_GAIN = 0.8  # the eyes counter-rotate this share of the head's turn to hold their target
BASELINE_SECONDS = 0.7  # the model's blinks are shorter than this; its lid level lasts longer


def parse_layers(value) -> frozenset[str]:
    """The optional layers to compute from ``"blinks,gaze"``, a list, ``"all"`` or ``"none"``."""
    if value is None or value == "all":
        return frozenset(OPTIONAL_LAYERS)
    if isinstance(value, str):
        value = [] if value.strip() in ("", "none") else [v.strip() for v in value.split(",")]
    names = set(value) - {"lips"}
    unknown = names - set(OPTIONAL_LAYERS)
    if unknown:
        raise ValueError(
            f"unknown layer(s) {', '.join(sorted(unknown))}; choose from {', '.join(OPTIONAL_LAYERS)}, 'all' or 'none'"
        )
    return frozenset(names)


@dataclass
class Layers:
    """The optional layers of one take, at the animation's frame rate."""

    fps: float
    enabled: frozenset[str]
    blink: np.ndarray | None = None  # [T] lid closure from the blink generator
    eyes: np.ndarray | None = None  # [T, 2] eye yaw/pitch degrees (after the vestibular reflex)
    head: np.ndarray | None = None  # [T, 3] head Euler XYZ degrees
    channels: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # layer -> ARKit -> [T]
    look_baseline: dict[str, np.ndarray] = field(default_factory=dict)  # the model's own eyeLook level

    def owned_channels(self) -> set[str]:
        return {name for layer in self.enabled for name in OWNED[layer]}

    def look_channels(self, eyes: np.ndarray) -> dict[str, np.ndarray]:
        """The gaze layer's eyeLook* channels for eye angles ``eyes [T, 2]`` (e.g. toward a target)."""
        looks = gaze_layer.look_channels(eyes)
        return {
            c: np.clip(self.look_baseline[c] + looks[c], 0.0, 1.0).astype(np.float32) for c in GAZE_CHANNELS
        }


def _baseline(values: np.ndarray, fps: float) -> np.ndarray:
    """A channel's slow level without short events (the model's own blinks): a running minimum."""
    width = max(1, int(round(BASELINE_SECONDS * fps)))
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return windows.min(axis=1)


def compute_layers(
    audio: np.ndarray,
    sample_rate: int,
    arkit: np.ndarray,
    fps: float,
    emotion: str = "neutral",
    intensity: float = 1.0,
    layers=None,
    seed: int = 0,
) -> Layers:
    """The enabled optional layers for a take whose lips layer has ARKit weights ``arkit [T, 52]``."""
    enabled = parse_layers(layers)
    emotion_id(emotion)
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"emotion intensity must be in 0..1, got {intensity!r}")
    arkit = np.asarray(arkit, dtype=np.float32)
    n = int(arkit.shape[0])
    prosody: Prosody = measure(audio, sample_rate, fps, n)
    blink_rng, gaze_rng, head_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    out = Layers(fps=float(fps), enabled=enabled)
    head = np.zeros((n, 3), np.float32)
    if "head" in enabled:
        head, brows = head_layer.head_motion(prosody, emotion, intensity, head_rng)
        out.head = head
        lift = {"browInnerUp": brows, "browOuterUpLeft": 0.6 * brows, "browOuterUpRight": 0.6 * brows}
        out.channels["head"] = {c: np.clip(arkit[:, ARKIT_INDEX[c]] + v, 0, 1) for c, v in lift.items()}
    if "blinks" in enabled:
        out.blink = blink_layer.blinks(prosody, emotion, intensity, blink_rng)
        out.channels["blinks"] = {
            c: np.maximum(_baseline(arkit[:, ARKIT_INDEX[c]], fps), out.blink) for c in BLINK_CHANNELS
        }
    if "gaze" in enabled:
        eyes = gaze_layer.gaze(prosody, emotion, intensity, gaze_rng)
        eyes = eyes - VESTIBULAR_GAIN * head[:, [2, 0]] * np.array([1.0, -1.0], np.float32)
        out.eyes = eyes.astype(np.float32)
        out.look_baseline = {c: _baseline(arkit[:, ARKIT_INDEX[c]], fps) for c in GAZE_CHANNELS}
        out.channels["gaze"] = out.look_channels(out.eyes)
    return out


def dominant_emotion(schedule) -> tuple[str, float]:
    """(emotion, intensity) held longest in a schedule of (time, emotion, intensity) keyframes."""
    keys = sorted(schedule, key=lambda k: float(k[0]))
    if not keys:
        return "neutral", 0.0
    spans = [float(b[0]) - float(a[0]) for a, b in zip(keys, keys[1:])] + [1.0]
    best = max(range(len(keys)), key=lambda i: spans[i])
    return str(keys[best][1]), float(keys[best][2])


def layer_animation(animation, audio: np.ndarray, sample_rate: int, schedule, layers, seed: int = 0):
    """The engine's take with the optional layers baked in (CLI and API): owned ARKit channels
    replaced, the template offsets moved to match, head and eye angles in ``meta``."""
    import dataclasses

    enabled = parse_layers(layers)
    meta = {**animation.meta, "layers": sorted(enabled)}
    if not enabled or animation.n_frames == 0:
        return dataclasses.replace(animation, meta=meta)
    emotion, intensity = dominant_emotion(schedule)
    arkit = np.asarray(animation.arkit, dtype=np.float32)
    result = compute_layers(
        audio, sample_rate, arkit, animation.fps, emotion, min(intensity, 1.0), enabled, seed
    )
    layered = arkit.copy()
    for channels in result.channels.values():
        for name, values in channels.items():
            layered[:, ARKIT_INDEX[name]] = values
    offsets = np.asarray(animation.offsets, dtype=np.float32)
    if offsets.ndim == 3 and offsets.shape[1] == 468:
        from engine.arkit.basis import apply_arkit

        offsets = offsets + apply_arkit(layered - arkit)
    if result.head is not None:
        meta["head_rotation_deg"] = np.round(result.head, 2).tolist()
    if result.eyes is not None:
        meta["eye_rotation_deg"] = np.round(result.eyes, 2).tolist()
    return dataclasses.replace(animation, arkit=layered, offsets=offsets, meta=meta)
