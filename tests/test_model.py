"""DualFace network: shapes, exact incremental decoding, losses, learning, determinism, ablations."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.model import DualFace, ModelConfig, dual_losses
from engine.model.attention import banded_attention
from engine.model.audio_encoder import resample_to_frames
from engine.model.batch import collate, constant_condition, to_device
from engine.model.losses import ctc, info_nce, vertex_weights
from engine.model.mesh_attention import farthest_point_patches
from engine.model.vertex_layers import LowRankLinear
from engine.phonemes import VOCAB

torch.set_num_threads(1)

N_VERTICES = 30


def tiny_config(**overrides) -> ModelConfig:
    values = dict(
        n_vertices=N_VERTICES,
        audio_dim=32,
        audio_layers=1,
        audio_heads=2,
        audio_window=4,
        mesh_patches=6,
        patch_dim=16,
        vertex_embed_dim=4,
        mesh_heads=2,
        motion_window=4,
        d_model=32,
        decoder_layers=2,
        decoder_heads=2,
        decoder_window=6,
        align_radius=2,
        ff_mult=2,
        dropout=0.0,
        consistency_dim=16,
    )
    values.update(overrides)
    return ModelConfig(**values)


def tiny_template() -> np.ndarray:
    return np.random.default_rng(7).normal(0.0, 0.05, (N_VERTICES, 3)).astype(np.float32)


def tiny_model(seed: int = 0, **overrides) -> DualFace:
    torch.manual_seed(seed)
    return DualFace(tiny_config(**overrides), template=tiny_template())


def make_examples(frames=(24, 17), fps=30.0, seed=0, n_vertices=N_VERTICES) -> list[dict]:
    """Clips whose motion is a smooth function of the mel energy, so there is something to learn."""
    rng = np.random.default_rng(seed)
    examples = []
    for t in frames:
        n_mel = int(t / fps * 100) + 1
        mel = np.abs(rng.normal(1.0, 0.6, (n_mel, 80))).astype(np.float32)
        energy = np.interp(np.arange(t) / fps * 100, np.arange(n_mel), mel[:, :20].mean(1))
        shape = rng.normal(0.0, 1.0, (n_vertices, 3))
        offsets = (0.003 * energy[:, None, None] * shape[None]).astype(np.float32)
        examples.append(
            dict(
                mel=mel,
                offsets=offsets,
                cond=constant_condition("happy", 0.8, t),
                style=np.array([1.0, 0.5, 1.0, 0.01, 0.0], np.float32),
                fps=fps,
                arkit=rng.random((t, 52)).astype(np.float32),
                phones=rng.integers(1, len(VOCAB), max(2, t // 4)),
            )
        )
    return examples


def randomise_heads(model: DualFace) -> None:
    """Zero-initialised output heads make every frame the rest face; give them weights so that
    decoded frames depend on the history (otherwise equality tests would be trivial)."""
    with torch.no_grad():
        model.decoder.offset_head.weight.normal_(0.0, 0.3)
        model.decoder.offset_head.bias.normal_(0.0, 0.3)
        model.decoder.arkit_head.weight.normal_(0.0, 0.3)


# --------------------------------------------------------------------------- shapes and budget


@pytest.mark.parametrize("tf_prob", [1.0, 0.5, 0.0])
def test_forward_shapes_and_dtypes(tf_prob):
    model = tiny_model()
    batch = collate(make_examples())
    out = model(batch, tf_prob=tf_prob)
    b, t = 2, 24
    assert out["pred_offsets"].shape == (b, t, N_VERTICES, 3)
    assert out["pred_arkit"].shape == (b, t, 52)
    for key in ("audio_feat", "motion_feat"):
        assert out[key].shape == (b, t, 32)
    for key in ("audio_ctc", "lip_ctc_gt", "lip_ctc_pred"):
        assert out[key].shape == (b, t, len(VOCAB))
        assert torch.allclose(out[key].exp().sum(-1), torch.ones(b, t), atol=1e-5)
    for value in out.values():
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    assert ((out["pred_arkit"] > 0) & (out["pred_arkit"] < 1)).all()


def test_untrained_model_predicts_the_rest_face():
    out = tiny_model()(collate(make_examples()))
    assert torch.count_nonzero(out["pred_offsets"]) == 0
    assert out["pred_arkit"].max() < 0.05


def test_default_config_fits_the_parameter_budget():
    model = DualFace(ModelConfig())
    assert model.n_parameters() <= 10_000_000
    assert model.cfg.n_vertices == 468 and model.cfg.n_phones == len(VOCAB)


def test_larger_topologies_build():
    model = DualFace(ModelConfig(n_vertices=5023))
    assert model.decoder.offset_head.out_features == 5023 * 3
    assert model.motion_encoder.patch_labels.shape == (5023,)


def _layout_fingerprint(model: DualFace) -> str:
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(model.state_dict().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_default_model_layout_is_unchanged_by_the_factorised_head():
    """Checkpoints of the default model (and its linear-encoder ablation) written before factorised
    vertex layers existed must still load: same tensor names and shapes, same parameter count.
    The fingerprints were taken from the code at commit c9c4cf3."""
    default = DualFace(ModelConfig())
    assert isinstance(default.decoder.offset_head, torch.nn.Linear)
    assert default.n_parameters() == 3_207_658
    assert _layout_fingerprint(default) == "1a5d15203fd2c3ad"
    linear = DualFace(ModelConfig(mesh_attention=False))
    assert _layout_fingerprint(linear) == "a064037a9222aa3c"
    vocaset = DualFace(ModelConfig(n_vertices=5023))  # under the budget: stays dense
    assert _layout_fingerprint(vocaset) == "d07849ebdf3892be"


@pytest.mark.parametrize("n_vertices", [5023, 23370])
@pytest.mark.parametrize("mesh_attention", [True, False])
def test_real_dataset_meshes_fit_the_parameter_budget(n_vertices, mesh_attention):
    model = DualFace(ModelConfig(n_vertices=n_vertices, mesh_attention=mesh_attention))
    assert model.n_parameters() <= 10_000_000
    head = model.decoder.offset_head
    dense = model.cfg.d_model * n_vertices * 3
    assert isinstance(head, LowRankLinear) == (dense > model.cfg.vertex_layer_budget)
    assert sum(p.numel() for p in head.parameters()) <= model.cfg.vertex_layer_budget + n_vertices * 3


def test_factorised_head_starts_at_the_rest_face_and_learns():
    cfg = tiny_config(vertex_layer_budget=N_VERTICES * 3 * 8)  # 32 x 90 dense weights > budget
    model = DualFace(cfg)
    assert isinstance(model.decoder.offset_head, LowRankLinear)
    assert isinstance(
        DualFace(tiny_config(mesh_attention=False, vertex_layer_budget=720)).motion_encoder.proj,
        LowRankLinear,
    )
    rank = model.decoder.offset_head.down.out_features
    assert 1 <= rank < cfg.d_model
    batch = collate(make_examples())
    out = model(batch)
    assert torch.count_nonzero(out["pred_offsets"]) == 0
    dual_losses(out, batch, cfg)["total"].backward()
    assert model.decoder.offset_head.up.weight.grad.abs().sum() > 0  # the zero basis still learns
    assert (
        DualFace(
            tiny_config(vertex_layer_budget=720, vertex_layer_rank=3)
        ).decoder.offset_head.down.out_features
        == 3
    )
    with pytest.raises(ValueError, match="vertex_layer_budget"):
        ModelConfig(n_vertices=23370, vertex_layer_budget=1000)


# --------------------------------------------------------------------------- incremental decoding


@pytest.mark.parametrize(
    "overrides", [{}, {"mesh_attention": False}, {"decoder_layers": 1, "motion_layers": 2}]
)
def test_cached_decoding_equals_full_prefix_recomputation(overrides):
    model = tiny_model(**overrides).double().eval()
    randomise_heads(model)
    batch = to_device(collate(make_examples(frames=(20, 20))), "cpu", torch.float64)
    cond = torch.rand(2, 20, 8, dtype=torch.float64)  # per-frame emotion schedule
    cached = model.generate(batch["mel"], 30.0, cond, batch["style"])
    reference = model.generate_full_prefix(batch["mel"], 30.0, cond, batch["style"])
    assert torch.allclose(cached[0], reference[0], atol=1e-5, rtol=0)
    assert torch.allclose(cached[1], reference[1], atol=1e-5, rtol=0)
    # 20 frames exceed the 6-frame decoder window: the ring buffer wrapped, and frames differ
    assert cached[0].std(dim=1).mean() > 1e-6


def test_step_by_step_matches_generate_and_stops_at_the_end():
    model = tiny_model().eval()
    randomise_heads(model)
    batch = collate(make_examples(frames=(12, 12)))
    calls = []
    offsets, arkit = model.generate(
        batch["mel"], 30.0, batch["cond"], batch["style"], progress=lambda d, n: calls.append((d, n))
    )
    assert calls[-1] == (12, 12)
    with torch.no_grad():
        feat = model.encode_audio(batch["mel"], 30.0, 12)
        state = model.start(feat, batch["cond"], batch["style"])
        frames = [model.step(state) for _ in range(12)]
        with pytest.raises(RuntimeError, match="already decoded"):
            model.step(state)
    assert torch.allclose(torch.stack([f[0] for f in frames], 1), offsets, atol=1e-6)
    assert torch.allclose(torch.stack([f[1] for f in frames], 1), arkit, atol=1e-6)


def test_batched_generation_equals_one_clip_at_a_time():
    """Chunks of different audio lengths decoded side by side, as the inference engine does."""
    model = tiny_model().eval()
    randomise_heads(model)
    batch = collate(make_examples(frames=(18, 18)))
    mel_len = torch.tensor([batch["mel"].shape[1], 40])  # the second clip's audio ends early
    together = model.generate(batch["mel"], 30.0, batch["cond"], batch["style"], mel_len=mel_len)
    alone = model.generate(
        batch["mel"][1:, :40], 30.0, batch["cond"][1:], batch["style"][1:], mel_len=mel_len[1:]
    )
    assert torch.allclose(together[0][1], alone[0][0], atol=1e-6)
    assert torch.allclose(together[1][1], alone[1][0], atol=1e-6)


def test_speed_probe_reports_positive_timings():
    from engine.model.speed import measure

    result = measure(tiny_model(), batch=2, seconds=1.0, calls=3)
    assert result["step_s"] > 0 and result["audio_encoder_s"] > 0
    assert result["projected_clip_s"] >= result["chunk_frames"] * result["step_s"]


def test_bad_audio_input_is_refused_with_the_fix():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="log_mel"):
        model.encode_audio(torch.zeros(1, 50, 40), 30.0, 10)
    with pytest.raises(ValueError, match="fps > 0"):
        model.encode_audio(torch.zeros(1, 50, 80), 0.0, 10)


def test_forward_rejects_another_topology():
    batch = collate(make_examples(n_vertices=31))
    with pytest.raises(ValueError, match="n_vertices"):
        tiny_model()(batch)


def test_start_rejects_mismatched_conditioning():
    model = tiny_model().eval()
    feat = torch.zeros(2, 10, 32)
    with pytest.raises(ValueError, match="cond must be"):
        model.start(feat, torch.zeros(2, 9, 8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="style must be"):
        model.start(feat, torch.zeros(2, 10, 8), torch.zeros(2, 4))


def test_padding_does_not_change_a_clips_outputs():
    model = tiny_model().eval()
    randomise_heads(model)
    examples = make_examples(frames=(24, 15))
    with torch.no_grad():
        together = model(collate(examples))
        alone = model(collate(examples[1:]))
    for key in ("pred_offsets", "pred_arkit", "audio_feat", "motion_feat", "lip_ctc_gt"):
        assert torch.allclose(together[key][1, :15], alone[key][0], atol=1e-5), key


# --------------------------------------------------------------------------- attention primitives


def test_banded_attention_equals_masked_dense_attention():
    torch.manual_seed(0)
    b, h, tq, tk, dh, left, right = 2, 3, 37, 41, 8, 5, 2
    q, k, v = torch.randn(b, h, tq, dh), torch.randn(b, h, tk, dh), torch.randn(b, h, tk, dh)
    slopes = torch.tensor([0.5, 0.25, 0.125])
    valid = torch.rand(b, tk) > 0.2
    valid[:, :tq] = True  # every query keeps at least its own position
    got = banded_attention(q, k, v, left, right, slopes, valid, block=8)
    offset = torch.arange(tk)[None, :] - torch.arange(tq)[:, None]
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh) - slopes[:, None, None] * offset.abs()
    allowed = (offset >= -left) & (offset <= right)
    scores = scores.masked_fill(~(allowed[None, None] & valid[:, None, None, :]), float("-inf"))
    expected = torch.softmax(scores, -1) @ v
    assert torch.allclose(got, expected, atol=1e-5)


def test_resampling_to_motion_frames_is_linear_in_time():
    ramp = torch.arange(10, dtype=torch.float32)[None, :, None]  # value j at t = j / 25 s
    frames = resample_to_frames(ramp, torch.tensor([10]), fps=30.0, n_frames=12)
    expected = torch.clamp(torch.arange(12) * 25.0 / 30.0, max=9.0)
    assert torch.allclose(frames[0, :, 0], expected, atol=1e-5)


def test_patches_are_deterministic_and_spatially_compact():
    points = np.random.default_rng(1).uniform(-1, 1, (400, 3))
    labels = farthest_point_patches(points, 16)
    assert np.array_equal(labels, farthest_point_patches(points.copy(), 16))
    assert set(labels.tolist()) == set(range(16))
    assert np.bincount(labels).max() <= math.ceil(1.25 * 400 / 16)
    centres = np.stack([points[labels == p].mean(0) for p in range(16)])
    own = np.linalg.norm(points - centres[labels], axis=1).mean()
    shuffled = np.linalg.norm(points - centres[np.random.default_rng(2).permutation(labels)], axis=1).mean()
    assert own < 0.6 * shuffled


# --------------------------------------------------------------------------- losses


def test_ctc_prefers_the_true_alignment():
    phones = torch.tensor([[5, 9, 12, 9]])
    frames = torch.tensor([0, 5, 5, 5, 0, 9, 9, 0, 12, 12, 12, 0, 0, 9, 9, 0])  # blank-separated
    log_probs = torch.log_softmax(F.one_hot(frames, len(VOCAB)).float() * 6.0, -1)[None]
    mask = torch.ones(1, len(frames), dtype=torch.bool)
    right = ctc(log_probs, {"phones": phones, "phone_len": torch.tensor([4])}, mask)
    wrong = ctc(log_probs, {"phones": torch.tensor([[9, 5, 9, 12]]), "phone_len": torch.tensor([4])}, mask)
    assert right < 0.5 * wrong


def test_loss_terms_are_finite_and_total_is_their_weighted_sum():
    model = tiny_model()
    randomise_heads(model)
    batch = collate(make_examples())
    losses = dual_losses(model(batch, tf_prob=0.5), batch, model.cfg)
    expected_terms = {"vertex", "velocity", "arkit", "audio_ctc", "lip_ctc", "lip_ctc_pred"}
    assert expected_terms | {"consistency", "infonce", "total"} == set(losses)
    cfg = model.cfg
    weights = dict(
        vertex=cfg.w_vertex,
        velocity=cfg.w_velocity,
        arkit=cfg.w_arkit,
        audio_ctc=cfg.w_audio_ctc,
        lip_ctc=cfg.w_lip_ctc,
        lip_ctc_pred=cfg.w_lip_ctc_pred,
        consistency=cfg.w_consistency,
        infonce=cfg.w_infonce,
    )
    total = sum(weights[k] * losses[k] for k in weights)
    assert torch.isclose(losses["total"], total)
    losses["total"].backward()
    assert model.decoder.offset_head.weight.grad.abs().sum() > 0


def test_lip_reading_of_predictions_trains_the_generator_not_the_reader():
    model = tiny_model()
    randomise_heads(model)
    batch = collate(make_examples())
    out = model(batch)
    loss = ctc(out["lip_ctc_pred"], batch, torch.ones(2, 24, dtype=torch.bool))
    loss.backward()
    assert model.decoder.offset_head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.lip_head.parameters())


def test_infonce_penalises_collapsed_motion_features():
    torch.manual_seed(0)
    t = 16
    audio = F.normalize(torch.randn(1, t, 8), dim=-1)
    mask = torch.ones(1, t, dtype=torch.bool)
    matched = info_nce(audio, audio.clone(), mask, 0.1)
    collapsed = info_nce(audio, F.normalize(torch.ones(1, t, 8), dim=-1), mask, 0.1)
    assert matched < 0.5
    # audio -> motion cannot tell the frames apart at all (log T); motion -> audio adds >= 0
    assert collapsed >= 0.5 * math.log(t) - 1e-5


def test_infonce_does_not_use_neighbouring_frames_as_negatives():
    """A smooth trajectory: neighbours look alike, which must not count against the model."""
    t = 20
    angle = torch.linspace(0, 3.0, t)
    smooth = torch.stack([angle.cos(), angle.sin(), torch.zeros(t)], -1)[None]
    mask = torch.ones(1, t, dtype=torch.bool)
    strict = info_nce(smooth, smooth, mask, 0.1, exclude=0)
    tolerant = info_nce(smooth, smooth, mask, 0.1, exclude=2)
    assert tolerant < 0.5 * strict


def test_vertex_loss_weights_lips_on_the_mediapipe_face():
    pytest.importorskip("engine.face.template")
    from engine.face.template import load_template

    lips = np.array(load_template().regions["lips"])
    w = vertex_weights({}, 468, 3.0, torch.zeros(1))
    assert torch.all(w[lips] == 3.0) and float(w.sum()) == pytest.approx(468 + 2.0 * len(set(lips.tolist())))
    assert torch.all(vertex_weights({}, 5023, 3.0, torch.zeros(1)) == 1.0)


def test_loss_on_padded_frames_is_ignored():
    model = tiny_model()
    randomise_heads(model)
    batch = collate(make_examples(frames=(24, 15)))
    out = model(batch)
    base = dual_losses(out, batch, model.cfg)
    out["pred_offsets"] = out["pred_offsets"].detach().clone()
    out["pred_offsets"][1, 15:] += 1.0  # garbage where clip 2 is padding
    changed = dual_losses(out, batch, model.cfg)
    assert torch.isclose(base["vertex"], changed["vertex"]) and torch.isclose(
        base["velocity"], changed["velocity"]
    )


# --------------------------------------------------------------------------- learning and determinism


@pytest.mark.slow
def test_tiny_model_overfits_a_tiny_batch():
    model = tiny_model(seed=1)
    batch = collate(make_examples(frames=(20, 16), seed=3))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(100):
        losses = dual_losses(model(batch), batch, model.cfg)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        history.append((float(losses["vertex"].detach()), float(losses["total"].detach())))
    (vertex_0, total_0), (vertex_n, total_n) = history[0], history[-1]
    assert vertex_n < vertex_0 / 10, history[::10]
    assert total_n < total_0 / 5, history[::10]


def test_same_seed_gives_same_weights_and_outputs():
    batch = collate(make_examples())
    a, b = tiny_model(seed=5), tiny_model(seed=5)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.audio_encoder.proj.weight, tiny_model(seed=6).audio_encoder.proj.weight)
    randomise_heads(a)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(11)
    out_a = a(batch, tf_prob=0.5)
    torch.manual_seed(11)
    out_b = b(batch, tf_prob=0.5)
    assert torch.equal(out_a["pred_offsets"], out_b["pred_offsets"])


# --------------------------------------------------------------------------- ablations and config


@pytest.mark.parametrize(
    "switch, absent",
    [
        ("dual_task", {"lip_ctc", "lip_ctc_pred"}),
        ("consistency", {"consistency", "infonce"}),
        ("mesh_attention", set()),
        ("emotion", set()),
    ],
)
def test_ablation_configs_train(switch, absent):
    model = tiny_model(**{switch: False})
    batch = collate(make_examples())
    losses = dual_losses(model(batch, tf_prob=0.5), batch, model.cfg)
    assert not absent & set(losses)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()


def test_emotion_switch_controls_whether_conditioning_matters():
    batch = collate(make_examples())
    other = dict(batch, cond=torch.roll(batch["cond"], 1, dims=-1))
    for enabled in (True, False):
        model = tiny_model(emotion=enabled).eval()
        randomise_heads(model)
        with torch.no_grad():
            delta = (model(batch)["pred_offsets"] - model(other)["pred_offsets"]).abs().max()
        assert (delta > 1e-6) == enabled


def test_config_round_trip_and_validation():
    cfg = tiny_config(dual_task=False)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config key"):
        ModelConfig.from_dict({**cfg.to_dict(), "d_modle": 64})
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, decoder_heads=4)
    with pytest.raises(ValueError, match="true/false"):
        ModelConfig.from_dict({"emotion": "yes"})
    assert ModelConfig.from_dict({"dropout": 0}).dropout == 0.0


def test_collate_rejects_mixed_frame_rates():
    examples = make_examples()
    examples[1]["fps"] = 25.0
    with pytest.raises(ValueError, match="one frame rate"):
        collate(examples)
