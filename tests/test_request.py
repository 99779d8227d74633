"""The one request contract: validation messages, the JSON form and its versions, the schema file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.animation import Animation, Caption
from engine.data.style import SpeakerStyle
from engine.request import (
    SCHEMA_VERSION,
    SUPPORTED_FPS,
    WEIGHTS_ENV,
    AnimateRequest,
    AudioFileError,
    RequestError,
    UnsupportedVersion,
    as_request,
    default_weights_path,
    json_schema,
    style_from_text,
    write_outputs,
)

ROOT = Path(__file__).resolve().parent.parent


def _wav(folder: Path) -> Path:
    path = folder / "line.wav"
    path.write_bytes(b"RIFF" + bytes(100))
    return path


def test_json_form_round_trips_and_spells_every_value_one_way(tmp_path):
    request = AnimateRequest(
        Path(tmp_path / "a.wav"),
        fps=25,
        emotion="0:Neutral, 1.5:happy:0.5",
        intensity=0.8,
        style={"jaw_ratio": 0.6},
        language="DE",
        text="Hallo Welt",
        output=str(tmp_path / "a.npz"),
        caption_files=[str(tmp_path / "a.srt")],
    )
    assert request.audio == str(tmp_path / "a.wav") and request.language == "de"
    assert request.emotion == ((0.0, "neutral", 1.0), (1.5, "happy", 0.5))
    data = json.loads(json.dumps(request.to_mapping()))
    assert data["schema_version"] == SCHEMA_VERSION and "sample_rate" not in data
    assert AnimateRequest.from_mapping(data) == request
    assert request.schedule() == [(0.0, "neutral", 0.8), (1.5, "happy", 0.4)]
    assert AnimateRequest("a.wav").frame_rate == 30.0 and request.frame_rate == 25.0


def test_bad_values_are_refused_with_the_field_and_the_fix():
    cases = [
        (dict(fps=29), ", ".join(map(str, SUPPORTED_FPS))),
        (dict(fps="fast"), "fps must be a number"),
        (dict(emotion="bored"), "unknown emotion 'bored'"),
        (dict(emotion="0:happy,x:sad"), "must be numbers"),
        (dict(emotion=[(1, "happy", 1), (0, "sad", 1)]), "ascending"),
        (dict(intensity=1.5), "between 0 and 1"),
        (dict(intensity=True), "intensity must be a number"),
        (dict(style={"jaw": 1}), "unknown style setting"),
        (dict(style={"articulation": 5.0}), r"articulation=5.0 is outside"),
        (dict(style=[1.0, 0.5]), "style vector has 5 values"),
        (dict(language="klingon"), "use one of en"),
        (dict(captions="yes"), "captions must be true or false"),
        (dict(output="take.txt"), "must end in .npz"),
        (dict(caption_files=["take.doc"]), ".srt, .vtt or .json"),
        (dict(text=3), "text must be a string"),
    ]
    for fields, message in cases:
        with pytest.raises(RequestError, match=message):
            AnimateRequest("a.wav", **fields)
    with pytest.raises(AudioFileError, match="no audio file"):
        AnimateRequest(" ")
    with pytest.raises(RequestError, match="unknown request field.*'emotoin'.*known: audio"):
        AnimateRequest.from_mapping({"audio": "a.wav", "emotoin": "sad"})
    with pytest.raises(RequestError, match="'audio'"):
        AnimateRequest.from_mapping({"fps": 30})
    with pytest.raises(RequestError, match="fields are those of engine.request.AnimateRequest"):
        as_request("a.wav", loudness=3)


def test_style_accepts_the_forms_every_caller_uses():
    assert AnimateRequest("a.wav", style=SpeakerStyle(jaw_ratio=0.7)).style["jaw_ratio"] == 0.7
    vector = SpeakerStyle(articulation=1.3).as_vector()
    assert AnimateRequest("a.wav", style=vector).style["articulation"] == pytest.approx(1.3)
    assert (
        style_from_text('{"articulation": 1.2}')
        == style_from_text("articulation=1.2")
        == {"articulation": 1.2}
    )
    assert np.allclose(AnimateRequest("a.wav").style_vector(), SpeakerStyle().as_vector())
    with pytest.raises(RequestError, match="must look like name=number"):
        style_from_text("articulation:1.2")


def test_versions_old_requests_are_upgraded_and_newer_ones_refused():
    old_worker = {"audio": "a.wav", "captions": ["a.srt", "a.vtt"]}  # before the contract
    assert AnimateRequest.from_mapping(old_worker).caption_files == ("a.srt", "a.vtt")
    assert AnimateRequest.from_mapping(old_worker).captions is True
    old_cli_job = {"audio": "a.wav", "srt": "a.srt", "captions_json": "a.json"}
    assert AnimateRequest.from_mapping(old_cli_job).caption_files == ("a.srt", "a.json")
    with pytest.raises(RequestError, match="captions must be true or false"):  # not in version 2
        AnimateRequest.from_mapping({**old_worker, "schema_version": SCHEMA_VERSION})
    with pytest.raises(UnsupportedVersion, match=f"schema version {SCHEMA_VERSION + 1}.*update DualFace"):
        AnimateRequest.from_mapping({"schema_version": SCHEMA_VERSION + 1, "audio": "a.wav"})
    with pytest.raises(RequestError, match="whole number"):
        AnimateRequest.from_mapping({"schema_version": "2", "audio": "a.wav"})


def test_relative_paths_of_a_batch_file_are_relative_to_it(tmp_path):
    request = AnimateRequest.from_mapping(
        {"audio": "in/a.wav", "output": "/abs/a.npz", "caption_files": ["a.vtt"]}, base_dir=tmp_path
    )
    assert request.audio == str(tmp_path / "in" / "a.wav") and request.output == "/abs/a.npz"
    assert request.caption_files == (str(tmp_path / "a.vtt"),)
    defaults = {"fps": 60, "emotion": "sad"}
    assert AnimateRequest.from_mapping({"audio": "a.wav", "emotion": "calm"}, defaults).emotion == "calm"
    assert AnimateRequest.from_mapping({"audio": "a.wav"}, defaults).fps == 60


def test_file_checks_before_any_work(tmp_path):
    wav = _wav(tmp_path)
    AnimateRequest(str(wav), output=str(tmp_path / "a.npz")).check_files()
    (tmp_path / "empty.wav").write_bytes(b"")
    for audio, message in [
        (tmp_path / "missing.wav", "audio file not found"),
        (tmp_path / "empty.wav", "empty"),
        (tmp_path / "notes.txt", "unsupported audio type"),
    ]:
        with pytest.raises(AudioFileError, match=message):
            AnimateRequest(str(audio)).check_files()
    with pytest.raises(RequestError, match="does not exist"):
        AnimateRequest(str(wav), output=str(tmp_path / "no" / "a.npz")).check_files()
    with pytest.raises(RequestError, match="same file twice"):
        AnimateRequest(str(wav), caption_files=[str(tmp_path / "a.srt")] * 2).check_files()
    assert AnimateRequest(np.zeros(100), sample_rate=16000).check_audio_file() is None


def test_outputs_are_written_all_or_none(tmp_path):
    take = Animation(
        fps=30.0,
        offsets=np.zeros((4, 468, 3), dtype=np.float32),
        arkit=np.zeros((4, 52), dtype=np.float32),
        captions=[Caption(0.0, 0.1, "hi", 0.9, 0.9)],
    )
    out = tmp_path / "out"
    out.mkdir()
    request = AnimateRequest(
        "a.wav", output=str(out / "a.npz"), caption_files=[str(out / "a.srt"), str(out / "a.json")]
    )
    written = write_outputs(take, request)
    assert written == [out / "a.npz", out / "a.srt", out / "a.json"]
    assert Animation.load(out / "a.npz").n_frames == 4 and "hi" in (out / "a.srt").read_text()
    broken = AnimateRequest(
        "a.wav", output=str(tmp_path / "gone" / "b.npz"), caption_files=[str(out / "b.srt")]
    )
    with pytest.raises(ValueError, match="does not exist"):
        write_outputs(take, broken)  # the take cannot be written: no caption file either
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.npz", "a.srt"]


def test_weights_path_lookup(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert default_weights_path() == ROOT / "weights" / "dualface.safetensors"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "w.safetensors"))
    assert default_weights_path() == tmp_path / "w.safetensors"


def test_committed_schema_matches_the_dataclass():
    committed = json.loads((ROOT / "docs" / "request.schema.json").read_text())
    assert committed == json_schema(), (
        "regenerate: python -m engine.request --schema > docs/request.schema.json"
    )
    fields = set(AnimateRequest("a.wav").to_mapping())
    assert set(committed["properties"]) == fields


def test_the_contract_imports_neither_torch_nor_numpy():
    code = "import sys, engine.request, engine.serve; print('torch' in sys.modules, 'numpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.stdout.split() == ["False", "False"], result.stderr
