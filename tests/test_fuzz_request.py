"""Fuzz: any JSON value in a request or an emotion schedule becomes a valid request or a RequestError."""

from __future__ import annotations

import json
import math

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from engine.emotions import EMOTIONS
from engine.request import AnimateRequest, RequestError, emotion_from_text, parse_emotion

pytestmark = pytest.mark.timeout(120)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(list(EMOTIONS) + ["0:happy", "1:sad:0.5,0:angry", "x:y:z", ":", "", "0:happy:2"])
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_KEYFRAME = st.lists(JSON, min_size=0, max_size=4) | st.tuples(
    JSON | st.floats(0, 100), st.sampled_from(list(EMOTIONS)) | JSON, JSON | st.floats(0, 1)
).map(list)


def _valid_schedule(emotion) -> None:
    if isinstance(emotion, str):
        assert emotion in EMOTIONS
        return
    assert emotion, "an empty schedule must be refused"
    for time_s, name, strength in emotion:
        assert math.isfinite(time_s) and time_s >= 0 and name in EMOTIONS and 0 <= strength <= 1


@fuzz(300)
@given(emotion=JSON | st.lists(_KEYFRAME, max_size=4), intensity=JSON | st.floats(0, 1))
def test_any_emotion_value_is_a_schedule_or_a_request_error(emotion, intensity):
    try:
        request = AnimateRequest(audio="take.wav", emotion=emotion, intensity=intensity)
    except RequestError as error:
        assert str(error)
        return
    _valid_schedule(request.emotion)
    assert 0 <= request.intensity <= 1


@fuzz(150)
@given(
    data=st.dictionaries(
        st.sampled_from(
            [
                "audio",
                "fps",
                "emotion",
                "intensity",
                "style",
                "captions",
                "text",
                "language",
                "output",
                "caption_files",
                "schema_version",
                "srt",
                "bogus",
            ]
        ),
        JSON,
        max_size=6,
    )
)
def test_any_job_mapping_is_a_request_or_a_request_error(data):
    try:
        request = AnimateRequest.from_mapping(data)
    except RequestError as error:
        assert str(error)
        return
    again = AnimateRequest.from_mapping(request.to_mapping())
    assert again == request


@fuzz(100)
@given(payload=JSON | st.lists(_KEYFRAME, max_size=3))
def test_any_emotion_schedule_file_is_a_schedule_or_a_request_error(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("schedule") / "emotion.json"
    path.write_text(json.dumps(payload))
    try:
        emotion = emotion_from_text(str(path))
        request = AnimateRequest(audio="take.wav", emotion=emotion)
    except RequestError as error:
        assert str(error)
        return
    _valid_schedule(request.emotion)


@pytest.mark.parametrize("payload", [5, [[None, "happy", 1]], {"a": 1}, [], "happy", [[0, "happy", 1]]])
def test_issue_cases(tmp_path, payload):
    path = tmp_path / "e.json"
    path.write_text(json.dumps(payload))
    if payload in ("happy", [[0, "happy", 1]]):
        assert AnimateRequest(audio="a.wav", emotion=emotion_from_text(str(path))).emotion
        return
    with pytest.raises(RequestError):
        AnimateRequest(audio="a.wav", emotion=parse_emotion(json.loads(path.read_text())))
