"""Forced alignment of a known phone sequence to audio: the script's phones get their times.

`ctc_align` runs Viterbi over the CTC graph of the model's audio head (any language, numpy only):
blank, phone, blank, phone, ..., with an optional silence between words. Each word is scored 0..1 by
how much of the audio's evidence the forced path keeps (goodness of pronunciation: the exp of the
mean per-frame log-probability of the forced path minus that of the free best path), times the share
of its phones that got more than one frame: a script forced onto audio that says something else
squeezes phones to a single frame where nothing supports them. `bad_words` are the low scorers.

`sphinx_align` uses pocketsphinx's acoustic model of recorded human speech (English only, optional).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.phonemes import PHONE_ID, SILENCE
from engine.script.phonemize import WordPhones

_NEG = -1e30
MAX_ALIGN_CELLS = 150_000_000  # frames x states (4 bytes each): about 5 minutes of continuous speech
GOOD_WORD_SCORE = 0.25  # a word scoring below this did not align (3 % of right words, 65 % of wrong ones)


@dataclass(frozen=True)
class AlignedPhone:
    phone: str
    start: float
    end: float


@dataclass(frozen=True)
class AlignedWord:
    text: str  # as written in the script
    start: float
    end: float
    phones: tuple[AlignedPhone, ...]
    score: float  # 0..1: how well the audio supports this word (1 = as well as anything could)
    index: int  # position in the script


@dataclass(frozen=True)
class Alignment:
    words: tuple[AlignedWord, ...]
    aligner: str
    duration: float

    @property
    def phones(self) -> list[AlignedPhone]:
        """Every word's phones plus silences filling the gaps, covering 0..duration."""
        out: list[AlignedPhone] = []
        cursor = 0.0
        for word in self.words:
            for phone in word.phones:
                if phone.start > cursor + 1e-6:
                    out.append(AlignedPhone(SILENCE, cursor, phone.start))
                out.append(phone)
                cursor = max(cursor, phone.end)
        if self.duration > cursor + 1e-6:
            out.append(AlignedPhone(SILENCE, cursor, self.duration))
        return out

    def bad_words(self, threshold: float = GOOD_WORD_SCORE) -> list[AlignedWord]:
        return [w for w in self.words if w.score < threshold]

    @property
    def score(self) -> float:
        """Duration-weighted mean word score: the whole line's fit."""
        if not self.words:
            return 0.0
        weights = np.array([max(w.end - w.start, 1e-3) for w in self.words])
        return float(np.average([w.score for w in self.words], weights=weights))


@dataclass(frozen=True)
class _Graph:
    labels: np.ndarray  # [S] vocab id per state (0 = blank)
    skip2: np.ndarray  # [S] bool: may enter from s-2 (over a blank, or over a skipped optional token)
    skip3: np.ndarray  # [S] bool: may enter from s-3 (over an optional token and its blank)
    skip4: np.ndarray  # [S] bool: may enter from s-4 (from the label before a skipped optional token)
    starts: np.ndarray  # states a path may start in
    ends: np.ndarray  # states a path may end in
    token_of_state: np.ndarray  # [S] token index (-1 for blanks)


def _build_graph(tokens: Sequence[tuple[int, bool]]) -> _Graph:
    """CTC states for tokens (vocab id, optional): B0 L0 B1 L1 ... B_K. Every state may stay or
    advance by one; skips go over a blank between different labels and over optional tokens."""
    k = len(tokens)
    n_states = 2 * k + 1
    labels = np.zeros(n_states, np.int64)
    token_of_state = np.full(n_states, -1, np.int64)
    skip2, skip3, skip4 = (np.zeros(n_states, bool) for _ in range(3))
    for i, (label, _) in enumerate(tokens):
        labels[2 * i + 1] = label
        token_of_state[2 * i + 1] = i
    for s in range(2, n_states):
        if s % 2 == 1:  # label state of token i
            i = s // 2
            skip2[s] = tokens[i - 1][0] != tokens[i][0]
            if tokens[i - 1][1]:  # the token before is optional: come from its blank or the label before it
                skip3[s] = True
                skip4[s] = i > 1 and tokens[i - 2][0] != tokens[i][0]
        else:  # blank after token i
            i = s // 2 - 1
            if tokens[i][1]:
                skip2[s] = True
                skip3[s] = s >= 3
    starts = [0, 1] + ([2, 3] if k > 1 and tokens[0][1] else [])
    ends = [n_states - 1, n_states - 2] + ([n_states - 3, n_states - 4] if k > 1 and tokens[-1][1] else [])
    return _Graph(labels, skip2, skip3, skip4, np.array(starts), np.array(ends), token_of_state)


def _viterbi(logprobs: np.ndarray, graph: _Graph) -> np.ndarray:
    """Best state per frame [T] through the graph.

    The forward pass keeps each frame's scores (float32, 4 bytes a cell) instead of back-pointers,
    so a frame costs a few whole-array maxima; the backward pass re-derives the one step it needs.
    """
    n_frames = logprobs.shape[0]
    n_states = len(graph.labels)
    if n_frames * n_states > MAX_ALIGN_CELLS:
        raise ValueError(
            f"the take is too long to align in one piece ({n_frames} frames x {n_states} states); "
            "split the recording and its script into takes of a few minutes"
        )
    penalties = [np.where(allowed, 0.0, _NEG) for allowed in (graph.skip2, graph.skip3, graph.skip4)]
    history = np.empty((n_frames, n_states), np.float32)
    score = np.full(n_states, _NEG)
    score[graph.starts] = logprobs[0, graph.labels[graph.starts]]
    for t in range(1, n_frames):
        history[t - 1] = score
        best = score.copy()
        np.maximum(best[1:], score[:-1], out=best[1:])
        for by, penalty in enumerate(penalties, start=2):
            np.maximum(best[by:], score[:-by] + penalty[by:], out=best[by:])
        score = best + logprobs[t, graph.labels]
    history[-1] = score
    end_state = int(graph.ends[np.argmax(score[graph.ends])])
    if score[end_state] <= _NEG / 2:
        raise ValueError("the audio is too short for the script: fewer frames than phones to align")
    allowed = (np.ones(n_states, bool), np.ones(n_states, bool), graph.skip2, graph.skip3, graph.skip4)
    path = np.empty(n_frames, np.int64)
    path[-1] = state = end_state
    for t in range(n_frames - 1, 0, -1):
        previous = history[t - 1]
        options = [state - by for by in range(5) if state - by >= 0 and allowed[by][state]]
        state = max(options, key=lambda s: previous[s])
        path[t - 1] = state
    return path


def ctc_align(
    logprobs: np.ndarray, words: Sequence[WordPhones], frame_rate: float, time_offset: float = 0.0
) -> Alignment:
    """Align the words' phones to CTC log-probs `[T, VOCAB]` at `frame_rate` frames per second."""
    logprobs = np.asarray(logprobs, np.float64)
    if not words:
        raise ValueError("nothing to align: the script has no words")
    sil = PHONE_ID[SILENCE]
    tokens: list[tuple[int, bool]] = [(sil, True)]
    owner: list[tuple[int, int]] = [(-1, -1)]  # (word index, phone index) per token
    for w, word in enumerate(words):
        for p, phone in enumerate(word.phones):
            tokens.append((PHONE_ID[phone], False))
            owner.append((w, p))
        tokens.append((sil, True))
        owner.append((-1, -1))
    n_required = sum(len(w.phones) for w in words)
    if logprobs.shape[0] < n_required:
        raise ValueError(
            f"the audio ({logprobs.shape[0] / frame_rate:.2f} s) is too short for the script "
            f"({n_required} phones); is this the right line?"
        )
    graph = _build_graph(tokens)
    path = _viterbi(logprobs, graph)
    return _alignment_from_path(logprobs, path, graph, tokens, owner, words, frame_rate, time_offset)


def _alignment_from_path(logprobs, path, graph, tokens, owner, words, frame_rate, time_offset) -> Alignment:
    n_frames = len(path)
    forced = logprobs[np.arange(n_frames), graph.labels[path]]
    free = logprobs.max(axis=1)
    token_at = graph.token_of_state[path]
    first_frame = {}
    for t in range(n_frames):
        k = int(token_at[t])
        if k >= 0 and k not in first_frame:
            first_frame[k] = t
    emitted = sorted(first_frame)
    # a token owns the frames from its first emission to the next emitted token's
    bounds = {k: (first_frame[k], first_frame[emitted[j + 1]] if j + 1 < len(emitted) else n_frames)
              for j, k in enumerate(emitted)}  # fmt: skip
    tokens_of_word: list[list[int]] = [[] for _ in words]
    for k, (w, _) in enumerate(owner):
        if w >= 0:
            tokens_of_word[w].append(k)
    aligned: list[AlignedWord] = []
    for w, word in enumerate(words):
        spans = [bounds[k] for k in tokens_of_word[w]]
        lo, hi = spans[0][0], spans[-1][1]
        phones = tuple(
            AlignedPhone(p, time_offset + a / frame_rate, time_offset + b / frame_rate)
            for p, (a, b) in zip(word.phones, spans)
        )
        ratio = float(np.mean(forced[lo:hi] - free[lo:hi])) if hi > lo else -math.inf
        squeezed = float(np.mean([b - a <= 1 for a, b in spans]))
        score = math.exp(ratio) * (1.0 - squeezed)
        aligned.append(
            AlignedWord(word.token.display, phones[0].start, phones[-1].end, phones, score, word.token.index)
        )
    return Alignment(tuple(aligned), "ctc", time_offset + n_frames / frame_rate)


def rescore(alignment: Alignment, logprobs: np.ndarray, frame_rate: float, lag_s: float = 0.0) -> Alignment:
    """Word scores of an alignment made another way (pocketsphinx), on the same scale as `ctc_align`'s:
    each phone's frames are read as its label or a blank, the label at least once. `lag_s`: how late
    the log-probs run."""
    logprobs = np.asarray(logprobs, np.float64)
    n_frames = logprobs.shape[0]
    free = logprobs.max(axis=1)
    words = []
    for word in alignment.words:
        gains, spans = [], []
        for phone in word.phones:
            a = min(n_frames, max(0, int(round((phone.start + lag_s) * frame_rate))))
            b = min(n_frames, max(a, int(round((phone.end + lag_s) * frame_rate))))
            spans.append(b - a)
            label = PHONE_ID.get(phone.phone, PHONE_ID[SILENCE])
            forced = np.maximum(logprobs[a:b, label], logprobs[a:b, 0])
            if b > a and not (logprobs[a:b, label] >= logprobs[a:b, 0]).any():
                # CTC must emit the label at least once: on the frame where that costs least
                cheapest = int(np.argmin(logprobs[a:b, 0] - logprobs[a:b, label]))
                forced[cheapest] = logprobs[a + cheapest, label]
            gains.extend(forced - free[a:b])
        ratio = float(np.mean(gains)) if gains else -math.inf
        squeezed = float(np.mean([n <= 1 for n in spans]))
        words.append(
            AlignedWord(
                word.text, word.start, word.end, word.phones, math.exp(ratio) * (1 - squeezed), word.index
            )
        )
    return Alignment(tuple(words), alignment.aligner, alignment.duration)
