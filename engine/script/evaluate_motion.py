"""Lip contacts and rests of a take, measured against the known phone times of TTS speech.

Bilabial closure: a p/b/m counts as closed when the inner-lip gap drops to <= 1 mm on some frame of
the phone widened by one frame each side. Rest: a silence >= 300 ms, trimmed by 100 ms at each edge,
counts as rest when the gap stays <= 1 mm on all its frames.
"""

from __future__ import annotations

import numpy as np

from engine.audio.io import MODEL_SAMPLE_RATE
from engine.metrics import REST_MIN_PAUSE_S as REST_MIN_S
from engine.metrics import REST_TRIM_S, TOUCH_MM

CLOSED_M = TOUCH_MM / 1000.0


def closure_and_rest(gap: np.ndarray, phones, fps: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """((closed, bilabials), (rested, long silences)) for a per-frame inner-lip gap in metres."""
    from engine.phonemes import BILABIALS, SILENCE

    n = len(gap)
    closed = total = rested = pauses = 0
    for p in phones:
        if p.phone in BILABIALS:
            lo = max(0, int(np.floor(p.start * fps)) - 1)
            hi = min(n, int(np.ceil(p.end * fps)) + 2)
            total += 1
            closed += int(hi > lo and gap[lo:hi].min() <= CLOSED_M)
        elif p.phone == SILENCE and p.end - p.start >= REST_MIN_S:
            lo = int(np.ceil((p.start + REST_TRIM_S) * fps))
            hi = min(n, int(np.floor((p.end - REST_TRIM_S) * fps)) + 1)
            if hi > lo:
                pauses += 1
                rested += int(gap[lo:hi].max() <= CLOSED_M)
    return (closed, total), (rested, pauses)


def _add(acc: dict, key: str, counts: tuple[int, int]) -> None:
    old = acc.get(key, [0, 0])
    acc[key] = [old[0] + counts[0], old[1] + counts[1]]


def motion_rates(engine, scripted, clip, fps: float, acc: dict) -> None:
    """Add the audio-only take's and the scripted take's counts for one clip to `acc`."""
    from engine.arkit.basis import inner_lip_gap
    from engine.data.motion import arkit_to_vertices
    from engine.face.template import load_template

    template = load_template().vertices[None]
    audio_only = engine.animate(clip.audio, sample_rate=MODEL_SAMPLE_RATE, fps=fps, text="", captions=False)
    for name, take in (("audio-only", audio_only), ("script", scripted)):
        for output, vertices in (
            ("vertex", take.offsets + template),
            ("arkit", arkit_to_vertices(take.arkit)),
        ):
            closure, rest = closure_and_rest(inner_lip_gap(vertices), clip.phones, fps)
            _add(acc, f"{name}/{output}/closure", closure)
            _add(acc, f"{name}/{output}/rest", rest)
