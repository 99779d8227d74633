"""Captions: CTC decoding, word recovery, the lip/audio sync score and the SRT/WebVTT exports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from engine.animation import Animation, Caption, TimedPhone
from engine.captions import (
    build_captions,
    ctc_greedy_phones,
    split_segments,
    sync_score,
    to_json,
    to_srt,
    to_vtt,
    write_captions,
)
from engine.lexicon import Lexicon, edit_distance, english_lexicon, syllables
from engine.phonemes import PHONE_ID, VOCAB


def _logprobs(path: list[str], confident: float = 0.9) -> np.ndarray:
    """Frame-wise CTC log-probs whose best path is `path` ('-' = blank)."""
    lp = np.full((len(path), len(VOCAB)), (1 - confident) / (len(VOCAB) - 1))
    for t, symbol in enumerate(path):
        lp[t, 0 if symbol == "-" else PHONE_ID[symbol]] = confident
    return np.log(lp)


def test_ctc_greedy_collapses_repeats_drops_blanks_and_times_phones():
    path = ["-", "HH", "HH", "-", "AH", "L", "L", "-", "-", "OW", "-", "OW"]
    phones = ctc_greedy_phones(_logprobs(path), frame_rate=10.0, time_offset=1.0)
    assert [p.phone for p in phones] == ["HH", "AH", "L", "OW", "OW"]
    assert phones[0].start == pytest.approx(1.1)
    assert phones[1].start == pytest.approx(1.4)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(phones, phones[1:]))
    assert all(p.end > p.start for p in phones)
    assert all(p.confidence == pytest.approx(0.9) for p in phones)
    with pytest.raises(ValueError, match="log-probabilities"):
        ctc_greedy_phones(np.zeros((4, 3)), 30.0)
    assert ctc_greedy_phones(np.zeros((0, len(VOCAB))), 30.0) == []


def _timed(symbols: str, start: float = 0.0, step: float = 0.1, conf: float = 0.8) -> list[TimedPhone]:
    return [
        TimedPhone(p, start + i * step, start + (i + 1) * step, conf) for i, p in enumerate(symbols.split())
    ]


def test_segments_split_at_silence_and_pauses():
    phones = _timed("HH AH L OW sil W ER L D") + _timed("AH G EH N", start=2.0)
    segments = split_segments(phones)
    assert [[p.phone for p in s] for s in segments] == [
        ["HH", "AH", "L", "OW"],
        ["W", "ER", "L", "D"],
        ["AH", "G", "EH", "N"],
    ]


def test_sync_score_content_timing_and_visemes():
    lips = _timed("HH AH L OW W ER L D")
    assert sync_score(lips, lips) == pytest.approx(1.0)
    # /p/ and /b/ look the same on the lips: reading one for the other is perfect sync
    assert sync_score(_timed("P AE T"), _timed("B AE T")) == pytest.approx(1.0)
    shifted = [TimedPhone(p.phone, p.start + 0.5, p.end + 0.5) for p in lips]
    assert sync_score(lips, shifted) == pytest.approx(0.0)
    slightly = [TimedPhone(p.phone, p.start + 0.15, p.end + 0.15) for p in lips]
    assert 0.0 < sync_score(lips, slightly) < 1.0
    wrong = _timed("M IY F UW S AA CH IY")
    assert sync_score(lips, wrong) < 0.5
    assert sync_score([], []) == 1.0 and sync_score(lips, []) == 0.0


def test_lexicon_recovers_words_with_a_lip_reading_error():
    lexicon = english_lexicon()
    assert 3000 < len(lexicon) < 20000
    words = [p.word for p in lexicon.segment("HH AH L OW W ER L D".split())]
    assert words == ["hello", "world"]
    # one substituted phone (D -> T) still finds the word
    pieces = lexicon.segment("HH AH L OW W ER L T".split())
    assert [getattr(p, "word", p) for p in pieces] == ["hello", "world"]
    assert pieces[1].distance == 1
    # gibberish stays phones, grouped into syllables by the caller
    assert syllables(["S", "T", "R", "AH", "NG", "K", "OW"]) == [["S", "T", "R", "AH"], ["NG", "K", "OW"]]
    assert edit_distance("K AE T".split(), "K AA T S".split()) == 2


def test_small_lexicon_object():
    lexicon = Lexicon([("cat", ("K", "AE", "T")), ("at", ("AE", "T"))])
    assert lexicon.nearest(["K", "AE", "T"]) == ("cat", 0)
    assert lexicon.nearest(["K", "AA", "T"]) == ("cat", 1)
    assert lexicon.nearest(["Z", "Z", "Z", "Z", "Z"]) is None


def test_build_captions_words_scores_and_unanimated_speech():
    lips = _timed("HH AH L OW W ER L D") + _timed("sil", start=0.8) + _timed("IH T S M IY", start=1.5)
    audio = _timed("HH AH L OW W ER L D") + _timed("IH T S M IY", start=1.5)
    audio += _timed("G UH D B AY", start=4.0)  # spoken, never shown on the lips
    captions = build_captions(lips, audio)
    assert captions[0].text == "hello world"
    assert captions[1].text in ("it's me", "its me")
    assert captions[0].sync == pytest.approx(1.0)
    assert captions[0].confidence == pytest.approx(0.8)
    assert captions[-1].text == "[no lip movement]" and captions[-1].sync == 0.0
    assert all(a.start <= b.start for a, b in zip(captions, captions[1:]))
    other_language = build_captions(lips, audio, language="de")
    assert other_language[0].text.startswith("[")  # no lexicon: syllables


SRT_CUE = re.compile(
    r"^(\d+)\n(\d\d):(\d\d):(\d\d)[,.](\d{3}) --> (\d\d):(\d\d):(\d\d)[,.](\d{3})\n((?:.+\n?)+)$"
)


def _parse_cues(text: str) -> list[tuple[int, float, float, str]]:
    cues = []
    for block in text.strip().split("\n\n"):
        match = SRT_CUE.match(block.strip())
        assert match, f"malformed cue: {block!r}"
        g = match.groups()
        start = int(g[1]) * 3600 + int(g[2]) * 60 + int(g[3]) + int(g[4]) / 1000
        end = int(g[5]) * 3600 + int(g[6]) * 60 + int(g[7]) + int(g[8]) / 1000
        cues.append((int(g[0]), start, end, g[9].strip()))
    return cues


def _captions() -> list[Caption]:
    return [
        Caption(0.0, 1.25, "hello world", 0.9, 0.95),
        Caption(61.5, 63.004, "it's --> me", 0.5, 0.25),
        Caption(3725.0, 3726.5, "[b-a]", 0.2, 0.0),
    ]


def test_srt_and_vtt_parse_back():
    captions = _captions()
    srt = to_srt(captions)
    cues = _parse_cues(srt)
    assert [c[0] for c in cues] == [1, 2, 3]
    for cue, caption in zip(cues, captions):
        assert cue[1] == pytest.approx(caption.start, abs=1e-3)
        assert cue[2] == pytest.approx(caption.end, abs=1e-3)
        assert cue[3].splitlines()[0] == caption.text
        assert f"sync {caption.sync:.2f}" in cue[3]
    vtt = to_vtt(captions)
    assert vtt.startswith("WEBVTT\n\n")
    vtt_cues = _parse_cues(vtt[len("WEBVTT\n") :])
    assert [c[1] for c in vtt_cues] == [c[1] for c in cues]
    assert "-->" not in vtt_cues[1][3]  # a cue text must never contain the timing arrow
    assert ",000 -->" in srt and ".000 -->" in vtt


def test_write_captions_by_extension_and_rejects_unknown(tmp_path):
    animation = Animation(
        fps=30.0, offsets=np.zeros((3, 2, 3)), arkit=np.zeros((3, 52)), captions=_captions()
    )
    write_captions(animation, tmp_path / "a.srt")
    write_captions(animation, tmp_path / "a.vtt")
    write_captions(animation, tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text())
    assert [c["text"] for c in data["captions"]] == [c.text for c in _captions()]
    assert json.loads(to_json(animation))["fps"] == 30.0
    with pytest.raises(ValueError, match=".srt, .vtt or .json"):
        write_captions(animation, tmp_path / "a.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.srt", "a.vtt"]
