"""Script mode, timing side: CTC forced alignment, pauses, word captions, exports and rig motion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.animation import Animation, TimedPhone
from engine.phonemes import PHONE_ID, VOCAB
from engine.script.align import AlignedPhone, AlignedWord, Alignment, ctc_align
from engine.script.normalize import Token
from engine.script.pauses import carve_pauses, quiet_runs
from engine.script.phonemize import WordPhones
from engine.script.words import alignment_record, group_lines, to_rhubarb_tsv, word_captions, write_timing

RATE = 100.0  # frames per second of the synthetic log-probs


def _words(*spec: str) -> list[WordPhones]:
    """WordPhones from 'word:P H O N E S' strings."""
    out = []
    for i, item in enumerate(spec):
        word, phones = item.split(":")
        out.append(WordPhones(Token(word, word, i), tuple(phones.split()), "test"))
    return out


def _logprobs(runs: list[tuple[str, int]], confident: float = 0.9) -> np.ndarray:
    """Log-probs whose frames favour each (symbol, n_frames) run in turn ('-' = blank)."""
    frames = [symbol for symbol, n in runs for _ in range(n)]
    lp = np.full((len(frames), len(VOCAB)), (1 - confident) / (len(VOCAB) - 1))
    for t, symbol in enumerate(frames):
        lp[t, 0 if symbol == "-" else PHONE_ID[symbol]] = confident
    return np.log(lp)


def test_ctc_viterbi_recovers_phone_times_and_skips_the_optional_silence():
    # "bob" (B AA B: a repeated label needs a blank between) then "me", a pause between the words
    lp = _logprobs([("-", 10), ("B", 2), ("-", 3), ("AA", 5), ("-", 2), ("B", 2), ("-", 6), ("sil", 20),
                    ("M", 3), ("-", 2), ("IY", 6), ("-", 9)])  # fmt: skip
    alignment = ctc_align(lp, _words("bob:B AA B", "me:M IY"), RATE)
    bob, me = alignment.words
    assert [p.phone for p in bob.phones] == ["B", "AA", "B"]
    assert bob.start == pytest.approx(0.10) and bob.phones[1].start == pytest.approx(0.15)
    assert me.start == pytest.approx(0.50)  # after the silence, which belongs to neither word
    assert bob.end == pytest.approx(0.30)
    assert min(bob.score, me.score) > 0.8  # the audio says exactly these phones
    assert alignment.duration == pytest.approx(len(lp) / RATE)
    # no silence between the words: the optional silence is skipped
    tight = ctc_align(
        _logprobs([("M", 3), ("-", 2), ("IY", 3), ("M", 3), ("IY", 3)]), _words("me:M IY", "me:M IY"), RATE
    )
    assert [w.start for w in tight.words] == pytest.approx([0.0, 0.08])


def test_words_the_audio_does_not_say_score_low_and_short_audio_is_refused():
    lp = _logprobs([("-", 5), ("S", 6), ("-", 2), ("IY", 8), ("-", 5), ("K", 4), ("-", 5)])
    right = ctc_align(lp, _words("seek:S IY K"), RATE)
    wrong = ctc_align(lp, _words("moon:M UW N", "all:AO L"), RATE)
    assert right.words[0].score > 0.8
    assert all(w.score < 0.25 for w in wrong.words) and len(wrong.bad_words()) == 2
    assert wrong.score < 0.5 <= right.score
    with pytest.raises(ValueError, match="too short for the script"):
        ctc_align(lp[:3], _words("seek:S IY K", "all:AO L"), RATE)


def test_quiet_stretches_in_the_audio_become_silence_between_phones():
    sr = 16000
    rng = np.random.default_rng(0)
    audio = np.concatenate([rng.normal(0, 0.2, sr // 2), np.zeros(sr // 2), rng.normal(0, 0.2, sr // 2)])
    assert quiet_runs(audio.astype(np.float32)) == [pytest.approx((0.5, 1.0))]
    # the aligner let "a" run through the pause; "b" starts late
    words = (
        AlignedWord("a", 0.1, 1.1, (AlignedPhone("AA", 0.1, 1.1),), 1.0, 0),
        AlignedWord("b", 1.1, 1.4, (AlignedPhone("B", 1.1, 1.4),), 1.0, 1),
    )
    carved = carve_pauses(Alignment(words, "ctc", 1.5), audio)
    assert carved.words[0].end == pytest.approx(0.5) and carved.words[1].start == pytest.approx(1.0)
    assert [p.phone for p in carved.phones] == ["sil", "AA", "sil", "B", "sil"]


def _alignment() -> Alignment:
    def word(text, index, *phones):
        timed = tuple(AlignedPhone(p, a, b) for p, a, b in phones)
        return AlignedWord(text, timed[0].start, timed[-1].end, timed, 0.9, index)

    return Alignment(
        (
            word("Bob", 0, ("B", 0.2, 0.3), ("AA", 0.3, 0.45), ("B", 0.45, 0.55)),
            word("may", 1, ("M", 0.6, 0.7), ("EY", 0.7, 0.9)),
            word("see", 2, ("S", 1.6, 1.75), ("IY", 1.75, 2.0)),  # after a 0.7 s pause: a new line
        ),
        "ctc",
        2.4,
    )


def test_word_captions_are_the_script_lines_with_per_word_scores():
    lips = [TimedPhone("P", 0.2, 0.3), TimedPhone("AA", 0.3, 0.45), TimedPhone("M", 0.46, 0.55)]
    captions = word_captions(_alignment(), lips)
    assert [c.text for c in captions] == ["Bob may", "see"]
    assert [[w.text for w in c.words] for c in captions] == [["Bob", "may"], ["see"]]
    bob, may = captions[0].words
    assert (bob.start, bob.end) == (0.2, 0.55) and bob.confidence == 0.9
    assert bob.sync > 0.6 and may.sync == 0.0  # the lips showed "bob" (p reads as b), not "may"
    assert captions[1].sync == 0.0 and captions[1].start == 1.6
    assert [len(line) for line in group_lines(_alignment().words)] == [2, 1]


def test_timing_exports_json_and_rhubarb_tsv(tmp_path):
    record = alignment_record(_alignment(), "en", "espeak-ng", [])
    take = Animation(fps=30, offsets=np.zeros((72, 468, 3), np.float32), arkit=np.zeros((72, 52), np.float32))
    with pytest.raises(ValueError, match="no script"):
        write_timing(take, tmp_path / "t.json")
    take.meta["script"] = record
    data = json.loads(write_timing(take, tmp_path / "t.json").read_text())
    assert [w["text"] for w in data["words"]] == ["Bob", "may", "see"] and data["phones"][0]["phone"] == "sil"
    cues = [line.split("\t") for line in write_timing(take, tmp_path / "t.tsv").read_text().splitlines()]
    assert cues[:4] == [["0.00", "X"], ["0.20", "A"], ["0.30", "D"], ["0.45", "A"]]
    assert cues[-1] == ["2.00", "X"] and to_rhubarb_tsv(record).endswith("2.00\tX\n")
    with pytest.raises(ValueError, match=".json or .tsv"):
        write_timing(take, tmp_path / "t.txt")


def test_rig_motion_closes_the_lips_on_aligned_bilabials_and_rests_in_pauses():
    from engine.arkit.basis import inner_lip_gap
    from engine.data.style import SpeakerStyle
    from engine.face.template import load_template
    from engine.script.evaluate_motion import closure_and_rest
    from engine.script.motion import blend_motion, fallback_mask, scripted_motion
    from engine.script.take import phones_for_motion

    alignment = _alignment()
    phones = phones_for_motion(alignment)
    n = 72
    schedule = [(0.0, "happy", 0.5), (1.5, "sad", 1.0)]
    offsets, arkit = scripted_motion(phones, n, 30.0, schedule, SpeakerStyle().as_vector())
    assert offsets.shape == (n, 468, 3) and arkit.shape == (n, 52)
    gap = inner_lip_gap(offsets + load_template().vertices[None])
    timed = [TimedPhone(p, a, b) for p, a, b in phones]
    (closed, bilabials), (rested, pauses) = closure_and_rest(gap, timed, 30.0)
    assert (closed, bilabials) == (3, 3) and (rested, pauses) == (2, 2)  # the gap and the tail
    assert gap[int(0.8 * 30)] > 0.002  # and the mouth opens on the vowel of "may"
    # a word that did not align takes the model's motion, cross-faded
    mask = fallback_mask([alignment.words[2]], n, 30.0)
    assert mask[int(1.8 * 30)] == 1.0 and mask[int(0.4 * 30)] == 0.0
    model = (np.full_like(offsets, 0.01), np.full_like(arkit, 0.5))
    blended_offsets, blended_arkit = blend_motion((offsets, arkit), model, mask)
    assert np.allclose(blended_arkit[int(1.8 * 30)], 0.5) and np.allclose(blended_arkit[10], arkit[10])


def test_alignments_made_elsewhere_are_scored_on_the_same_scale():
    from engine.script.align import rescore

    lp = _logprobs([("-", 5), ("S", 6), ("-", 2), ("IY", 8), ("-", 5), ("K", 4), ("-", 5)])
    ctc = ctc_align(lp, _words("seek:S IY K"), RATE)
    assert rescore(ctc, lp, RATE).words[0].score == pytest.approx(ctc.words[0].score, abs=0.05)
    late = AlignedWord("seek", 0.2, 0.35, tuple(AlignedPhone(p, 0.2 + 0.05 * i, 0.25 + 0.05 * i)
                                                for i, p in enumerate(("S", "IY", "K"))), 1.0, 0)  # fmt: skip
    assert rescore(Alignment((late,), "other", 0.35), lp, RATE).words[0].score < 0.25
