"""Pauses are rest: find the silences of a recording and bring the face to its rest pose there.

A learned decoder drifts in long pauses: it has momentum from the last syllable, and a recording's
pauses hold room noise, breath and hum that a model trained on synthetic speech never heard as
silence. Silence itself is easy to find on any voice, from the signal's level against the
recording's own noise floor, so the engine finds pauses here and blends the motion to the rest pose
for the take's emotion inside them (engine.api uses the model's own output on pure silence as that
pose, so an emotion's resting expression stays).

Only pauses of at least MIN_PAUSE_S count: stop closures (the silent 50-150 ms inside "apple",
"doctor") are articulation, not rest. The blend ramps in over RAMP_S inside each pause, so the mouth
closes smoothly after the last sound and opens again just before the next.
"""

from __future__ import annotations

import numpy as np

from engine.audio.level import SILENT_FILE_DBFS  # after normalisation, quieter frames are never speech

FRAME_S = 0.02  # level frames, 20 ms with 10 ms hop
HOP_S = 0.01
MIN_PAUSE_S = 0.22  # shorter silences are stop closures or phrase-internal gaps
RAMP_S = 0.08  # blend in/out time inside a pause
SPEECH_PERCENTILE = 95.0
FLOOR_PERCENTILE = 10.0
THRESHOLD_SHARE = 0.3  # silence: below floor + this share of the (speech - floor) range, in dB
MIN_RANGE_DB = 12.0  # a recording whose speech sits less than this over its floor has no pauses to find
DYNAMIC_RANGE_DB = 70.0  # digital silence is treated as this far under the speech


class FrameLevels:
    """Levels in dB of 20 ms frames every 10 ms, frame i centred at i * 10 ms, of a recording fed in
    pieces of any size, in order: equal to `frame_levels_db` of the whole (each frame's energy is
    summed from its own samples, so where the pieces were cut does not matter)."""

    def __init__(self, sr: int) -> None:
        self.frame, self.hop = int(round(FRAME_S * sr)), int(round(HOP_S * sr))
        self.pending = np.zeros(self.frame // 2)  # the half frame of silence before the start
        self.parts: list[np.ndarray] = []
        self.n_samples = 0

    def push(self, piece: np.ndarray) -> None:
        x = np.asarray(piece, dtype=np.float64).reshape(-1)
        self.n_samples += x.size
        levels, self.pending = self._whole_frames(np.concatenate([self.pending, x**2]))
        self.parts.append(levels)

    def _whole_frames(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(levels of the frames that fit in `squares`, the squares the next frame starts with)."""
        count = (len(squares) - self.frame) // self.hop + 1 if len(squares) >= self.frame else 0
        if count == 0:
            return np.zeros(0), squares
        windows = np.lib.stride_tricks.sliding_window_view(squares, self.frame)[:: self.hop][:count]
        levels = 10.0 * np.log10(windows.sum(axis=1) / self.frame + 1e-20)
        return levels, squares[count * self.hop :].copy()

    def levels(self) -> np.ndarray:
        """The levels of everything pushed so far: 1 + n_samples // hop frames, the end padded with
        a frame of silence."""
        last, _ = self._whole_frames(np.concatenate([self.pending, np.zeros(self.frame)]))
        n = max(1, 1 + self.n_samples // self.hop)
        return np.concatenate([*self.parts, last])[:n]


def frame_levels_db(audio: np.ndarray, sr: int) -> np.ndarray:
    """Level in dB of 20 ms frames every 10 ms, frame i centred at i * 10 ms."""
    meter = FrameLevels(sr)
    meter.push(audio)
    return meter.levels()


def pause_mask(audio: np.ndarray, sr: int) -> np.ndarray:
    """Boolean per 10 ms frame: inside a pause of at least MIN_PAUSE_S."""
    return pauses_from_levels(frame_levels_db(audio, sr))


def pauses_from_levels(levels: np.ndarray) -> np.ndarray:
    """`pause_mask` from the recording's frame levels (`frame_levels_db`, `FrameLevels`)."""
    speech = float(np.percentile(levels, SPEECH_PERCENTILE))
    floor = max(float(np.percentile(levels, FLOOR_PERCENTILE)), speech - DYNAMIC_RANGE_DB)
    if speech - floor < MIN_RANGE_DB:  # steady sound: a silent file, hum or hiss, or one held vowel
        quiet = levels < SILENT_FILE_DBFS
    else:
        quiet = levels < max(floor + THRESHOLD_SHARE * (speech - floor), SILENT_FILE_DBFS)
    return _keep_long_runs(quiet, int(round(MIN_PAUSE_S / HOP_S)))


def _keep_long_runs(flags: np.ndarray, min_len: int) -> np.ndarray:
    out = np.zeros_like(flags)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= min_len:
            out[start:stop] = True
    return out


def rest_weights(audio: np.ndarray, sr: int, fps: float, n_frames: int) -> np.ndarray:
    """Per motion frame, how far to blend towards rest (0 = speech, 1 = deep in a pause)."""
    return rest_weights_from_levels(frame_levels_db(audio, sr), fps, n_frames)


def rest_weights_from_levels(levels: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """`rest_weights` from the recording's frame levels (`frame_levels_db`, `FrameLevels`)."""
    pauses = pauses_from_levels(levels)
    # distance (in 10 ms frames) from each level frame to the nearest non-pause frame
    # (the file's start and end count as silence: a take that begins or ends in a pause rests there)
    inside = np.zeros(len(pauses))
    edge = 10**6
    run = edge
    for i, flag in enumerate(pauses):
        run = run + 1 if flag else 0
        inside[i] = run
    run = edge
    for i in range(len(pauses) - 1, -1, -1):
        run = run + 1 if pauses[i] else 0
        inside[i] = min(inside[i], run)
    ramp = np.clip((inside * HOP_S) / RAMP_S, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)  # smooth in and out
    times = np.arange(n_frames) / fps
    return np.interp(times, np.arange(len(ramp)) * HOP_S, ramp).astype(np.float32)


def rig_rest_offsets(style: np.ndarray, fps: float, cond: np.ndarray) -> np.ndarray:
    """The rig's resting face per frame [T, V, 3] for emotion conditioning `cond` [T, E] and a speaker
    style vector: the face the corpus shows in silence, which is what the model is trained to
    produce there."""
    from engine.inference.rig_poses import rig_pose_offsets

    return rig_pose_offsets("rest", style, fps, cond)


def blend_to_rest(offsets: np.ndarray, rest_for, weights: np.ndarray) -> np.ndarray:
    """offsets [T, V, 3] moved towards rest by weights [T]; `rest_for(frame_indices) -> [n, V, 3]`
    is asked only for the frames inside pauses, so an hour-long take never holds a second copy."""
    out = np.array(offsets, dtype=np.float32, copy=True)
    frames = np.flatnonzero(np.asarray(weights) > 0)
    for chunk in np.array_split(frames, max(1, len(frames) // 4096 + 1)):
        if len(chunk):
            w = np.asarray(weights, dtype=np.float32)[chunk][:, None, None]
            out[chunk] = out[chunk] * (1.0 - w) + rest_for(chunk) * w
    return out
