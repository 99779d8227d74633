"""Audio augmentation keeps the clip usable as training data: same length, finite, bounded,
deterministic, and each effect measurably does what it claims."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from engine.audio.augment import _equalise, _reverb, augment, augment_with_info

SR = 16000


def _speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A vowel-like harmonic tone switched on and off at syllable rate, with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 25))
    gate = (np.sin(2 * np.pi * 4 * t) > -0.3).astype(float)
    return (0.3 * voice / np.abs(voice).max() * gate + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("length", [1, 100, 16000, 23457])
@pytest.mark.parametrize("strength", [0.5, 1.0, 2.0])
def test_length_finite_bounded(length: int, strength: float) -> None:
    audio = _speechlike(2.0)[:length]
    for seed in range(8):
        out = augment(audio, SR, np.random.default_rng(seed), strength)
        assert out.shape == audio.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def test_deterministic_by_rng_and_varies_across_seeds() -> None:
    audio = _speechlike()
    a = augment(audio, SR, np.random.default_rng(5))
    b = augment(audio, SR, np.random.default_rng(5))
    assert np.array_equal(a, b)
    outs = [augment(audio, SR, np.random.default_rng(s)) for s in range(6)]
    assert len({o.tobytes() for o in outs}) == 6


def test_strength_zero_is_identity_and_input_untouched() -> None:
    audio = _speechlike()
    keep = audio.copy()
    out = augment(audio, SR, np.random.default_rng(0), strength=0.0)
    assert np.array_equal(out, audio) and np.array_equal(audio, keep)
    augment(audio, SR, np.random.default_rng(1), strength=2.0)
    assert np.array_equal(audio, keep)


def test_noise_lands_near_the_requested_snr() -> None:
    audio = _speechlike(2.0)
    for seed in range(40):
        out, info = augment_with_info(audio, SR, np.random.default_rng(seed))
        if set(info) == {"noise", "gain_db"}:  # noise alone: the residual is the noise
            gain = 10 ** (info["gain_db"] / 20)
            residual = out / gain - audio
            frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
            loud = np.sort((frames**2).mean(1))[len(frames) // 2 :].mean()
            snr = 10 * np.log10(loud / np.mean(residual**2))
            assert snr == pytest.approx(info["noise"]["snr_db"], abs=1.0)
            return
    pytest.fail("no seed produced noise alone")


def test_reverb_adds_a_decaying_tail() -> None:
    click = np.zeros(SR, np.float64)
    click[100] = 1.0
    info: dict = {}
    wet = _reverb(click, SR, np.random.default_rng(0), 1.0, info)
    assert len(wet) == SR and wet[100] == pytest.approx(1.0)
    tail = wet[101:]
    early = np.mean(tail[: int(0.05 * SR)] ** 2)
    late = np.mean(tail[int(0.05 * SR) : int(0.1 * SR)] ** 2)
    assert 0 < late < early, "tail energy must decay"
    assert np.allclose(wet[:100], 0.0)  # causal: nothing before the click


def test_band_limit_removes_high_frequencies() -> None:
    noise = np.random.default_rng(0).standard_normal(SR)
    for seed in range(20):
        info: dict = {}
        out = _equalise(noise, SR, np.random.default_rng(seed), 1.0, info)
        if info["eq"]["kind"] == "band" and info["eq"]["high_hz"] < 5500:
            f, p_in = welch(noise, SR, nperseg=1024)
            _, p_out = welch(out, SR, nperseg=1024)
            above = f > info["eq"]["high_hz"] * 1.3
            inside = (f > info["eq"]["low_hz"] * 1.5) & (f < info["eq"]["high_hz"] * 0.7)
            assert (p_out[above] / p_in[above]).mean() < 0.3 * (p_out[inside] / p_in[inside]).mean()
            return
    pytest.fail("no seed produced a band-limit")


def test_resampling_round_trip_drops_content_above_the_low_nyquist() -> None:
    noise = (0.1 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    for seed in range(60):
        out, info = augment_with_info(noise, SR, np.random.default_rng(seed))
        if set(info) == {"resample_hz", "gain_db"}:
            f, p = welch(out, SR, nperseg=1024)
            nyq = info["resample_hz"] / 2
            assert p[f > nyq * 1.05].mean() < 0.01 * p[f < nyq * 0.8].mean()
            return
    pytest.fail("no seed produced a resample round trip alone")


@pytest.mark.parametrize(
    ("audio", "sr", "strength", "message"),
    [
        (np.zeros((2, 100), np.float32), SR, 1.0, "mono"),
        (np.zeros(0, np.float32), SR, 1.0, "mono"),
        (np.array([0.0, np.nan], np.float32), SR, 1.0, "NaN"),
        (np.zeros(100, np.int16), SR, 1.0, "float"),
        (np.zeros(100, np.float32), 4000, 1.0, "sample rate"),
        (np.zeros(100, np.float32), SR, -1.0, "strength"),
    ],
)
def test_bad_input_is_refused(audio, sr, strength, message) -> None:
    with pytest.raises(ValueError, match=message):
        augment(audio, sr, np.random.default_rng(0), strength)
