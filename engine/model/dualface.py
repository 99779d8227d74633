"""DualFace: speech -> face motion, trained jointly with its dual task, lip reading.

Parts (one module each): `AudioEncoder` (log-mel -> features at the motion fps, + phoneme CTC head),
`MeshAttentionEncoder` (motion -> per-frame embedding; shared by the decoder's input and the lip
reader), `FaceDecoder` (autoregressive, emotion- and style-conditioned), a lip-reading CTC head
(DualTalker's dual task, applied to ground-truth and to predicted motion) and two projections for
the cross-modal consistency loss (engine.model.losses).

Scheduled sampling, honestly: true scheduled sampling decodes frame by frame, which is far too slow
for CPU training. `forward(batch, tf_prob)` uses the k-pass parallel approximation instead: pass 1
decodes the whole clip with teacher forcing; then each frame's input is replaced, with probability
1 - tf_prob, by the model's own (detached) prediction from the previous pass, and the clip is decoded
again, `cfg.sampling_passes` passes in all. With tf_prob = 0 every input is a model output, but an
output of the *previous pass*, not of the same pass: k passes reproduce free-running decoding
exactly only for the first k frames' dependency depth. It exposes the decoder to its own errors at
the cost of k parallel passes instead of T sequential ones.

Inference (`start`/`step`/`generate`) decodes frame by frame with bounded key/value caches; the new
frame's motion embedding is computed once per step. `generate_full_prefix` is the FaceFormer-style
reference that recomputes the whole prefix for each frame; both agree to float precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from engine.face.template import N_VERTICES as MEDIAPIPE_VERTICES
from engine.inference.chunking import ENCODER_RATE
from engine.model.audio_encoder import AudioEncoder, subsampled_length
from engine.model.config import ModelConfig
from engine.model.decoder import DecoderState, FaceDecoder
from engine.model.mesh_attention import (
    LinearMotionEncoder,
    MeshAttentionEncoder,
    MotionEncoderState,
    farthest_point_patches,
    index_order_patches,
)

Progress = Callable[[int, int], None]


@dataclass
class GenerationState:
    """The incremental decoding state of a batch of clips (see `DualFace.start`)."""

    decoder: DecoderState
    motion: MotionEncoderState

    @property
    def t(self) -> int:
        return self.decoder.t

    @property
    def n_frames(self) -> int:
        return self.decoder.n_frames


def default_patch_labels(cfg: ModelConfig, template: np.ndarray | None) -> np.ndarray:
    """Patch grouping: farthest-point clustering of the template (MediaPipe's when V = 468)."""
    if template is None and cfg.n_vertices == MEDIAPIPE_VERTICES:
        from engine.face.template import load_template

        template = load_template().vertices
    if template is None:
        return index_order_patches(cfg.n_vertices, cfg.mesh_patches)
    template = np.asarray(template)
    if template.shape != (cfg.n_vertices, 3):
        raise ValueError(f"template must be [{cfg.n_vertices}, 3] (cfg.n_vertices), got {template.shape}")
    return farthest_point_patches(template, cfg.mesh_patches)


class LipReadingHead(nn.Module):
    """Motion embeddings -> phone log-probs; a short symmetric convolution gives +-2 frames of context."""

    def __init__(self, dim: int, n_phones: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size=5, padding=2)
        self.act = nn.GELU()
        self.out = nn.Linear(dim, n_phones)

    def forward(self, motion_feat: Tensor, frame_valid: Tensor | None = None) -> Tensor:
        """frame_valid [B,T] zeroes padded frames first, so the convolution sees a clip's real end."""
        if frame_valid is not None:
            motion_feat = motion_feat * frame_valid[..., None].to(motion_feat.dtype)
        h = self.act(self.conv(motion_feat.transpose(1, 2)).transpose(1, 2))
        return torch.log_softmax(self.out(h), dim=-1)


class DualFace(nn.Module):
    def __init__(
        self,
        cfg: ModelConfig | None = None,
        template: np.ndarray | None = None,
        patch_labels: np.ndarray | None = None,
    ) -> None:
        """`template` [V,3] groups vertices into Mesh Attention patches (default: the MediaPipe face for
        V = 468, index order otherwise); `patch_labels` restores a saved grouping (checkpoints)."""
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.audio_encoder = AudioEncoder(cfg)
        self.audio_ctc_head = nn.Linear(cfg.d_model, cfg.n_phones)
        if cfg.mesh_attention:
            labels = patch_labels if patch_labels is not None else default_patch_labels(cfg, template)
            self.motion_encoder: MeshAttentionEncoder | LinearMotionEncoder = MeshAttentionEncoder(
                cfg, labels
            )
        else:
            self.motion_encoder = LinearMotionEncoder(cfg)
        self.decoder = FaceDecoder(cfg)
        self.lip_head = LipReadingHead(cfg.d_model, cfg.n_phones)
        self.audio_proj = nn.Linear(cfg.d_model, cfg.consistency_dim)
        self.motion_proj = nn.Linear(cfg.d_model, cfg.consistency_dim)

    # ----------------------------------------------------------------------------- helpers
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode_audio(self, mel: Tensor, fps: float, n_frames: int, mel_len: Tensor | None = None) -> Tensor:
        """log-mel [B,Tm,80] -> audio features [B,n_frames,d_model] at `fps`."""
        if mel.ndim != 3 or mel.shape[-1] != self.cfg.n_mels:
            raise ValueError(
                f"mel must be [B, Tm, {self.cfg.n_mels}] (engine.audio.features.log_mel, batched), "
                f"got {tuple(mel.shape)}"
            )
        if mel.shape[1] == 0 or int(n_frames) < 1 or not float(fps) > 0:
            raise ValueError(
                f"need audio, n_frames >= 1 and fps > 0; got Tm={mel.shape[1]}, {n_frames}, {fps}"
            )
        weight = self.audio_encoder.proj.weight
        return self.audio_encoder(mel.to(weight.dtype), mel_len, float(fps), int(n_frames))

    def audio_phoneme_logprobs(self, audio_feat: Tensor) -> Tensor:
        """What the audio encoder hears: [B,T,D] -> log-probs [B,T,len(VOCAB)] (captions, eval)."""
        return torch.log_softmax(self.audio_ctc_head(audio_feat), dim=-1)

    def read_lips(self, offsets: Tensor) -> Tensor:
        """The lip reader: offsets [B,T,V,3] in metres -> log-probs [B,T,len(VOCAB)]."""
        return self.lip_head(self.motion_encoder(offsets * self.cfg.motion_scale))

    def _audio_valid(self, mel_len: Tensor | None, fps: float, n_frames: int, b: int, device) -> Tensor:
        """Motion frames whose time lies inside the audio (cross-attention may not look past its end)."""
        frames = torch.arange(n_frames, device=device)
        if mel_len is None:
            return torch.ones(b, n_frames, dtype=torch.bool, device=device)
        enc_len = subsampled_length(mel_len.to(device).long())
        limit = torch.ceil(enc_len.float() * (fps / ENCODER_RATE)).long().clamp(min=1)
        return frames[None, :] < limit[:, None]

    def _check_condition(self, audio_feat: Tensor, cond: Tensor, style: Tensor) -> None:
        b, t, _ = audio_feat.shape
        if cond.shape != (b, t, self.cfg.n_emotions):
            raise ValueError(f"cond must be [B={b}, T={t}, {self.cfg.n_emotions}], got {tuple(cond.shape)}")
        if style.shape != (b, self.cfg.style_dim):
            raise ValueError(f"style must be [B={b}, {self.cfg.style_dim}], got {tuple(style.shape)}")

    # ----------------------------------------------------------------------------- training
    def forward(self, batch: dict, tf_prob: float = 1.0) -> dict[str, Tensor | None]:
        """Teacher-forced (tf_prob = 1) or scheduled-sampling (k-pass, see module doc) forward pass.

        Returns pred_offsets [B,T,V,3] (metres), pred_arkit [B,T,52], audio_feat / motion_feat
        [B,T,D], audio_ctc / lip_ctc_gt / lip_ctc_pred log-probs [B,T,VOCAB] (lip_ctc_pred is None
        when cfg.dual_task is off), audio_proj / motion_proj [B,T,C] (None when cfg.consistency is off).
        """
        if not 0.0 <= tf_prob <= 1.0:
            raise ValueError(f"tf_prob must be in [0, 1], got {tf_prob}")
        cfg = self.cfg
        offsets = batch["offsets"]
        if offsets.ndim != 4 or offsets.shape[2:] != (cfg.n_vertices, 3):
            raise ValueError(
                f"batch offsets must be [B, T, {cfg.n_vertices}, 3] for this model, got {tuple(offsets.shape)}; "
                "build the model with ModelConfig(n_vertices=...) matching the dataset"
            )
        b, t = offsets.shape[:2]
        fps = float(batch["fps"])
        mel_len = batch.get("mel_len")
        audio_feat = self.encode_audio(batch["mel"], fps, t, mel_len)
        audio_valid = self._audio_valid(mel_len, fps, t, b, offsets.device)
        frame_valid = None
        if batch.get("frame_len") is not None:  # as at inference, a clip has no audio frames past its end
            frame_valid = (
                torch.arange(t, device=offsets.device)[None, :]
                < batch["frame_len"].to(offsets.device)[:, None]
            )
            audio_valid = audio_valid & frame_valid
        condition = self.decoder.condition(batch["cond"], batch["style"])

        gt = offsets * cfg.motion_scale
        motion_feat = self.motion_encoder(gt)
        passes = 1 if tf_prob >= 1.0 else max(2, cfg.sampling_passes)
        grad = torch.is_grad_enabled()
        inputs = motion_feat
        pred: Tensor | None = None
        arkit: Tensor | None = None
        for k in range(passes):
            with torch.set_grad_enabled(grad and k == passes - 1):  # earlier passes only feed inputs
                if pred is not None:  # every pass after the first mixes in the previous prediction
                    use_gt = torch.rand(b, t, 1, 1, device=gt.device) < tf_prob
                    inputs = self.motion_encoder(torch.where(use_gt, gt, pred.detach()))
                pred, arkit = self.decoder(
                    self.decoder.shift_inputs(inputs), condition, audio_feat, audio_valid
                )
        assert pred is not None and arkit is not None  # passes >= 1

        lip_pred = self._judge_lips(pred, frame_valid) if cfg.dual_task else None
        return {
            "pred_offsets": pred / cfg.motion_scale,
            "pred_arkit": arkit,
            "audio_feat": audio_feat,
            "motion_feat": motion_feat,
            "audio_ctc": self.audio_phoneme_logprobs(audio_feat),
            "lip_ctc_gt": self.lip_head(motion_feat, frame_valid),
            "lip_ctc_pred": lip_pred,
            "audio_proj": self.audio_proj(audio_feat) if cfg.consistency else None,
            "motion_proj": self.motion_proj(motion_feat) if cfg.consistency else None,
        }

    def _judge_lips(self, pred_scaled: Tensor, frame_valid: Tensor | None) -> Tensor:
        """Lip-read predicted motion with the reader's weights frozen (detached) for this term only.

        The dual task's feedback should make the *generated* lips readable; letting this loss also
        train the reader would teach it to read blurred predictions instead. The reader learns from
        ground-truth motion (lip_ctc_gt)."""
        encoder = {k: v.detach() for k, v in self.motion_encoder.named_parameters()}
        head = {k: v.detach() for k, v in self.lip_head.named_parameters()}
        feat = torch.func.functional_call(self.motion_encoder, encoder, (pred_scaled,))
        return torch.func.functional_call(self.lip_head, head, (feat, frame_valid))

    # ----------------------------------------------------------------------------- inference
    def start(
        self, audio_feat: Tensor, cond: Tensor, style: Tensor, audio_valid: Tensor | None = None
    ) -> GenerationState:
        """Begin incremental decoding of B clips: audio_feat [B,T,D], cond [B,T,8], style [B,5]."""
        self._check_condition(audio_feat, cond, style)
        condition = self.decoder.condition(cond.to(audio_feat.dtype), style.to(audio_feat.dtype))
        b = audio_feat.shape[0]
        return GenerationState(
            decoder=self.decoder.start(audio_feat, condition, audio_valid),
            motion=self.motion_encoder.start(b, audio_feat),
        )

    def step(self, state: GenerationState) -> tuple[Tensor, Tensor]:
        """Decode the next frame: (offsets [B,V,3] in metres, ARKit weights [B,52])."""
        scaled, arkit = self.decoder.step(state.decoder)
        state.decoder.previous = self.motion_encoder.step(scaled, state.motion)
        state.decoder.t += 1
        return scaled / self.cfg.motion_scale, arkit

    @torch.no_grad()
    def generate(
        self,
        mel: Tensor,
        fps: float,
        cond: Tensor,
        style: Tensor,
        progress: Progress | None = None,
        mel_len: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Audio -> (offsets [B,T,V,3] metres, ARKit [B,T,52]); T = cond.shape[1] frames at `fps`.

        `progress(done, total)` is called every 16 frames and at the end; raise from it to cancel.
        """
        b, n_frames = cond.shape[:2]
        audio_feat = self.encode_audio(mel, fps, n_frames, mel_len)
        valid = self._audio_valid(mel_len, fps, n_frames, b, mel.device)
        state = self.start(audio_feat, cond, style, valid)
        offsets = audio_feat.new_empty(b, n_frames, self.cfg.n_vertices, 3)
        arkit = audio_feat.new_empty(b, n_frames, self.cfg.n_arkit)
        for t in range(n_frames):
            offsets[:, t], arkit[:, t] = self.step(state)
            if progress is not None and ((t + 1) % 16 == 0 or t + 1 == n_frames):
                progress(t + 1, n_frames)
        return offsets, arkit

    @torch.no_grad()
    def generate_full_prefix(
        self,
        mel: Tensor,
        fps: float,
        cond: Tensor,
        style: Tensor,
        progress: Progress | None = None,
        mel_len: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Reference decoder (FaceFormer-style): recompute the whole prefix for every frame, O(T^2)."""
        b, n_frames = cond.shape[:2]
        audio_feat = self.encode_audio(mel, fps, n_frames, mel_len)
        self._check_condition(audio_feat, cond, style)
        valid = self._audio_valid(mel_len, fps, n_frames, b, mel.device)
        condition = self.decoder.condition(cond.to(audio_feat.dtype), style.to(audio_feat.dtype))
        scaled = audio_feat.new_zeros(b, n_frames, self.cfg.n_vertices, 3)
        arkit = audio_feat.new_empty(b, n_frames, self.cfg.n_arkit)
        for t in range(n_frames):
            history = self.motion_encoder(scaled[:, : t + 1])  # frame t's own row is unused below
            inputs = self.decoder.shift_inputs(history)
            pred, weights = self.decoder(inputs, condition[:, : t + 1], audio_feat, valid)
            scaled[:, t], arkit[:, t] = pred[:, t], weights[:, t]
            if progress is not None and ((t + 1) % 16 == 0 or t + 1 == n_frames):
                progress(t + 1, n_frames)
        return scaled / self.cfg.motion_scale, arkit
