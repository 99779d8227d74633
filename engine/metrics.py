"""Evaluation metrics of the talking-face literature, plus the two this project adds.

Vertex metrics take absolute positions or offsets `[T, V, 3]` in metres (pred and gt in the same
frame of reference) and return metres squared; `engine.eval` reports them in mm^2.

- LVE (lip vertex error, CodeTalker protocol): per frame the largest squared L2 error over the lip
  vertices, averaged over frames. The max makes it sensitive to the one vertex that misses a closure.
- EVE: the same over the eye + forehead vertices (EmoFace: are the emotional regions right?).
- FDD (upper-face dynamics deviation, CodeTalker protocol): for every upper-face vertex the standard
  deviation over time of its squared displacement from the template, averaged over the vertices;
  FDD = gt - pred. Positive means the prediction moves the upper face less than the ground truth.
- PER: Levenshtein distance between phone sequences divided by the reference length.
- Bilabial closure rate: the share of p/b/m phones during which the inner lips actually meet -- the
  error viewers notice first, and one a low LVE does not guarantee.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.phonemes import BILABIALS, SILENCE

if TYPE_CHECKING:
    from engine.face.template import FaceTemplate

DEFAULT_CLOSURE_THRESHOLD_M = 0.002  # inner lips closer than 2 mm count as closed


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected motion [T, V, 3], got pred shape {pred.shape}")
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred {pred.shape} and gt {gt.shape} differ; trim both to the same frames and vertices first"
        )
    if pred.shape[0] == 0:
        raise ValueError("motion has no frames")
    return pred, gt


def _region(idx: Sequence[int] | np.ndarray, n_vertices: int, what: str) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError(f"the {what} vertex mask is empty")
    if idx.min() < 0 or idx.max() >= n_vertices:
        raise ValueError(f"the {what} vertex mask indexes outside the {n_vertices} mesh vertices")
    return idx


def max_region_error(pred: np.ndarray, gt: np.ndarray, idx: Sequence[int] | np.ndarray) -> float:
    """Mean over frames of the worst squared vertex error in a region (m^2)."""
    pred, gt = _check_pair(pred, gt)
    idx = _region(idx, pred.shape[1], "region")
    sq = np.sum((pred[:, idx] - gt[:, idx]) ** 2, axis=-1)  # [T, |idx|]
    return float(np.mean(np.max(sq, axis=1)))


def lve(pred: np.ndarray, gt: np.ndarray, lip_idx: Sequence[int] | np.ndarray) -> float:
    """Lip vertex error in m^2 (CodeTalker protocol)."""
    return max_region_error(pred, gt, _region(lip_idx, np.shape(pred)[1], "lip"))


def eve(pred: np.ndarray, gt: np.ndarray, eye_forehead_idx: Sequence[int] | np.ndarray) -> float:
    """Eye + forehead vertex error in m^2: LVE over the upper emotional region."""
    return max_region_error(pred, gt, _region(eye_forehead_idx, np.shape(pred)[1], "eye/forehead"))


def fdd(
    pred: np.ndarray,
    gt: np.ndarray,
    upper_idx: Sequence[int] | np.ndarray,
    template: np.ndarray,
) -> float:
    """Upper-face dynamics deviation in m^2 (CodeTalker protocol, signed gt - pred).

    `pred`/`gt` are absolute vertices; `template` [V, 3] is the subject's neutral face.
    """
    pred, gt = _check_pair(pred, gt)
    template = np.asarray(template, dtype=np.float64)
    if template.shape != pred.shape[1:]:
        raise ValueError(f"template {template.shape} does not match the motion's vertices {pred.shape[1:]}")
    idx = _region(upper_idx, pred.shape[1], "upper-face")

    def dynamics(motion: np.ndarray) -> float:
        displacement = np.sum((motion[:, idx] - template[idx]) ** 2, axis=-1)  # [T, |idx|]
        return float(np.mean(np.std(displacement, axis=0)))

    return dynamics(gt) - dynamics(pred)


def edit_distance(hyp: Sequence, ref: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, start=1):
        current = [i] + [0] * len(ref)
        for j, r in enumerate(ref, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r))
        previous = current
    return previous[-1]


def phoneme_error_rate(hyp: Sequence, ref: Sequence) -> float:
    """Edit distance over the reference length; can exceed 1 when the hypothesis inserts a lot."""
    if len(ref) == 0:
        raise ValueError("phoneme_error_rate needs a non-empty reference; skip clips without phones")
    return edit_distance(hyp, ref) / len(ref)


def greedy_ctc_decode(logits: np.ndarray, blank: int = 0) -> list[int]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"expected CTC logits [T, C], got shape {logits.shape}")
    best = logits.argmax(axis=-1)
    out: list[int] = []
    previous = -1
    for token in best.tolist():
        if token != previous and token != blank:
            out.append(int(token))
        previous = token
    return out


def _phone_frames(start: float, end: float, fps: float, n_frames: int) -> np.ndarray:
    """Frames whose time stamp i/fps falls inside [start, end); the nearest one for very short phones."""
    first = int(np.ceil(start * fps - 1e-9))
    last = int(np.ceil(end * fps - 1e-9))  # exclusive
    first, last = max(first, 0), min(last, n_frames)
    if last > first:
        return np.arange(first, last)
    centre = int(round(0.5 * (start + end) * fps))
    return np.array([min(max(centre, 0), n_frames - 1)])


def bilabial_closures(
    vertices: np.ndarray,
    phones: Sequence,
    fps: float,
    template: FaceTemplate | None = None,
    threshold: float = DEFAULT_CLOSURE_THRESHOLD_M,
    gap_fn: Callable[..., np.ndarray] | None = None,
) -> tuple[int, int]:
    """(closed, total) over the p/b/m phones of a clip; the counts let callers pool many clips.

    `vertices` are absolute positions; `template` is the face whose inner-lip vertex pairs are
    measured (engine.face.load_template() when None); `gap_fn(vertices, template)` defaults to
    engine.arkit.basis.inner_lip_gap, the mean opening of those pairs.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    vertices = np.asarray(vertices, dtype=np.float32)
    if vertices.ndim != 3 or vertices.shape[0] == 0:
        raise ValueError(f"expected absolute vertices [T, V, 3] with T > 0, got {vertices.shape}")
    targets = [p for p in phones if p.phone in BILABIALS]
    if not targets:
        return 0, 0
    if template is not None and not hasattr(template, "inner_lip_pairs"):
        raise ValueError(
            "template must be an engine.face.FaceTemplate (it names the inner-lip pairs), or None"
        )
    if gap_fn is None:
        from engine.arkit.basis import inner_lip_gap

        gap_fn = inner_lip_gap
    gap = np.asarray(gap_fn(vertices, template))
    closed = 0
    for phone in targets:
        frames = _phone_frames(phone.start, phone.end, fps, len(gap))
        closed += int(np.min(gap[frames]) < threshold)
    return closed, len(targets)


def bilabial_closure_rate(
    vertices: np.ndarray,
    phones: Sequence,
    fps: float,
    template: FaceTemplate | None = None,
    threshold: float = DEFAULT_CLOSURE_THRESHOLD_M,
    gap_fn: Callable[..., np.ndarray] | None = None,
) -> float:
    """Share of p/b/m phones whose minimum inner-lip gap drops below `threshold` metres (nan if none)."""
    closed, total = bilabial_closures(vertices, phones, fps, template, threshold, gap_fn)
    return closed / total if total else float("nan")


# ---- lip sync as a viewer sees it (the unseen-voice protocol of engine.voice_eval) ------------------
# The gap is the distance between the template's inner-lip midline vertices 13 (upper) and 14 (lower):
# what a viewer reads as "the lips touch". One millimetre allows for the lips' own thickness.
UPPER_LIP_VERTEX, LOWER_LIP_VERTEX = 13, 14
MOUTH_CORNER_VERTICES = (61, 291)
TOUCH_MM = 1.0
MM2 = 1e6  # m^2 -> mm^2: lve, eve and fdd return metres squared
REST_MIN_PAUSE_S = 0.3  # pauses at least this long must show the rest face ...
REST_TRIM_S = 0.1  # ... after this much at each edge (the mouth closes and opens again)
ROUND_PHONES = frozenset({"OW", "UW", "W"})
SPREAD_PHONES = frozenset({"IY", "EY", "AE"})


def lip_gap_mm(vertices: np.ndarray) -> np.ndarray:
    """Inner-lip gap per frame (mm) of absolute template vertices [T, 468, 3] in metres."""
    v = np.asarray(vertices, dtype=np.float64)
    return np.linalg.norm(v[:, UPPER_LIP_VERTEX] - v[:, LOWER_LIP_VERTEX], axis=-1) * 1000.0


def mouth_width_mm(vertices: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    left, right = MOUTH_CORNER_VERTICES
    return np.linalg.norm(v[:, left] - v[:, right], axis=-1) * 1000.0


def _frames_with_margin(start: float, end: float, fps: float, n_frames: int, margin: int) -> np.ndarray:
    frames = _phone_frames(start, end, fps, n_frames)
    return np.arange(max(frames[0] - margin, 0), min(frames[-1] + margin + 1, n_frames))


def contact_counts(gap_mm: np.ndarray, phones: Sequence, fps: float, margin: int = 1) -> tuple[int, int]:
    """(p/b/m phones whose gap drops to <= TOUCH_MM within the phone +- `margin` frames, all p/b/m)."""
    closed = total = 0
    for phone in phones:
        if phone.phone in BILABIALS:
            frames = _frames_with_margin(phone.start, phone.end, fps, len(gap_mm), margin)
            closed += int(np.min(gap_mm[frames]) <= TOUCH_MM)
            total += 1
    return closed, total


def rest_counts(gap_mm: np.ndarray, phones: Sequence, fps: float) -> tuple[int, int]:
    """(frames at rest, frames counted) inside pauses >= REST_MIN_PAUSE_S, REST_TRIM_S trimmed per edge."""
    at_rest = total = 0
    for phone in phones:
        if phone.phone == SILENCE and phone.end - phone.start >= REST_MIN_PAUSE_S:
            start, end = phone.start + REST_TRIM_S, min(phone.end - REST_TRIM_S, len(gap_mm) / fps)
            first, last = int(np.ceil(start * fps)), int(np.floor(end * fps))
            if last < first:
                continue
            window = gap_mm[first : last + 1]
            at_rest += int((window <= TOUCH_MM).sum())
            total += len(window)
    return at_rest, total


def rounding_mm(width_mm: np.ndarray, phones: Sequence, fps: float) -> tuple[float, float]:
    """(summed mouth width over the middles of spread vowels minus that of rounded sounds, count of
    pairs) — pooled by the caller into a mean contrast; a frozen face scores 0, real rounding > 0."""

    def widths(kinds: frozenset) -> list[float]:
        out = []
        for phone in phones:
            if phone.phone in kinds:
                centre = int(round(0.5 * (phone.start + phone.end) * fps))
                out.append(float(width_mm[min(max(centre, 0), len(width_mm) - 1)]))
        return out

    spread, rounded = widths(SPREAD_PHONES), widths(ROUND_PHONES)
    if not spread or not rounded:
        return 0.0, 0.0
    return float(np.mean(spread) - np.mean(rounded)), 1.0
