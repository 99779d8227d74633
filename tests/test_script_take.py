"""Script mode end to end: `Engine.animate(..., text=...)`, the CLI, and the wrong-script check.

Speech comes from a voice the model never heard in training (eSpeak NG variant f3), so the phone
times are known exactly and the model's audio head is the one a user's take would meet.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine.animation import Animation
from engine.script.phonemize import espeak_available

pytestmark = pytest.mark.skipif(not espeak_available(), reason="eSpeak NG is not installed")

LINE = "Peter bought a map. Bob met my mom by the pool."
OTHER_LINE = "Xavier and the young doctor watched a silly green kite."


@pytest.fixture(scope="module")
def engine():
    from engine.api import Engine

    return Engine(device="cpu", threads=1)


@pytest.fixture(scope="module")
def speech():
    from engine.data.tts import Voice, synthesize

    return synthesize(LINE, Voice("espeak", "en-us", "en", variant="f3"))


@pytest.fixture(scope="module")
def scripted(engine, speech):
    return engine.animate(speech.audio, sample_rate=16000, text=LINE, emotion="happy", intensity=0.5)


def test_captions_spell_the_script_with_aligned_times_and_scores(scripted, speech):
    words = [w for c in scripted.captions for w in c.words]
    assert [w.text for w in words] == [
        "Peter",
        "bought",
        "a",
        "map",
        "Bob",
        "met",
        "my",
        "mom",
        "by",
        "the",
        "pool",
    ]
    assert " ".join(c.text for c in scripted.captions) == " ".join(w.text for w in words)
    assert all(0 <= w.sync <= 1 and 0 <= w.confidence <= 1 for w in words)
    reference = {w: (a, b) for w, a, b in speech.words}
    assert (
        abs(words[3].start - reference["map"][0]) < 0.06 and abs(words[4].start - reference["Bob"][0]) < 0.06
    )
    record = scripted.meta["script"]
    assert record["language"] == "en" and record["aligner"] == "ctc" and record["fits"]
    assert [w["text"] for w in record["words"]] == [w.text for w in words]


def test_the_scripted_mouth_closes_on_every_bilabial_in_vertices_and_arkit(scripted, speech):
    from engine.arkit.basis import inner_lip_gap
    from engine.data.motion import arkit_to_vertices
    from engine.face.template import load_template
    from engine.script.evaluate_motion import closure_and_rest

    for vertices in (scripted.offsets + load_template().vertices[None], arkit_to_vertices(scripted.arkit)):
        (closed, bilabials), _ = closure_and_rest(inner_lip_gap(vertices), speech.phones, scripted.fps)
        assert bilabials == 12 and closed == bilabials


def test_word_times_travel_in_every_caption_format_and_the_take_file(scripted, tmp_path):
    from engine.captions import to_json, to_srt, to_vtt

    vtt, srt = to_vtt(scripted.captions), to_srt(scripted.captions)
    second = scripted.captions[0].words[1]
    assert f"<{_vtt_time(second.start)}>{second.text}" in vtt and "words: Peter" in srt
    data = json.loads(to_json(scripted))
    assert data["captions"][0]["words"][0]["text"] == "Peter" and data["script"]["words"]
    loaded = Animation.load(scripted.save(tmp_path / "take.npz"))
    assert loaded.captions == scripted.captions and loaded.meta["script"] == scripted.meta["script"]


def _vtt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    return f"00:00:{millis // 1000:02d}.{millis % 1000:03d}"


def test_a_different_sentence_is_reported_and_the_take_falls_back_to_audio_only(engine, speech):
    wrong = engine.animate(speech.audio, sample_rate=16000, text=OTHER_LINE)
    audio_only = engine.animate(speech.audio, sample_rate=16000, text="")
    assert not wrong.meta["script"]["fits"]
    assert any("does not match this audio" in note for note in wrong.meta["notes"])
    assert np.allclose(wrong.offsets, audio_only.offsets, atol=1e-5)  # never a silent misalignment
    assert "script" not in audio_only.meta and all(not c.words for c in audio_only.captions)


def test_a_script_beside_the_audio_is_used_and_the_cli_reads_text_files(tmp_path, speech, capsys):
    from engine.cli import main

    audio = tmp_path / "line.wav"
    sf.write(audio, speech.audio, 16000)
    (tmp_path / "line.txt").write_text(LINE, encoding="utf-8")
    assert (
        main(["animate", str(audio), "--captions", "vtt", "--timing", "json,tsv", "-q", "--threads", "1"])
        == 0
    )
    assert "using line.txt found beside the audio" in capsys.readouterr().out
    assert "Peter <" in (tmp_path / "line.vtt").read_text()
    timing = json.loads((tmp_path / "line.timing.json").read_text())
    assert timing["words"][0]["text"] == "Peter" and (tmp_path / "line.tsv").read_text().startswith("0.")
    (tmp_path / "other.txt").write_text(OTHER_LINE, encoding="utf-8")
    out = tmp_path / "explicit.npz"
    assert (
        main(["animate", str(audio), "-o", str(out), "--text-file", str(tmp_path / "other.txt"), "-q"]) == 0
    )
    assert "does not match this audio" in capsys.readouterr().out
    assert main(["animate", str(audio), "--text", "hi", "--timing", "xml"]) == 2


def test_worker_requests_carry_the_script(tmp_path, speech):
    import sys

    from engine.serve import WorkerClient

    audio = tmp_path / "take.wav"
    sf.write(audio, speech.audio, 16000)
    with WorkerClient(sys.executable, device="cpu", threads=1) as worker:
        result = worker.animate(str(audio), timeout=300, text=LINE, language="auto", progress=False)
    words = [w["text"] for c in result["captions"] for w in c["words"]]
    assert words[:4] == ["Peter", "bought", "a", "map"] and len(words) == 11
