"""Blinks, gaze and head motion: the optional layers on top of the lips."""

from __future__ import annotations

import numpy as np
import pytest

from engine.animation import TimedPhone
from engine.arkit import ARKIT_INDEX
from engine.arkit.basis import apply_arkit
from engine.face import landmarks as lm
from engine.face.template import load_template
from engine.layers import BLINK_CHANNELS, GAZE_CHANNELS, compute_layers, parse_layers
from engine.layers.blinks import blink_times, closure_curve
from engine.layers.gaze import gaze, look_channels
from engine.layers.head_motion import head_motion
from engine.layers.prosody import Prosody, measure
from engine.layers.tongue import coronal_curve, tip_weights

SR = 16000
MM = 1e-3


def speech(seconds: float = 6.0, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]], list[float]]:
    """Voiced syllables (a harmonic voice gliding in pitch) in phrases separated by pauses.

    Returns the audio, the phrases (start, end) and the times of the accented syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    audio = 0.001 * rng.standard_normal(t.size)
    phrases, accents, start = [], [], 0.3
    while start < seconds - 1.0:
        end = min(start + rng.uniform(1.2, 2.0), seconds - 0.3)
        syllable = last = start
        while syllable + 0.2 < end:
            accented = rng.random() < 0.3
            f0 = 200.0 if accented else 120.0
            inside = (t >= syllable) & (t < syllable + 0.18)
            envelope = np.sin(np.pi * (t[inside] - syllable) / 0.18)
            voice = sum(np.sin(2 * np.pi * f0 * k * t[inside]) / k for k in range(1, 6))
            audio[inside] += (0.5 if accented else 0.2) * envelope * voice
            if accented:
                accents.append(syllable + 0.09)
            last = syllable + 0.18
            syllable += 0.25
        phrases.append((start, last))
        start = end + rng.uniform(0.5, 0.9)
    return audio.astype(np.float32), phrases, accents


def flat_prosody(seconds: float, fps: float = 30.0, pauses=(), speaking: bool = True) -> Prosody:
    n = int(seconds * fps)
    return Prosody(
        fps=fps,
        energy=np.full(n, 0.6 if speaking else 0.0, np.float32),
        speaking=np.full(n, speaking),
        f0=np.zeros(n, np.float32),
        pause_starts=np.asarray(pauses, dtype=np.float64),
        accents=np.zeros(0),
        accent_strength=np.zeros(0),
    )


def test_prosody_finds_the_pauses_and_the_accents():
    audio, phrases, accents = speech()
    p = measure(audio, SR, 30.0, int(6.0 * 30))
    ends = [end for _, end in phrases[:-1]]
    assert len(p.pause_starts) >= len(ends)
    for end in ends:
        assert np.min(np.abs(p.pause_starts - end)) < 0.15
    found = [a for a in accents if np.min(np.abs(p.accents - a), initial=9) < 0.12]
    assert len(found) >= 0.6 * len(accents)
    voiced = p.f0[p.f0 > 0]
    assert 100 < np.median(voiced) < 220


def test_blink_rate_and_durations_follow_the_literature():
    rng = np.random.default_rng(0)
    starts, durations = blink_times(flat_prosody(600.0), "neutral", 0.0, rng)
    rate = len(starts) / 10.0
    assert 16 <= rate <= 27  # blinks per minute in conversation
    assert np.diff(starts).min() >= 0.6 - 1e-9
    assert 0.12 <= durations.min() and durations.max() <= 0.4 and 0.16 < np.median(durations) < 0.25
    gaps = np.diff(starts)
    assert np.mean(gaps) > np.median(gaps)  # right-skewed intervals


def test_every_blink_closes_the_lids_for_at_least_one_frame():
    starts, durations = np.array([0.5, 1.5, 2.51]), np.array([0.12, 0.2, 0.33])
    curve = closure_curve(starts, durations, 24.0, 96)
    for s, d in zip(starts, durations):
        frames = np.arange(96) / 24.0
        inside = (frames >= s) & (frames <= s + d)
        assert curve[inside].max() == 1.0
    assert curve[:10].max() == 0.0 and curve.min() == 0.0


def test_blinks_gather_at_pauses():
    pauses = np.arange(2.0, 600.0, 4.0)
    starts, _ = blink_times(flat_prosody(600.0, pauses=pauses), "neutral", 0.0, np.random.default_rng(1))
    after = np.array([np.any((s - pauses >= 0) & (s - pauses < 0.35)) for s in starts])
    chance = 0.35 / 4.0
    assert after.mean() > 3 * chance


def test_emotion_changes_the_blink_rate():
    rates = {}
    for emotion in ("neutral", "fearful", "surprised"):
        starts, _ = blink_times(flat_prosody(600.0), emotion, 1.0, np.random.default_rng(3))
        rates[emotion] = len(starts)
    assert rates["fearful"] > 1.2 * rates["neutral"] > 1.4 * rates["surprised"]


def test_eyelids_close_fully_on_the_template_at_blink_peak():
    t = load_template()
    w = np.zeros(52, np.float32)
    w[ARKIT_INDEX["eyeBlinkLeft"]] = w[ARKIT_INDEX["eyeBlinkRight"]] = 1.0
    face = t.vertices + apply_arkit(w)
    for upper, lower in (
        (lm.EYELID_UPPER_LEFT_0, lm.EYELID_LOWER_LEFT_0),
        (lm.EYELID_UPPER_RIGHT_0, lm.EYELID_LOWER_RIGHT_0),
    ):
        gap = np.linalg.norm(face[list(upper)] - face[list(lower)], axis=1)
        assert gap.max() <= 0.5 * MM
        assert np.linalg.norm(t.vertices[list(upper)] - t.vertices[list(lower)], axis=1).max() > 3 * MM


def test_gaze_fixates_and_moves_in_saccades():
    p = flat_prosody(60.0, fps=100.0)
    angles = gaze(p, "neutral", 0.0, np.random.default_rng(0))
    speed = np.linalg.norm(np.diff(angles, axis=0), axis=1) * 100.0  # degrees per second
    assert np.abs(angles).max() < 25.0
    still = speed < 1.0
    assert still.mean() > 0.8  # mostly fixating
    assert speed.max() > 150.0  # saccades are fast
    sad = gaze(p, "sad", 1.0, np.random.default_rng(0))
    assert sad[:, 1].mean() < angles[:, 1].mean() - 4.0  # sadness lowers the gaze


def test_look_channels_follow_the_arkit_convention():
    looks = look_channels(np.array([[15.0, 0.0], [0.0, -30.0]], np.float32))
    assert looks["eyeLookOutLeft"][0] == pytest.approx(0.5) and looks["eyeLookInRight"][0] == pytest.approx(
        0.5
    )
    assert looks["eyeLookInLeft"][0] == 0.0 and looks["eyeLookDownLeft"][1] == pytest.approx(1.0)


def test_head_nods_on_accents_and_stays_light():
    audio, _, _ = speech(seconds=8.0, seed=2)
    p = measure(audio, SR, 30.0, 240)
    angles, brows = head_motion(p, "neutral", 0.0, np.random.default_rng(0))
    assert np.abs(angles).max() < 8.0 and np.abs(angles).max() > 0.5
    assert np.abs(angles[0]).max() < 1e-6  # starts from rest: no pop at the take's start
    at_accents = [angles[int((a - 0.12 + 0.25) * 30), 0] for a in p.accents if 0.5 < a < 7.5]
    assert np.mean(at_accents) > np.mean(angles[:, 0]) + 0.5  # nods peak just after the accent
    assert brows.max() > 0.1 and brows.min() == 0.0
    again, _ = head_motion(p, "neutral", 0.0, np.random.default_rng(0))
    assert np.array_equal(angles, again)
    sad, _ = head_motion(p, "sad", 1.0, np.random.default_rng(0))
    happy, _ = head_motion(p, "happy", 1.0, np.random.default_rng(0))
    assert np.std(sad, axis=0).sum() < np.std(happy, axis=0).sum()
    assert sad[100:140, 0].mean() > angles[100:140, 0].mean() + 2.0  # a sad head droops


def test_layers_are_optional_and_own_their_channels():
    audio, _, _ = speech(seconds=3.0)
    arkit = np.zeros((90, 52), np.float32)
    arkit[:, ARKIT_INDEX["eyeBlinkLeft"]] = 0.3  # a calm face's lowered lids
    arkit[40:44, ARKIT_INDEX["eyeBlinkLeft"]] = 1.0  # and one of the model's own blinks
    none = compute_layers(audio, SR, arkit, 30.0, layers="none")
    assert none.channels == {} and none.blink is None and none.head is None and none.owned_channels() == set()
    only = compute_layers(audio, SR, arkit, 30.0, layers=["blinks"], seed=5)
    assert set(only.channels) == {"blinks"} and only.owned_channels() == set(BLINK_CHANNELS)
    left = only.channels["blinks"]["eyeBlinkLeft"]
    assert left.min() >= 0.3 - 1e-6  # the lids' level stays
    generated = only.blink > 0.99
    assert np.array_equal(left >= 0.99, generated | (left >= 0.99)) and generated.any()
    assert np.all(left[40:44][~generated[40:44]] < 0.5)  # the model's own blink gave way to the generator
    every = compute_layers(audio, SR, arkit, 30.0, layers="all", seed=5)
    assert set(every.channels) == {"blinks", "gaze", "head"}
    assert set(every.channels["gaze"]) == set(GAZE_CHANNELS)
    assert np.array_equal(every.channels["blinks"]["eyeBlinkLeft"], left)  # layers draw independently
    assert parse_layers("blinks, head") == {"blinks", "head"} and parse_layers(None) == {
        "blinks",
        "gaze",
        "head",
    }
    with pytest.raises(ValueError, match="unknown layer"):
        parse_layers("blinks,wink")


def test_tongue_tip_reaches_the_ridge_during_coronals():
    phones = [TimedPhone("sil", 0.0, 0.2), TimedPhone("T", 0.2, 0.3), TimedPhone("AA", 0.3, 0.5)]
    curve = coronal_curve(phones, 100.0, 60)
    assert curve[22:29].min() == 1.0 and curve[:14].max() == 0.0 and curve[40:].max() == 0.0
    tip, ridge = np.array([0.0, -0.041, -0.05]), np.array([0.0, -0.043, -0.038])
    angle = np.deg2rad(3.0)  # the jaw a little open
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    rotations, translations = np.stack([rot] * 60), np.zeros((60, 3))
    w = tip_weights(curve, rotations, translations, tip, ridge)
    placed = rot @ (tip + w[25] * (ridge - tip))
    assert np.linalg.norm(placed - ridge) < 3 * MM
    assert w[0] == 0.0


def test_the_request_carries_the_layers_and_the_engine_bakes_them_in():
    from engine.animation import Animation
    from engine.arkit.basis import eyelid_gap
    from engine.data.motion import render_motion
    from engine.layers import layer_animation
    from engine.request import AnimateRequest, RequestError

    assert AnimateRequest("x.wav").layers == ()  # the model's motion alone unless asked
    assert AnimateRequest("x.wav", layers="gaze, blinks").layers == ("blinks", "gaze")
    assert AnimateRequest.from_mapping({"audio": "x.wav", "layers": ["head"]}).to_mapping()["layers"] == [
        "head"
    ]
    with pytest.raises(RequestError, match="unknown layer"):
        AnimateRequest("x.wav", layers=["blink"])

    audio, _, _ = speech(seconds=4.0, seed=3)
    motion = render_motion([("sil", 0.0, 4.0)], fps=30, seed=0)
    motion.arkit[:, ARKIT_INDEX["eyeBlinkLeft"]] = 0.0  # no blinks of its own
    motion.arkit[:, ARKIT_INDEX["eyeBlinkRight"]] = 0.0
    offsets = apply_arkit(motion.arkit)
    take = Animation(fps=30.0, offsets=offsets, arkit=motion.arkit.copy())
    plain = layer_animation(take, audio, SR, [(0.0, "neutral", 1.0)], ())
    assert np.array_equal(plain.arkit, take.arkit) and plain.meta["layers"] == []
    lively = layer_animation(take, audio, SR, [(0.0, "neutral", 1.0)], ("blinks", "head"), seed=1)
    blink = lively.arkit[:, ARKIT_INDEX["eyeBlinkLeft"]]
    assert blink.max() == pytest.approx(1.0)
    shut = int(np.argmax(blink))
    face = load_template().vertices + lively.offsets[shut]
    assert eyelid_gap(face, "left") < 0.5 * MM  # the vertices follow the baked blink
    assert len(lively.meta["head_rotation_deg"]) == take.n_frames and "eye_rotation_deg" not in lively.meta
    assert np.array_equal(lively.arkit[:, ARKIT_INDEX["jawOpen"]], take.arkit[:, ARKIT_INDEX["jawOpen"]])
