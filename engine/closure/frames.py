"""From the detector's 10 ms probabilities to the motion frames that must show closed lips."""

from __future__ import annotations

import numpy as np

from engine.audio.features import FRAME_RATE

THRESHOLD = 0.4  # where one network's closure probability closes the lips (chosen on the Flite fold,
# docs/voices.md); an ensemble file carries its own (engine.closure.ensemble), since averaging
# several networks lowers the peaks


def frame_probabilities(probabilities: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """[n_frames] the highest 10 ms probability within half a motion frame of each frame's time
    (a 60 ms closure must reach a 30 fps frame even when it falls between two of them)."""
    p = np.asarray(probabilities, np.float32)
    out = np.zeros(n_frames, np.float32)
    if len(p) == 0 or n_frames == 0:
        return out
    half = 0.5 * FRAME_RATE / fps
    centres = np.arange(n_frames) * (FRAME_RATE / fps)
    first = np.clip(np.ceil(centres - half - 1e-9).astype(int), 0, len(p) - 1)
    last = np.clip(np.floor(centres + half + 1e-9).astype(int), 0, len(p) - 1)
    for f in range(n_frames):
        out[f] = p[first[f] : last[f] + 1].max()
    return out


def closure_runs(frame_p: np.ndarray, threshold: float = THRESHOLD) -> list[tuple[int, int]]:
    """Maximal runs [first, last] of frames at or over the threshold."""
    on = np.concatenate([[False], np.asarray(frame_p) >= threshold, [False]])
    edges = np.flatnonzero(on[1:] != on[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]
