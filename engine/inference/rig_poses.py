"""Poses the procedural rig holds, per emotion: the face at rest and the lips closed for p, b, m.

The finishing steps (engine.inference.rest, engine.closure.close) move the model's motion towards
these where the recording calls for them. They come from the same rig that made the training
motion, for the speaker style and the per-frame emotion the model was given, so a happy face rests
and closes its lips smiling.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.phonemes import SILENCE

HOLD_SECONDS = 1.0  # the rig holds each pose this long before the frame is taken
POSES = {
    # pose -> (phones as (phone, start, end), the time its frame is taken)
    "rest": (((SILENCE, 0.0, HOLD_SECONDS),), HOLD_SECONDS),
    "closed": (
        ((SILENCE, 0.0, 0.3), ("M", 0.3, 0.3 + HOLD_SECONDS), (SILENCE, 0.3 + HOLD_SECONDS, 1.6)),
        0.9,
    ),
    "open": (((SILENCE, 0.0, 0.3), ("AA", 0.3, 0.3 + HOLD_SECONDS), (SILENCE, 0.3 + HOLD_SECONDS, 1.6)), 0.9),
}


@lru_cache(maxsize=32)
def pose_table(pose: str, style: tuple[float, ...], fps: float) -> np.ndarray:
    """[1 + E, V, 3]: the neutral pose's offsets, then each emotion's change from it at full intensity."""
    from engine.data.motion import render_motion
    from engine.data.record import Phone
    from engine.data.style import SpeakerStyle
    from engine.emotions import EMOTIONS
    from engine.face.template import load_template

    phones, at = POSES[pose]
    timed = [Phone(p, s, e) for p, s, e in phones]
    speaker = SpeakerStyle.from_vector(np.asarray(style, dtype=np.float64))
    duration = max(e for _, _, e in phones)
    frame = min(int(round(at * fps)), int(np.ceil(duration * fps)) - 1)
    template = load_template().vertices.astype(np.float32)
    rows = []
    for emotion in ("neutral", *EMOTIONS):
        motion = render_motion(timed, emotion, 1.0, speaker, fps, duration, 0)
        rows.append(motion.vertices[frame] - template)
    table = np.stack(rows).astype(np.float32)
    table[1:] -= table[0]
    return table


def rig_pose_offsets(pose: str, style: np.ndarray, fps: float, cond: np.ndarray) -> np.ndarray:
    """The rig's `pose` ("rest", "closed" or "open") per frame [T, V, 3] for emotion conditioning `cond`
    [T, E] (one-hot times intensity, interpolated as the model sees it) and a speaker style vector."""
    if pose not in POSES:
        raise ValueError(f"unknown rig pose {pose!r}; one of {sorted(POSES)}")
    table = pose_table(pose, tuple(float(x) for x in np.asarray(style).reshape(-1)), float(fps))
    flat = table.reshape(table.shape[0], -1)
    out = flat[0][None] + np.asarray(cond, dtype=np.float32) @ flat[1:]
    return out.reshape(len(cond), *table.shape[1:])
