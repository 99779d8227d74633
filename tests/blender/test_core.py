"""The add-on's bpy-free logic: naming, ARKit matching, time bases, the vertex basis, requests."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core import naming, timing
from blender_addon.core.captions_style import GOOD_SYNC, LOW_SYNC, sync_colour
from blender_addon.core.request import TakeRequest, parse_resolution
from blender_addon.core.vertex_basis import compact_basis
from engine.animation import Animation
from engine.arkit import ARKIT_NAMES, matching
from engine.request import AnimateRequest, RequestError


def test_take_names_count_up_per_clip_and_stay_blender_safe():
    assert naming.clip_label("/x/My Take (2).wav") == "My_Take_2"
    assert naming.clip_label("/x/???.wav") == "clip"
    existing = ["DF_hello_001", "DF_hello_007", "DF_other_003", "hello_009"]
    assert naming.take_name("hello", existing) == "DF_hello_008"
    assert naming.take_name("new", existing) == "DF_new_001"
    long_take = naming.take_name("x" * 40, [])
    assert len(naming.basis_key_name(long_take + "y" * 30, 3)) <= naming.MAX_ID_NAME
    assert naming.is_basis_key_name(naming.basis_key_name("DF_hello_002", 7))
    assert not naming.is_basis_key_name("DF_my_sculpt") and not naming.is_basis_key_name("jawOpen")


def test_arkit_keys_match_case_and_separator_insensitively():
    names = [
        "Basis",
        "JawOpen",
        "mouth_close",
        "ARKit.eyeBlinkLeft",
        "eyeblinkright",
        "MOUTHFUNNEL",
        "smile_custom",
    ]
    matched = {ARKIT_NAMES[i]: key for i, key in matching.match_arkit_keys(names).items()}
    assert matched == {
        "jawOpen": "JawOpen",
        "mouthClose": "mouth_close",
        "eyeBlinkLeft": "ARKit.eyeBlinkLeft",
        "eyeBlinkRight": "eyeblinkright",  # no word boundaries: the case-insensitive fallback
        "mouthFunnel": "MOUTHFUNNEL",
    }


def test_arkit_matching_uses_vendor_names_and_the_users_table():
    names = ["EyeBlink_L", "Jaw_Open", "my_jaw", "mouthClose"]
    matched = {ARKIT_NAMES[i]: key for i, key in matching.match_arkit_keys(names).items()}
    assert matched == {"eyeBlinkLeft": "EyeBlink_L", "jawOpen": "Jaw_Open", "mouthClose": "mouthClose"}
    overrides = {"jawOpen": "my_jaw", "mouthClose": ""}  # '' = "this rig has no such key"
    matched = {ARKIT_NAMES[i]: key for i, key in matching.match_arkit_keys(names, overrides).items()}
    assert matched == {"eyeBlinkLeft": "EyeBlink_L", "jawOpen": "my_jaw"}


def test_auto_mode_needs_the_jaw_and_a_quarter_of_the_shapes():
    full = {i: n for i, n in enumerate(ARKIT_NAMES)}
    assert matching.resolve_output_mode("AUTO", full) == matching.ARKIT
    no_jaw = {i: n for i, n in full.items() if n != "jawOpen"}
    assert matching.resolve_output_mode("auto", no_jaw) == matching.VERTEX
    few = {i: n for i, n in list(full.items())[10:22]}  # includes jawOpen, only 12 names
    assert matching.resolve_output_mode("AUTO", few) == matching.VERTEX
    assert matching.resolve_output_mode("ARKIT", few) == matching.ARKIT
    with pytest.raises(ValueError, match="no(ne)?"):
        matching.resolve_output_mode("ARKIT", {})


@pytest.mark.parametrize(
    ("scene", "engine"), [(24, 24), (23.976, 24), (29.97, 30), (25, 25), (120, 60), (48, 50)]
)
def test_engine_rate_is_the_nearest_supported(scene, engine):
    assert timing.engine_rate_for(scene) == engine


def test_resampling_keeps_duration_and_interpolates_linearly():
    t = np.arange(30) / 30.0
    arkit = np.repeat(t[:, None], 52, axis=1).astype(np.float32)  # a ramp: value == time
    offsets = np.repeat(t[:, None, None], 3, axis=2).repeat(4, axis=1).astype(np.float32)
    source = Animation(fps=30.0, offsets=offsets, arkit=arkit)
    resampled = timing.resample_animation(source, 24.0)
    assert resampled.fps == 24.0
    assert resampled.n_frames == 24
    expected = np.arange(24) / 24.0
    assert np.allclose(resampled.arkit[:, 5], expected, atol=1e-6)
    assert np.allclose(resampled.offsets[:, 2, 1], expected, atol=1e-6)
    assert timing.resample_animation(source, 30.0) is source


def test_emotion_schedule_reduces_to_the_keys_that_matter():
    emotions = ["happy"] * 30 + ["sad"] * 30
    intensities = list(np.linspace(0.0, 1.0, 30)) + [0.5] * 30
    keys = timing.reduce_schedule(emotions, intensities, fps=30.0)
    # A linear ramp needs its two ends; the switch is as sharp as the frame grid; a constant needs its ends.
    assert [(round(t * 30), e, round(v, 6)) for t, e, v in keys] == [
        (0, "happy", 0.0), (29, "happy", 1.0), (30, "sad", 0.5), (59, "sad", 0.5)
    ]  # fmt: skip


def test_emotion_schedule_keeps_every_key_a_wiggle_needs():
    values = [0.2, 0.2, 0.9, 0.2, 0.2, 0.2]
    keys = timing.reduce_schedule(["calm"] * 6, values, fps=10.0)
    times = np.arange(6) / 10.0
    rebuilt = np.interp(times, [t for t, _, _ in keys], [v for _, _, v in keys])
    assert np.allclose(rebuilt, values, atol=1e-3)
    assert len(keys) == 5  # frames 0..3 and the end: the flat tail needs no key in between


@pytest.mark.parametrize("frames", [600, 2400])  # every frame, and components from sampled frames
def test_vertex_basis_reproduces_low_rank_motion_with_few_keys(frames):
    rng = np.random.default_rng(1)
    weights = np.sin(np.linspace(0, 20, frames)[:, None] * rng.uniform(0.5, 3, 6)[None]).astype(np.float32)
    shapes = rng.standard_normal((6, 2000 * 3)).astype(np.float32) * 0.01
    offsets = (weights @ shapes).reshape(frames, 2000, 3)
    basis = compact_basis(offsets)
    assert basis.n_keys <= 8
    assert basis.explained > 0.9999
    assert np.abs(basis.reconstruct() - offsets).max() < 0.01 * np.abs(offsets).max()
    assert np.abs(basis.weights).max() == pytest.approx(1.0)


def test_vertex_basis_of_a_silent_take_is_one_empty_key():
    basis = compact_basis(np.zeros((10, 5, 3), np.float32))
    assert basis.n_keys == 1 and not basis.basis.any() and not basis.weights.any()


def test_sync_colour_goes_red_to_green():
    red, green = sync_colour(0.0), sync_colour(1.0)
    assert red[0] > red[1] and green[1] > green[0]
    assert sync_colour(LOW_SYNC) == red and sync_colour(GOOD_SYNC) == green
    middle = sync_colour((LOW_SYNC + GOOD_SYNC) / 2)
    assert middle[0] > 0.8 and middle[1] > 0.8  # yellow


def test_request_validation_names_the_fix(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF....")
    ok = TakeRequest(AnimateRequest(str(audio), emotion="Happy"), object_name="Head", mode="arkit").validate()
    assert ok.take.emotion == "happy" and ok.mode == "ARKIT"
    engine_cases = [  # what the engine is asked: refused when the request is built
        (dict(emotion="grumpy"), "choose one of"),
        (dict(intensity=1.5), "between 0 and 1"),
        (dict(style={"jaw_ratio": 3}), r"jaw_ratio=3.0 is outside \[0.0, 1.0\]"),
        (dict(style={"beard": 1}), "unknown style"),
        (dict(fps=29), "24, 25, 30, 50, 60"),
    ]
    for kwargs, message in engine_cases:
        with pytest.raises(RequestError, match=message):
            AnimateRequest(str(audio), **kwargs)
    with pytest.raises(RequestError, match="no audio file"):
        AnimateRequest("")
    take = AnimateRequest(str(audio))
    cases = [  # files and the Blender side: refused by validate(), before any work
        (dict(take=AnimateRequest(str(tmp_path / "missing.wav")), object_name="H"), "not found"),
        (dict(take=AnimateRequest(str(tmp_path / "a.txt")), object_name="H"), "unsupported audio type"),
        (dict(take=take, object_name="H", render=str(tmp_path / "x.avi")), "must end in .mp4"),
        (dict(take=take, object_name="H", render=str(tmp_path / "no" / "x.mp4")), "does not exist"),
        (dict(take=take, object_name="H", render=str(tmp_path / "x.mp4"), resolution=(161, 120)), "even"),
        (dict(take=take, object_name="H", save=str(tmp_path / "x.txt")), ".blend"),
        (dict(take=take, object_name="H", weights=str(tmp_path / "w.safetensors")), "weights file not found"),
        (dict(take=take, object_name="H", mode="mesh"), "auto, arkit or vertex"),
        (dict(take=take), "--object"),
    ]
    for kwargs, message in cases:
        with pytest.raises(RequestError, match=message):
            TakeRequest(**kwargs).validate()


def test_batch_entries_use_option_names_and_the_engine_fields(tmp_path):
    request = TakeRequest.from_mapping(
        {"audio": "a.wav", "object": "Head", "start-frame": 5, "resolution": "320x240",
         "emotion": [[0, "calm", 1], [2, "sad", 0.5]], "fps": 25, "srt": "a.srt", "captions": True},
        base_dir=tmp_path,
    )  # fmt: skip
    assert request.object_name == "Head" and request.start_frame == 5 and request.resolution == (320, 240)
    assert request.take.emotion == ((0.0, "calm", 1.0), (2.0, "sad", 0.5)) and request.take.fps == 25
    assert request.take.audio == str(tmp_path / "a.wav") and request.captions
    assert request.take.caption_files == (str(tmp_path / "a.srt"),)  # a version-1 key, upgraded
    with pytest.raises(RequestError, match="unknown key 'colour'"):
        TakeRequest.from_mapping({"audio": "a.wav", "colour": 1})
    with pytest.raises(RequestError, match="'audio'"):
        TakeRequest.from_mapping({"object": "Head"})
    with pytest.raises(RequestError, match="job 3: .*schema version 99"):
        TakeRequest.from_mapping({"schema_version": 99, "audio": "a.wav"}, "job 3")
    with pytest.raises(RequestError, match="640x480"):
        parse_resolution("big")
