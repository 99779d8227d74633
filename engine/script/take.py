"""A take with a script: text -> aligned words and phones, checked against the audio.

`align_take` is the one place that picks the aligner. The CTC aligner (the model's own audio head,
numpy Viterbi) is the default in every language: on held-out voices its median word-boundary error
is 14-15 ms at ~2 ms per second of audio, and its per-word evidence score is what flags a wrong
script. `aligner="pocketsphinx"` (English) re-times the words with pocketsphinx's model of recorded
speech: 8 ms, but 40 ms per second of audio and it finds no path across long pauses (numbers in
docs/script-mode.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.phonemes import PHONE_ID, SILENCE
from engine.script.align import GOOD_WORD_SCORE, AlignedPhone, AlignedWord, Alignment, ctc_align, rescore
from engine.script.lexicon import UserLexicon, lexicon_for
from engine.script.normalize import check_language, detect_language, tokenize
from engine.script.pauses import carve_pauses
from engine.script.phonemize import phonemize, phonemizer_name

ALIGNERS = ("auto", "ctc", "pocketsphinx")
ALIGN_RATE_FACTOR = 2  # the CTC head runs at twice the motion frame rate for finer boundaries
MIN_BAD_PHONES = 3
SECOND_OPINION_MAX_S = 20.0  # pocketsphinx costs ~40 ms per second of audio
LINE_FIT_SCORE = 0.5  # a script whose mean word score is below this is not what the audio says
CTC_LAG_S = 0.03  # the audio head fires this late after a phone's onset (calibrated on seen voices)


@dataclass
class ScriptResult:
    """What a script adds to a take: aligned words, the tools used and what the user must be told."""

    alignment: Alignment
    language: str
    phonemizer: str
    warnings: list[str] = field(default_factory=list)

    @property
    def bad_words(self) -> list[AlignedWord]:
        return bad_stretches(self.alignment)

    @property
    def fits(self) -> bool:
        """False when the script as a whole does not match the audio (another line, many missing words).

        On held-out voices right scripts score 0.56-0.93 and another sentence's script 0.15-0.46."""
        return self.alignment.score >= LINE_FIT_SCORE


def bad_stretches(alignment: Alignment) -> list[AlignedWord]:
    """Words that did not align, in stretches worth acting on: two or more consecutive words, or a
    word of at least MIN_BAD_PHONES phones (a short function word scores low on its own all the
    time, and a few frames of fallback motion there would only add noise)."""
    bad = {w.index for w in alignment.bad_words()}
    words = alignment.words
    keep = []
    for i, word in enumerate(words):
        neighbour = (i > 0 and words[i - 1].index in bad) or (
            i + 1 < len(words) and words[i + 1].index in bad
        )
        if word.index in bad and (neighbour or len(word.phones) >= MIN_BAD_PHONES):
            keep.append(word)
    return keep


def resolve_language(text: str, language: str | None) -> str:
    """The explicit language, else the one the text is unambiguously written in, else English."""
    if language in (None, "", "auto"):
        return detect_language(text)
    return check_language(str(language))


def _shift(alignment: Alignment, seconds: float) -> Alignment:
    def move(t: float) -> float:
        return float(min(max(t - seconds, 0.0), alignment.duration))

    words = tuple(
        replace(
            w,
            start=move(w.start),
            end=move(w.end),
            phones=tuple(AlignedPhone(p.phone, move(p.start), move(p.end)) for p in w.phones),
        )
        for w in alignment.words
    )
    return replace(alignment, words=words)


def align_take(
    audio: np.ndarray,
    text: str,
    language: str,
    logprobs: np.ndarray,
    frame_rate: float,
    aligner: str = "auto",
    lexicon: UserLexicon | None = None,
) -> Alignment:
    """Align `text` to 16 kHz `audio` given the audio head's CTC log-probs at `frame_rate`."""
    if aligner not in ALIGNERS:
        raise ValueError(f"aligner must be one of {', '.join(ALIGNERS)}, got {aligner!r}")
    return carve_pauses(_align(audio, text, language, logprobs, frame_rate, aligner, lexicon), audio)


def _align(audio, text, language, logprobs, frame_rate, aligner, lexicon) -> Alignment:
    words = phonemize(tokenize(text, language), language, lexicon)
    ctc = _shift(ctc_align(logprobs, words, frame_rate), CTC_LAG_S)
    if aligner == "ctc" or (aligner == "auto" and not _second_opinion_helps(ctc, language)):
        return ctc
    if language != "en":
        raise ValueError("the pocketsphinx aligner knows English only; use aligner='ctc'")
    from engine.script.sphinx import sphinx_align

    try:
        timed = rescore(sphinx_align(audio, words), logprobs, frame_rate, CTC_LAG_S)
    except RuntimeError:
        if aligner == "pocketsphinx":
            raise
        return ctc  # no path through the script: the CTC alignment stands
    return timed  # a model of recorded speech that found a path: its times, scored like CTC's


def _second_opinion_helps(alignment: Alignment, language: str) -> bool:
    """Ask pocketsphinx only where it can help and the cost stays small: English, installed, a take
    of at most SECOND_OPINION_MAX_S, and words the CTC alignment left unaligned."""
    if language != "en" or alignment.duration > SECOND_OPINION_MAX_S or not bad_stretches(alignment):
        return False
    from engine.script.sphinx import sphinx_available

    return sphinx_available()


def script_result(
    audio: np.ndarray,
    text: str,
    language: str | None,
    logprobs: np.ndarray,
    frame_rate: float,
    aligner: str = "auto",
    lexicon: UserLexicon | None = None,
) -> ScriptResult:
    lang = resolve_language(text, language)
    alignment = align_take(audio, text, lang, logprobs, frame_rate, aligner, lexicon)
    result = ScriptResult(alignment, lang, phonemizer_name(lang))
    bad = result.bad_words
    if not result.fits:
        result.warnings.append(
            f"the script does not match this audio (alignment score {alignment.score:.2f}, "
            f"{len(bad)} of {len(alignment.words)} words do not align): is it the right line? "
            "The take uses audio-only motion."
        )
    elif bad:
        listed = ", ".join(f"{w.text!r} ({w.start:.2f}s)" for w in bad[:12])
        more = f" and {len(bad) - 12} more" if len(bad) > 12 else ""
        result.warnings.append(
            f"{len(bad)} of {len(alignment.words)} script words do not match the audio: {listed}{more}; "
            "those stretches use audio-only motion"
        )
    return result


def read_script_file(path: str | Path) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the script {path}: {error}") from None


def script_beside(audio_path: str | Path) -> Path | None:
    """`line.txt` beside `line.wav`, if there is one: picked up without being asked."""
    candidate = Path(audio_path).with_suffix(".txt")
    return candidate if candidate.is_file() else None


def prepare_script(text: str | None, audio: object, language: str | None) -> tuple[str | None, list[str]]:
    """The take's script (None: audio only) and notes for the user, checked before any decoding.

    `text=None` picks up `line.txt` beside `line.wav`; an empty text means audio only. The words are
    normalised and phonemized here, so an unpronounceable word fails the take before the model runs.
    """
    notes: list[str] = []
    source = audio if isinstance(audio, str | Path) else None
    if text is None and source is not None and (beside := script_beside(source)) is not None:
        text = read_script_file(beside)
        notes.append(f"script: using {beside.name} found beside the audio (pass text='' for audio only)")
    if text is None or not text.strip():
        return None, notes
    lang = resolve_language(text, language)
    phonemize(tokenize(text, lang), lang, lexicon_for(source))
    return text, notes


def phones_for_motion(alignment: Alignment) -> list[tuple[str, float, float]]:
    """The aligned phones as the rig takes them (unknown symbols to silence, no overlaps)."""
    out = []
    for phone in alignment.phones:
        name = phone.phone if phone.phone in PHONE_ID else SILENCE
        if phone.end > phone.start:
            out.append((name, phone.start, phone.end))
    return out


__all__ = ["GOOD_WORD_SCORE", "ScriptResult", "align_take", "script_result"]
