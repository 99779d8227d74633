"""The DualFace training objective: motion reconstruction + the dual (lip-reading) task + consistency.

Notation: m_bt = 1 for real (unpadded) frames, s = cfg.motion_scale (metres -> mm), x = offsets,
w_v = cfg.lip_weight on lip vertices (MediaPipe 'lips' region, or batch["lip_mask"]) else 1.

    vertex      = sum_bt m_bt sum_v w_v |s (x^_btv - x_btv)|^2  /  (sum_bt m_bt * sum_v w_v)
    velocity    = same with x_t - x_{t-1} in place of x_t (pairs of real frames only)
    lip_gap     = mean over real frames and inner-lip pairs k of |g^_btk - g_btk|, g = gap in mm
    lip_contact = mean of (g^_btk - g_btk)^2 over the pairs whose true gap < 1 mm (contact, rest)
    arkit       = mean over real frames and 52 shapes of (a^ - a)^2            (batch has "arkit")
    audio_ctc   = CTC(audio phone log-probs, phones)                              (batch has "phones")
    lip_ctc     = CTC(lip reader on ground-truth motion, phones)                  (dual_task)
    lip_ctc_pred= CTC(lip reader on predicted motion, phones)                     (dual_task)
                  (the reader's weights are frozen for this term: it trains the generator only)
    consistency = mean_bt m_bt (1 - cos(P_a a_bt, P_m g_bt))                      (consistency)
    infonce     = -1/2 mean_bt [log softmax_s(cos(P_a a_bt, P_m g_bs)/tau)_t
                               + log softmax_s(cos(P_a a_bs, P_m g_bt)/tau)_t]    (consistency)
                  with s over the clip's real frames except 0 < |s - t| <= cfg.infonce_exclude
    total       = sum of cfg.w_* times each active term

a = audio features, g = motion features of the ground truth, P_a / P_m = learned projections, s runs
over the real frames of the same clip. The cosine term pulls each frame's audio and motion
embeddings together; InfoNCE also pushes frame t's audio away from the clip's *other* frames, so a
model that maps every frame to one average pose (over-smoothing) cannot score well. Immediate
neighbours are not negatives: at 30-60 fps they are nearly the same pose, and pushing them apart
would fight smooth motion. CTC losses are
per-target-length means (PyTorch 'mean' reduction) with impossible alignments zeroed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.face.template import N_VERTICES as MEDIAPIPE_VERTICES
from engine.model.config import ModelConfig

CONTACT_MM = 1.0  # inner lips closer than this touch: the closure/rest criterion of engine.eval


@lru_cache(maxsize=1)
def mediapipe_lip_mask() -> np.ndarray:
    """Boolean [468] mask of the template's 'lips' region (the LVE region)."""
    from engine.face.template import load_template

    template = load_template()
    mask = np.zeros(len(template.vertices), dtype=bool)
    mask[np.asarray(template.regions["lips"], dtype=np.int64)] = True
    return mask


def vertex_weights(batch: dict, n_vertices: int, lip_weight: float, like: Tensor) -> Tensor:
    """Per-vertex loss weights [V]: lip_weight on lips when a lip mask is known, else all 1."""
    mask = batch.get("lip_mask")
    if mask is None and n_vertices == MEDIAPIPE_VERTICES:
        mask = mediapipe_lip_mask()
    weights = torch.ones(n_vertices, dtype=like.dtype, device=like.device)
    if mask is not None:
        mask = mask if isinstance(mask, Tensor) else torch.from_numpy(np.array(mask, dtype=bool))
        mask = mask.to(device=like.device, dtype=torch.bool)
        if mask.shape != (n_vertices,):
            raise ValueError(f"batch['lip_mask'] must be [{n_vertices}] booleans, got {tuple(mask.shape)}")
        weights = torch.where(mask, torch.full_like(weights, lip_weight), weights)
    return weights


@lru_cache(maxsize=1)
def mediapipe_inner_lip_pairs() -> np.ndarray:
    """[K, 2] (upper, lower) inner-lip vertex pairs of the template."""
    from engine.face.template import load_template

    return np.asarray(load_template().inner_lip_pairs, dtype=np.int64)


def lip_contact_losses(
    pred: Tensor, gt: Tensor, batch: dict, mask: Tensor, cfg: ModelConfig
) -> dict[str, Tensor]:
    """Inner-lip gap terms, in millimetres, per (upper, lower) vertex pair:

    - `lip_gap`: |gap_pred - gap_gt| on every frame, so the opening itself is learnt, not only the
      vertices (an average of "open" and "closed" is a half-open mouth that the vertex loss tolerates);
    - `lip_contact`: (gap_pred - gap_gt)^2 where the ground truth's lips touch (gap < CONTACT_MM:
      p/b/m closures and the closed mouth at rest), mean over those pairs only, so rare closures count.
    Needs absolute positions: the batch's templates, and inner-lip pairs (the template's for 468
    vertices, else batch['inner_lip_pairs']); without them the terms are skipped.
    """
    template = batch.get("template")
    pairs = batch.get("inner_lip_pairs")
    if pairs is None and gt.shape[2] == MEDIAPIPE_VERTICES:
        pairs = mediapipe_inner_lip_pairs()
    if template is None or pairs is None:
        return {}
    pairs_t = torch.as_tensor(np.array(pairs, dtype=np.int64), device=gt.device)
    s = cfg.motion_scale
    base = template[:, None].to(gt.dtype) * s

    def gap(offsets: Tensor) -> Tensor:
        absolute = base + offsets * s
        return (absolute[:, :, pairs_t[:, 0]] - absolute[:, :, pairs_t[:, 1]]).norm(dim=-1)  # [B,T,K]

    gap_pred, gap_gt = gap(pred), gap(gt)
    valid = mask[:, :, None].expand_as(gap_gt)
    out = {"lip_gap": (gap_pred - gap_gt).abs()[valid].mean()}
    touching = valid & (gap_gt < CONTACT_MM)
    if bool(touching.any()):
        out["lip_contact"] = (gap_pred - gap_gt).pow(2)[touching].mean()
    else:
        out["lip_contact"] = gap_pred.new_zeros(())
    return out


def frame_mask(batch: dict, b: int, t: int, device) -> Tensor:
    frame_len = batch.get("frame_len")
    if frame_len is None:
        return torch.ones(b, t, dtype=torch.bool, device=device)
    return torch.arange(t, device=device)[None, :] < frame_len.to(device)[:, None]


def ctc(log_probs: Tensor, batch: dict, mask: Tensor) -> Tensor:
    """CTC of [B,T,C] log-probs against batch phones; input lengths are the real frame counts."""
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),
        batch["phones"].long(),
        mask.sum(1).long(),
        batch["phone_len"].long(),
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def info_nce(audio: Tensor, motion: Tensor, mask: Tensor, temperature: float, exclude: int = 0) -> Tensor:
    """Symmetric InfoNCE across the frames of each clip; audio/motion [B,T,C] unit vectors.

    Pairs 0 < |s - t| <= exclude are left out of the softmax (neither positive nor negative)."""
    logits = torch.matmul(audio, motion.transpose(1, 2)) / temperature  # [B,T(audio),T(motion)]
    neg = torch.finfo(logits.dtype).min
    t = audio.shape[1]
    gap = (
        torch.arange(t, device=audio.device)[:, None] - torch.arange(t, device=audio.device)[None, :]
    ).abs()
    pair_ok = mask[:, :, None] & mask[:, None, :] & ~((gap > 0) & (gap <= exclude))[None]
    logits = logits.masked_fill(~pair_ok, neg)
    diag_a = torch.diagonal(torch.log_softmax(logits, dim=2), dim1=1, dim2=2)  # audio -> which motion
    diag_m = torch.diagonal(torch.log_softmax(logits, dim=1), dim1=1, dim2=2)  # motion -> which audio
    return -0.5 * (_masked_mean(diag_a, mask) + _masked_mean(diag_m, mask))


def dual_losses(out: dict, batch: dict, cfg: ModelConfig) -> dict[str, Tensor]:
    """All active loss terms (unweighted) plus `total` (weighted sum); see the module docstring."""
    pred, gt = out["pred_offsets"], batch["offsets"]
    if pred.shape != gt.shape:
        raise ValueError(f"pred_offsets {tuple(pred.shape)} and batch offsets {tuple(gt.shape)} differ")
    b, t, v, _ = gt.shape
    mask = frame_mask(batch, b, t, gt.device)
    weights = vertex_weights(batch, v, cfg.lip_weight, gt)
    s = cfg.motion_scale
    losses: dict[str, Tensor] = {}
    contributions: list[Tensor] = []

    def add(name: str, value: Tensor, weight: float) -> None:
        losses[name] = value
        if weight:
            contributions.append(weight * value)

    err = ((pred - gt) * s).pow(2).sum(-1)  # [B,T,V]
    add("vertex", _masked_mean((err * weights).sum(-1), mask) / weights.sum(), cfg.w_vertex)
    if t > 1:
        vel = ((pred[:, 1:] - pred[:, :-1]) - (gt[:, 1:] - gt[:, :-1])) * s
        vel_err = (vel.pow(2).sum(-1) * weights).sum(-1) / weights.sum()
        add("velocity", _masked_mean(vel_err, mask[:, 1:] & mask[:, :-1]), cfg.w_velocity)
    for name, value in lip_contact_losses(pred, gt, batch, mask, cfg).items():
        add(name, value, getattr(cfg, f"w_{name}"))
    if batch.get("arkit") is not None:
        add("arkit", _masked_mean((out["pred_arkit"] - batch["arkit"]).pow(2).mean(-1), mask), cfg.w_arkit)

    if batch.get("phones") is not None:
        add("audio_ctc", ctc(out["audio_ctc"], batch, mask), cfg.w_audio_ctc)
        if cfg.dual_task:
            add("lip_ctc", ctc(out["lip_ctc_gt"], batch, mask), cfg.w_lip_ctc)
            if out.get("lip_ctc_pred") is not None:
                add("lip_ctc_pred", ctc(out["lip_ctc_pred"], batch, mask), cfg.w_lip_ctc_pred)

    if cfg.consistency and out.get("audio_proj") is not None:
        a = F.normalize(out["audio_proj"], dim=-1)
        m = F.normalize(out["motion_proj"], dim=-1)
        add("consistency", _masked_mean(1.0 - (a * m).sum(-1), mask), cfg.w_consistency)
        infonce = info_nce(a, m, mask, cfg.infonce_temperature, cfg.infonce_exclude)
        add("infonce", infonce, cfg.w_infonce)

    losses["total"] = torch.stack(contributions).sum() if contributions else gt.new_zeros(())
    return losses
