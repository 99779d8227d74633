"""Ground-truth face motion from timed phones: the targets the model learns to reproduce.

Pipeline (all numpy, vectorised over frames):

1. Coarticulation (Cohen & Massaro 1993): every phone pulls each articulator group toward its viseme
   target with a dominance that decays exponentially away from the segment's core; a channel's value
   is the dominance-weighted mean of the targets. Per-group dominance gives anticipatory rounding
   (slow anticipatory decay of rounded vowels) and certain bilabial closure (near-absolute lip
   dominance of p/b/m over the whole segment). Silences pull everything to rest.
2. Speaker style scales the gestures (amplitude, jaw vs lips, rounding, timing jitter, smile bias).
3. The emotion layer changes articulation and adds an expression (brows, eyes, cheeks, corners).
4. Blinks every 2-6 s, and a small brow lift that follows speech effort.
5. The lip constraint: ``mouthClose = closure * jawOpen`` and the lip-opening shapes are scaled by
   ``1 - closure``, so no later layer can reopen the lips of a p/b/m.

Deterministic for a seed: every random draw comes from streams spawned from it, and the streams do not
depend on the emotion, so an emotion at intensity 0 reproduces neutral exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES
from engine.data import emotion_layer
from engine.data.style import SpeakerStyle
from engine.data.visemes import GROUPS, LIP_OPENING_CHANNELS, TABLE
from engine.phonemes import PHONES, SILENCE

SUPPORTED_FPS_RANGE = (1.0, 240.0)
_PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}
_SIL = _PHONE_INDEX[SILENCE]
_BLOCK_FRAMES = 256  # frames per coarticulation block; keeps memory linear in clip length
_REACH_S = 2.0  # segments further than this from a block have no visible influence on it
_SIL_MARGIN_S = 0.06  # silence holds rest except this close to its neighbours
_FULL_PAUSE_S = 0.2  # shorter silences (word gaps) pull toward rest only in proportion to their length

_CH = ARKIT_INDEX


def _channels(*names: str) -> np.ndarray:
    return np.array([_CH[n] for n in names], np.int64)


_JAW = _CH["jawOpen"]
_APERTURE = _channels(
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthStretchLeft", "mouthStretchRight",
)  # fmt: skip
_ROUNDING = _channels("mouthFunnel", "mouthPucker")
_OPENING = _channels(*LIP_OPENING_CHANNELS)
_SPEECH = np.flatnonzero(TABLE.group_of_channel >= 0)
_BLINK = _channels("eyeBlinkLeft", "eyeBlinkRight")
_WIDE = _channels("eyeWideLeft", "eyeWideRight")
_SMILE = _channels("mouthSmileLeft", "mouthSmileRight")
_FROWN = _channels("mouthFrownLeft", "mouthFrownRight")
_BROW_LIFT = _channels("browInnerUp", "browOuterUpLeft", "browOuterUpRight")
_BROW_LIFT_GAIN = np.array([0.12, 0.06, 0.06], np.float32)  # brows rise a little with speech effort


@dataclass
class Motion:
    arkit: np.ndarray  # [T, 52] float32 in 0..1
    vertices: np.ndarray  # [T, 468, 3] float32 absolute positions on the template face
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.arkit.shape[0])


def n_frames(duration: float, fps: float) -> int:
    """Frames covering ``duration`` seconds: ceil(duration * fps), robust to float round-off."""
    return max(0, math.ceil(duration * fps - 1e-6))


def _phone_arrays(phones: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phone index, start, end) from Phone/TimedPhone objects or (phone, start, end) tuples."""
    ids: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    for i, item in enumerate(phones):
        if isinstance(item, tuple | list):
            if len(item) != 3:
                raise ValueError(f"phone #{i} must be (phone, start, end), got {item!r}")
            phone, start, end = item
        else:
            phone, start, end = item.phone, item.start, item.end
        if phone not in _PHONE_INDEX:
            raise ValueError(f"phone #{i} {phone!r} is not in engine.phonemes.PHONES; map it first")
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end)) or end < start or start < 0:
            raise ValueError(f"phone #{i} {phone!r} has invalid times start={start} end={end}")
        if starts and start < ends[-1] - 1e-6:
            raise ValueError(
                f"phone #{i} {phone!r} starts at {start:.3f}s before the previous one ends "
                f"({ends[-1]:.3f}s); phones must be sorted and must not overlap"
            )
        ids.append(_PHONE_INDEX[phone])
        starts.append(max(start, ends[-1]) if ends else start)
        ends.append(end)
    return np.array(ids, np.int64), np.array(starts, np.float64), np.array(ends, np.float64)


def _segments(
    ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, duration: float, fps: float, jitter: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Phone index, core interval [lo, hi] and dominance scale of every segment; silence fills gaps
    and both edges."""
    pad = _REACH_S + 1.0
    seg_ids = [_SIL]
    seg_lo = [-pad]
    seg_hi = [starts[0] if len(ids) else duration + pad]
    for i in range(len(ids)):
        if i and starts[i] > ends[i - 1] + 1e-6:  # a gap the aligner left: silence
            seg_ids.append(_SIL)
            seg_lo.append(ends[i - 1])
            seg_hi.append(starts[i])
        seg_ids.append(int(ids[i]))
        seg_lo.append(starts[i])
        seg_hi.append(ends[i])
    if len(ids):
        seg_ids.append(_SIL)
        seg_lo.append(ends[-1])
        seg_hi.append(max(ends[-1], duration) + pad)
    pid = np.array(seg_ids, np.int64)
    start = np.array(seg_lo, np.float64)
    end = np.array(seg_hi, np.float64)

    centre = 0.5 * (start + end)
    half = 0.5 * (end - start)
    is_sil = pid == _SIL
    shift = np.where(is_sil, 0.0, np.clip(jitter[: len(pid)], -0.5 * half, 0.5 * half))
    reach = TABLE.core_fraction[pid] * half
    lo = centre + shift - reach
    hi = centre + shift + reach
    # silence: rest over its middle; the outermost silences hold rest over their whole span
    margin = np.minimum(_SIL_MARGIN_S, half)
    lo = np.where(is_sil, start + margin, lo)
    hi = np.where(is_sil, end - margin, hi)
    lo[0], hi[-1] = start[0], end[-1]
    # p/b/m: the closure covers the whole phone and at least the frame nearest its centre,
    # whatever the jitter, so every bilabial shows closed lips on screen.
    closes = TABLE.closes_lips[pid]
    half_frame = 0.6 / fps
    lo = np.where(closes, np.minimum.reduce([lo, start, centre - half_frame]), lo)
    hi = np.where(closes, np.maximum.reduce([hi, end, centre + half_frame]), hi)
    # a 40 ms word gap is not a pause: the mouth does not go back to rest for it
    scale = np.where(is_sil, np.clip((end - start) / _FULL_PAUSE_S, 0.1, 1.0), 1.0)
    return pid, lo, hi, scale


def coarticulate(
    pid: np.ndarray, core_lo: np.ndarray, core_hi: np.ndarray, scale: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dominance-blended speech weights [T, 52] and lip closure [T] at ``times``."""
    n = len(times)
    weights = np.zeros((n, len(ARKIT_NAMES)), np.float64)
    closure = np.zeros(n, np.float64)
    groups = [np.flatnonzero(TABLE.group_of_channel == g) for g in range(len(GROUPS))]
    strength = TABLE.strength[pid].astype(np.float64) * scale[:, None]  # [S, G]
    rate_before = TABLE.rate_before[pid].astype(np.float64)
    rate_after = TABLE.rate_after[pid].astype(np.float64)
    targets = TABLE.targets[pid].astype(np.float64)  # [S, 52]
    closure_target = TABLE.closure[pid].astype(np.float64)
    for b0 in range(0, n, _BLOCK_FRAMES):
        t = times[b0 : b0 + _BLOCK_FRAMES]
        near = np.flatnonzero((core_hi >= t[0] - _REACH_S) & (core_lo <= t[-1] + _REACH_S))
        before = np.maximum(core_lo[near, None] - t[None], 0.0)  # [S, Tb] distance ahead of the core
        after = np.maximum(t[None] - core_hi[near, None], 0.0)
        exponent = (
            rate_before[near].T[:, :, None] * before[None] + rate_after[near].T[:, :, None] * after[None]
        )
        dominance = strength[near].T[:, :, None] * np.exp(-exponent)  # [G, S, Tb]
        total = np.maximum(dominance.sum(1), 1e-300)  # [G, Tb]
        for g, channels in enumerate(groups):
            weights[b0 : b0 + len(t), channels] = (dominance[g].T @ targets[near][:, channels]) / total[g][
                :, None
            ]
        g = TABLE.closure_group
        closure[b0 : b0 + len(t)] = (dominance[g].T @ closure_target[near]) / total[g]
    return weights, closure


def blink_curve(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Blinks at random 2-6 s intervals, 100-150 ms each (fast close, slower open), both eyes."""
    curve = np.zeros(n, np.float64)
    duration = n / fps
    times = np.arange(n) / fps
    t = rng.uniform(0.3, 3.0)
    while t < duration:
        length = rng.uniform(0.10, 0.15)
        close = 0.4 * length
        rising = (times - t) / close
        falling = 1.0 - (times - t - close) / (length - close)
        shape = np.where(times < t + close, rising, falling)
        shape = np.where(
            (times >= t) & (times <= t + length), np.sin(0.5 * np.pi * np.clip(shape, 0, 1)), 0.0
        )
        curve = np.maximum(curve, shape)
        t += length + rng.uniform(2.0, 6.0)
    return curve


def _smooth(x: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    width = max(1, int(round(seconds * fps)))
    if width == 1 or len(x) == 0:
        return x
    kernel = np.ones(width) / width
    return np.convolve(np.pad(x, (width // 2, width - 1 - width // 2), mode="edge"), kernel, mode="valid")


def render_arkit(
    phones: Sequence[Any],
    emotion: str = "neutral",
    intensity: float = 1.0,
    style: SpeakerStyle | None = None,
    fps: float = 30,
    duration: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """ARKit weights [T, 52] float32 in 0..1 for timed phones; see ``render_motion``."""
    if not (math.isfinite(fps) and SUPPORTED_FPS_RANGE[0] <= fps <= SUPPORTED_FPS_RANGE[1]):
        raise ValueError(f"fps must be in {SUPPORTED_FPS_RANGE}, got {fps!r}")
    style = style or SpeakerStyle()
    ids, starts, ends = _phone_arrays(phones)
    if duration is None:
        if not len(ids):
            raise ValueError("no phones and no duration: pass duration= to render a silent clip")
        duration = float(ends[-1])
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a non-negative number of seconds, got {duration!r}")
    emotion_layer.articulation_gain(emotion, np.zeros(0, np.float32))  # validates the name early
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"emotion intensity must be in 0..1, got {intensity!r}")

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = n_frames(duration, fps)
    jitter_rng, blink_rng, emotion_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3)
    )
    jitter = jitter_rng.normal(0.0, 1.0, size=2 * len(ids) + 2) * style.timing_jitter
    pid, lo, hi, scale = _segments(ids, starts, ends, duration, fps, jitter)
    times = np.arange(n, dtype=np.float64) / fps
    speech, closure = coarticulate(pid, lo, hi, scale, times)

    # speaker style
    speech[:, _SPEECH] *= style.articulation
    speech[:, _JAW] *= 0.5 + style.jaw_ratio
    speech[:, _APERTURE] *= 1.5 - style.jaw_ratio
    speech[:, _ROUNDING] *= style.lip_rounding

    # emotion: articulation, then expression
    curve = emotion_layer.intensity_curve(intensity, n, fps, emotion_rng).astype(np.float64)
    gain, jaw_gain, jaw_rest = emotion_layer.articulation_gain(emotion, curve)
    speech[:, _SPEECH] *= gain[:, None]
    speech[:, _JAW] = speech[:, _JAW] * jaw_gain + jaw_rest
    weights = speech + emotion_layer.expression(emotion, curve)

    if style.smile_bias > 0:
        weights[:, _SMILE] += style.smile_bias
    elif style.smile_bias < 0:
        weights[:, _FROWN] -= style.smile_bias
    effort = _smooth(speech[:, _JAW], fps, 0.3)
    weights[:, _BROW_LIFT] += effort[:, None] * _BROW_LIFT_GAIN[None]

    blink = blink_curve(n, fps, blink_rng)
    weights[:, _BLINK] = np.maximum(weights[:, _BLINK], blink[:, None])
    weights[:, _WIDE] *= 1.0 - blink[:, None]

    # lip constraint last, so neither style nor emotion reopens a closure
    np.clip(weights, 0.0, 1.0, out=weights)
    weights[:, _OPENING] *= 1.0 - closure[:, None]
    weights[:, _CH["mouthClose"]] = np.clip(closure * weights[:, _JAW], 0.0, 1.0)
    return weights.astype(np.float32)


def arkit_to_vertices(arkit: np.ndarray) -> np.ndarray:
    """Absolute template-face vertices [T, 468, 3] for ARKit weights [T, 52]."""
    from engine.arkit.basis import apply_arkit
    from engine.face.template import load_template

    vertices = np.asarray(apply_arkit(arkit), dtype=np.float32)
    vertices += load_template().vertices[None]
    return vertices


def render_motion(
    phones: Sequence[Any],
    emotion: str = "neutral",
    intensity: float = 1.0,
    style: SpeakerStyle | None = None,
    fps: float = 30,
    duration: float | None = None,
    seed: int = 0,
) -> Motion:
    """Face motion for timed phones (``Phone``/``TimedPhone`` objects or ``(phone, start, end)``).

    ``duration`` defaults to the end of the last phone; ``T = ceil(duration * fps)``, frame i shows
    time i / fps. Same arguments and seed, same motion.
    """
    arkit = render_arkit(phones, emotion, intensity, style, fps, duration, seed)
    return Motion(arkit=arkit, vertices=arkit_to_vertices(arkit), fps=float(fps))
