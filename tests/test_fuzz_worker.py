"""Fuzz: the worker answers every request line exactly once, whatever the line holds, and keeps running."""

from __future__ import annotations

import io
import json

import pytest
import torch
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from engine.serve import Worker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from engine.api import Engine
    from engine.model.config import ModelConfig
    from engine.model.dualface import DualFace
    from engine.weights import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig(audio_dim=32, audio_layers=2, audio_heads=2, mesh_patches=8, patch_dim=16, mesh_heads=2,
                      d_model=32, decoder_heads=2, decoder_window=16, motion_window=8, ff_mult=2)  # fmt: skip
    path = save_checkpoint(DualFace(cfg), tmp_path_factory.mktemp("w") / "tiny.safetensors")
    return Engine(weights=str(path), device="cpu", threads=1)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(["animate", "ping", "cancel", "r1", "happy", "x.wav", "/nonexistent/a.wav", "out.npz"])
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
_PARAM_KEYS = ["audio", "fps", "emotion", "intensity", "style", "captions", "output", "caption_files", "language",
               "text", "progress", "schema_version", "target"]  # fmt: skip
REQUEST = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=4), st.integers(-5, 10**30), JSON),
        "method": st.sampled_from(["animate", "ping", "cancel", "nope"]) | JSON,
        "params": st.dictionaries(st.sampled_from(_PARAM_KEYS), JSON, max_size=5) | JSON,
    },
)
LINE = st.one_of(
    REQUEST.map(json.dumps),
    JSON.map(json.dumps),
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(1, 200_000)),
    st.builds(
        lambda n: '{"id": 1, "method": "ping", "params": {"n": ' + "9" * n + "}}", st.integers(1, 6000)
    ),
)


@fuzz(120)
@given(lines=st.lists(LINE, min_size=1, max_size=6))
def test_every_line_gets_exactly_one_answer(engine, lines):
    reader = io.StringIO("".join(line + "\n" for line in lines))
    writer = io.StringIO()
    assert Worker(engine, reader, writer).run() == 0
    answers = [json.loads(text) for text in writer.getvalue().splitlines()]
    final = [a for a in answers if a.get("type") in ("result", "error")]
    expected = sum(1 for line in lines if line.strip())
    assert len(final) == expected, (lines, answers)
    for answer in final:
        if answer["type"] == "error":
            assert answer["error"]["code"] != "internal_error", answer
