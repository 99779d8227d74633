"""Fuzz: any batch job (Blender's headless batch, the engine CLI's batch file) is a take or a RequestError."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from blender_addon.core.request import TakeRequest
from engine.request import RequestError

pytestmark = pytest.mark.timeout(120)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | st.sampled_from(
        ["abc", "640x480", "13x7", "x", "happy", "0:happy,1:sad", "out.blend", "out.mp4", "a.wav"]
    )
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_HEADLESS_KEYS = ["audio", "object", "object_name", "start_frame", "start-frame", "mode", "captions", "render",
                  "resolution", "render_engine", "engine", "save", "weights", "add_head", "emotion", "intensity",
                  "style", "fps", "language", "text", "output", "caption_files", "schema_version", "bogus"]  # fmt: skip


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("jobs") / "line.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    return path


@fuzz(300)
@given(job=st.dictionaries(st.sampled_from(_HEADLESS_KEYS), JSON, max_size=7), with_audio=st.booleans())
def test_any_headless_batch_job_is_a_take_or_a_request_error(wav, job, with_audio):
    if with_audio:
        job = {**job, "audio": str(wav)}
    try:
        TakeRequest.from_mapping(job, "job 1", wav.parent).validate()
    except RequestError as error:
        assert str(error)


@fuzz(150)
@given(jobs=JSON | st.lists(st.dictionaries(st.sampled_from(_HEADLESS_KEYS), JSON, max_size=5), max_size=3))
def test_any_engine_batch_file_is_jobs_or_a_request_error(tmp_path_factory, wav, jobs):
    from engine.cli import build_parser, build_requests

    folder = tmp_path_factory.mktemp("batch")
    batch = folder / "jobs.json"
    batch.write_text(json.dumps(jobs))
    args = build_parser().parse_args(["animate", "--batch", str(batch)])
    try:
        build_requests(args)
    except RequestError as error:
        assert str(error)
