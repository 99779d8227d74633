"""Script mode in real Blender: a headless take with a script shows the script's words everywhere."""

from __future__ import annotations

import pytest
import soundfile as sf

pytestmark = pytest.mark.blender

LINE = "Peter bought a map. Bob met my mom by the pool."


@pytest.fixture
def scripted_wav(tmp_path):
    from engine.script.phonemize import espeak_available

    if not espeak_available():
        pytest.skip("eSpeak NG is not installed (it makes the test speech)")
    from engine.data.tts import Voice, synthesize

    speech = synthesize(LINE, Voice("espeak", "en-us", "en", variant="f3"))
    path = tmp_path / "line.wav"
    sf.write(path, speech.audio, 16000)
    return path


def test_headless_scripted_take_captions_spell_the_script(scene, scripted_wav, tmp_path, capsys):
    import bpy

    from blender_addon import headless, review, takes

    script = tmp_path / "script.txt"
    script.write_text(LINE, encoding="utf-8")
    vtt = tmp_path / "line.vtt"
    code = headless.main(
        ["animate", "--add-head", "--audio", str(scripted_wav), "--text-file", str(script), "--captions",
         "--vtt", str(vtt), "--device", "cpu"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    words = ["Peter", "bought", "a", "map", "Bob", "met", "my", "mom", "by", "the", "pool"]

    action = next(a for a in bpy.data.actions if a.name.startswith("DF_line"))
    meta = takes.take_metadata(action)
    assert " ".join(c["text"] for c in meta["captions"]).split() == words
    assert all(0.0 <= c["sync"] <= 1.0 for c in meta["captions"])

    markers = [m.name for m in bpy.context.scene.timeline_markers]
    assert " ".join(markers).split() == words  # caption markers carry the lines

    review_scene = review.review_scene_for(bpy.context.scene, create=False)
    strips = [s for s in review_scene.sequence_editor.strips_all if s.get(review.ROLE_KEY) == "caption"]
    shown = " ".join(s.text for s in sorted(strips, key=lambda s: s.frame_final_start))
    assert all(word in shown for word in words)  # the review render burns in the script's words

    text = vtt.read_text()
    assert "Peter <00:00:" in text and "words: Peter sync" in text  # word times and per-word scores
