"""Close the lips where the recording has a p, b or m.

A learned decoder on a voice it never heard often glides through a bilabial with the lips a few
millimetres apart: the closure lasts two or three frames and regression to the mean smooths it away.
The closure detector (engine.closure.detector) hears the consonant from the sound alone, so here
the mouth is moved, in those frames, to the rig's closed-lip pose for the take's emotion and
speaker style (engine.inference.rig_poses), with a short ramp either side. Only the mouth moves:
each vertex follows by how much the rig's articulation moves it (jaw, chin, lips; the upper face not
at all), so brows, eyes and the emotion stay as the model made them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from engine.closure.frames import THRESHOLD, closure_runs, frame_probabilities

RAMP_S = 0.06  # the lips close and open over this much either side of a detected closure
ARTICULATION_MM = (1.0, 3.0)  # a vertex the rig moves less than the first between open and closed
# stays (the rig's faint pull on the cheeks and brows), one that moves the second follows fully
LIP_FALLOFF_MM = 8.0  # and the lips, with everything within this of them, follow too


def closure_weights(frame_p: np.ndarray, fps: float, threshold: float = THRESHOLD) -> np.ndarray:
    """[T] how far each frame moves to the closed pose: 1 on frames whose closure probability
    reaches `threshold`, a cosine ramp within RAMP_S of them, 0 elsewhere."""
    n = len(frame_p)
    weights = np.zeros(n, np.float32)
    reach = int(np.ceil(RAMP_S * fps))
    for first, last in closure_runs(frame_p, threshold):
        weights[first : last + 1] = 1.0
        for step in range(1, reach + 1):
            ramp = 0.5 + 0.5 * np.cos(np.pi * step / (fps * RAMP_S)) if step < fps * RAMP_S else 0.0
            for f in (first - step, last + step):
                if 0 <= f < n:
                    weights[f] = max(weights[f], ramp)
    return weights


PIECE_FRAMES = 12000  # log-mel frames (120 s) run through the detector at a time


def recording_closure_weights(
    read: Callable[[int, int], np.ndarray], n_samples: int, fps: float, n_frames: int, detector
) -> np.ndarray:
    """closure_weights [n_frames] of a 16 kHz recording whose samples `read(start, stop)` returns
    (level-normalised as the model hears it), by `detector` (an engine.closure.detector
    ClosureDetector; None: no closure step, all zeros). The detector runs over 120 s pieces with
    CONTEXT_FRAMES of margin, so an hour-long take needs little memory and gets the numbers of the
    whole. Frames close where the probability reaches the detector's own threshold."""
    from engine.api import log_mel_piece
    from engine.audio.features import n_mel_frames
    from engine.closure.detector import CONTEXT_FRAMES

    if detector is None:
        return np.zeros(n_frames, np.float32)
    total = n_mel_frames(n_samples)
    probabilities = np.zeros(total, np.float32)
    for first in range(0, total, PIECE_FRAMES):
        last = min(total, first + PIECE_FRAMES)
        a, b = max(0, first - CONTEXT_FRAMES), min(total, last + CONTEXT_FRAMES)
        piece = detector.probabilities(log_mel_piece(read, n_samples, a, b))
        probabilities[first:last] = piece[first - a : last - a]
    return closure_weights(frame_probabilities(probabilities, fps, n_frames), fps, detector.threshold)


@lru_cache(maxsize=1)
def mouth_mask() -> np.ndarray:
    """[V] how much each template vertex follows the closed pose (1 at the lips and jaw, 0 at the brows)."""
    from engine.data.style import SpeakerStyle
    from engine.face.template import load_template
    from engine.inference.rig_poses import pose_table

    style = tuple(float(x) for x in SpeakerStyle().as_vector())
    closed, opened = pose_table("closed", style, 30.0)[0], pose_table("open", style, 30.0)[0]
    low, high = ARTICULATION_MM
    articulation = (np.linalg.norm(opened - closed, axis=1) * 1000.0 - low) / (high - low)
    template = load_template()
    lips = template.vertices[template.regions["lips"]]
    distance = np.linalg.norm(template.vertices[:, None] - lips[None], axis=2).min(axis=1) * 1000.0
    near_lips = 1.0 - distance / LIP_FALLOFF_MM
    return np.clip(np.maximum(articulation, near_lips), 0.0, 1.0).astype(np.float32)


def close_lips(
    offsets: np.ndarray, weights: np.ndarray, closed_for: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """offsets [T, V, 3] with the mouth moved to the closed pose by weights [T];
    `closed_for(frame_indices) -> [n, V, 3]` is asked only for the frames that move."""
    out = np.array(offsets, dtype=np.float32, copy=True)
    frames = np.flatnonzero(np.asarray(weights) > 0)
    if len(frames):
        w = np.asarray(weights, np.float32)[frames][:, None, None] * mouth_mask()[None, :, None]
        out[frames] = out[frames] * (1.0 - w) + closed_for(frames) * w
    return out
