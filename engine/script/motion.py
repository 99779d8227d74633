"""Mouth motion from aligned script phones: the procedural rig that generates the training targets.

With the phones and their times known, the rig's coarticulation closes the lips on every p/b/m and
rests the mouth in pauses by construction, with the take's emotion, intensity and speaker style.
ARKit weights come straight from the rig and the vertices from those weights, so both outputs agree.
Where the script did not fit the audio, the model's audio-only motion is kept (cross-faded).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.script.align import AlignedWord

FALLBACK_MARGIN_S = 0.08  # audio-only motion also covers this much around a word that did not align
FALLBACK_FADE_S = 0.1  # cross-fade between rig and model motion at the edges of such a stretch
PAUSE_HOLD_MIN_S = 0.3  # pauses at least this long hold the mouth at rest ...
PAUSE_HOLD_EDGE_S = 0.1  # ... except this close to the speech on either side


def _blend_by_schedule(phones, keys, style, fps: float, n_frames: int) -> np.ndarray:
    from engine.data.motion import render_arkit
    from engine.emotions import EMOTIONS
    from engine.inference.schedule import schedule_to_cond

    duration = n_frames / fps
    if len(keys) == 1:
        _, name, strength = keys[0]
        return render_arkit(phones, name, float(strength), style, fps, duration)[:n_frames]
    cond = schedule_to_cond(keys, n_frames, fps).astype(np.float64)  # [T, 8] one-hot x intensity
    rest = np.clip(1.0 - cond.sum(axis=1), 0.0, 1.0)
    out = rest[:, None] * render_arkit(phones, "neutral", 0.0, style, fps, duration)[:n_frames]
    for column in np.flatnonzero(cond.max(axis=0) > 0):
        full = render_arkit(phones, EMOTIONS[column], 1.0, style, fps, duration)[:n_frames]
        out += cond[:, column : column + 1] * full
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def scripted_motion(
    phones: Sequence[tuple[str, float, float]],
    n_frames: int,
    fps: float,
    keys: Sequence[tuple[float, str, float]],
    style_vector: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [T, 468, 3] from the template, ARKit [T, 52]) for aligned phones.

    `keys` is the take's emotion schedule; a schedule that changes blends the rig's renders of each
    emotion per frame (the lip closure is the same in all of them, so blending keeps it).
    """
    from engine.arkit.basis import apply_arkit
    from engine.data.style import SpeakerStyle

    style = SpeakerStyle.from_vector(style_vector)
    arkit = _blend_by_schedule(list(phones), list(keys), style, fps, n_frames)
    if arkit.shape[0] < n_frames:  # the rig renders ceil(duration * fps): pad a round-off frame
        arkit = np.concatenate([arkit, np.repeat(arkit[-1:], n_frames - arkit.shape[0], axis=0)])
    arkit = hold_pauses(arkit, phones, fps)
    return apply_arkit(arkit), arkit


def pause_hold(phones: Sequence[tuple[str, float, float]], n_frames: int, fps: float) -> np.ndarray:
    """Per frame 0..1: 1 inside a long pause (away from its edges), ramping to 0 at the speech."""
    from engine.phonemes import SILENCE

    times = np.arange(n_frames) / fps
    hold = np.zeros(n_frames)
    for name, start, end in phones:
        if name != SILENCE or end - start < PAUSE_HOLD_MIN_S:
            continue
        rise = np.clip((times - start) / PAUSE_HOLD_EDGE_S, 0.0, 1.0)
        fall = np.clip((end - times) / PAUSE_HOLD_EDGE_S, 0.0, 1.0)
        hold = np.maximum(hold, np.minimum(rise, fall))
    return hold


def hold_pauses(arkit: np.ndarray, phones: Sequence[tuple[str, float, float]], fps: float) -> np.ndarray:
    """Close the jaw and lips in long pauses: the rig starts opening toward the next phone up to
    ~150 ms ahead, which reads as a mouth hanging open in a pause. Expression channels are untouched."""
    from engine.arkit import ARKIT_INDEX
    from engine.data.visemes import LIP_OPENING_CHANNELS

    hold = pause_hold(phones, arkit.shape[0], fps)
    if not hold.any():
        return arkit
    channels = [ARKIT_INDEX[name] for name in ("jawOpen", "mouthClose", *LIP_OPENING_CHANNELS)]
    out = arkit.copy()
    out[:, channels] *= (1.0 - hold)[:, None].astype(np.float32)
    return out


def fallback_mask(bad_words: Sequence[AlignedWord], n_frames: int, fps: float) -> np.ndarray:
    """Per frame 0..1: how much of the model's audio-only motion to keep (1 inside bad stretches)."""
    times = np.arange(n_frames) / fps
    mask = np.zeros(n_frames)
    for word in bad_words:
        lo, hi = word.start - FALLBACK_MARGIN_S, word.end + FALLBACK_MARGIN_S
        ramp_in = np.clip((times - (lo - FALLBACK_FADE_S)) / FALLBACK_FADE_S, 0.0, 1.0)
        ramp_out = np.clip(((hi + FALLBACK_FADE_S) - times) / FALLBACK_FADE_S, 0.0, 1.0)
        mask = np.maximum(mask, np.minimum(ramp_in, ramp_out))
    return mask


def blend_motion(
    rig: tuple[np.ndarray, np.ndarray], model: tuple[np.ndarray, np.ndarray], mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rig motion with the model's where `mask` says so; both are (offsets, arkit)."""
    if not mask.any():
        return rig
    m = mask.astype(np.float32)
    offsets = rig[0] + m[:, None, None] * (model[0] - rig[0])
    arkit = rig[1] + m[:, None] * (model[1] - rig[1])
    return offsets.astype(np.float32), arkit.astype(np.float32)
