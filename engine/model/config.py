"""Every size, window, switch and loss weight of the model in one serialisable place.

The config travels inside each checkpoint, so a weights file always rebuilds the exact network that
wrote it; `from_dict` rejects unknown keys so a typo in a training config fails loudly instead of
silently training the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from engine.emotions import EMOTIONS
from engine.phonemes import VOCAB


@dataclass
class ModelConfig:
    # --- data shape -------------------------------------------------------------------------
    n_vertices: int = 468  # MediaPipe topology; VOCASET 5023 and BIWI 23370 work too
    n_phones: int = len(VOCAB)  # CTC vocabulary incl. blank
    n_emotions: int = len(EMOTIONS)
    style_dim: int = 5  # SpeakerStyle.as_vector()
    n_arkit: int = 52
    n_mels: int = 80
    motion_scale: float = 1000.0  # model works in millimetres when offsets are in metres

    # --- audio encoder (runs at 25 Hz after 4x subsampling of 100 Hz log-mel) ----------------
    audio_dim: int = 192
    audio_layers: int = 4
    audio_heads: int = 4
    audio_window: int = 12  # each encoder frame sees +-12 frames (+-0.48 s)

    # --- motion encoder (Mesh Attention) -----------------------------------------------------
    mesh_patches: int = 32
    patch_dim: int = 32
    vertex_embed_dim: int = 16  # rank of the per-vertex weights inside a patch token
    mesh_layers: int = 1  # attention across patches (space)
    mesh_heads: int = 4
    mesh_ff_mult: int = 2  # the patch layers run on B*P tokens per frame: keep them lean
    motion_layers: int = 1  # causal attention across frames (time)
    motion_window: int = 30  # frames of history the motion encoder sees

    # --- face decoder ---------------------------------------------------------------------
    d_model: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_window: int = 60  # frames of past motion the decoder attends to
    align_radius: int = 4  # frame t attends audio frames t-4 .. t+4
    ff_mult: int = 4
    dropout: float = 0.1
    consistency_dim: int = 64
    sampling_passes: int = 2  # decoder passes used by scheduled sampling when tf_prob < 1
    # A dense layer to/from all V*3 coordinates with more weights than this is factorised
    # (engine.model.vertex_layers): keeps BIWI (23 370 vertices) under 10 M parameters while the
    # template (468) and VOCASET (5023) keep their dense layers. Rank 0 = the largest rank that fits.
    vertex_layer_budget: int = 3_500_000
    vertex_layer_rank: int = 0

    # --- ablation switches ---------------------------------------------------------------
    dual_task: bool = True  # lip-reading CTC on ground-truth and predicted motion
    consistency: bool = True  # cross-modal audio/motion consistency (+ InfoNCE)
    mesh_attention: bool = True  # False: one linear layer over flattened offsets
    emotion: bool = True  # False: emotion conditioning is ignored

    # --- loss weights ---------------------------------------------------------------------
    w_vertex: float = 1.0
    lip_weight: float = 3.0  # lip vertices count this many times in the vertex loss
    w_velocity: float = 5.0
    w_arkit: float = 10.0
    w_lip_gap: float = 0.5  # inner-lip opening, mm (engine.model.losses.lip_contact_losses)
    w_lip_contact: float = 1.0  # lips that touch in the ground truth must touch: closures and rest
    w_audio_ctc: float = 0.1
    w_lip_ctc: float = 0.1  # lip reading on ground-truth motion
    w_lip_ctc_pred: float = 0.05  # lip reading on predicted motion (the dual task's feedback)
    w_consistency: float = 0.5
    w_infonce: float = 0.1
    infonce_temperature: float = 0.1
    infonce_exclude: int = 2  # frames within +-2 of t are too alike to serve as InfoNCE negatives

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject configs that cannot build, with the field to change."""
        problems: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_TYPES[f.name]
            if kind is bool and not isinstance(value, bool):
                problems.append(f"{f.name} must be true/false, got {value!r}")
            elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"{f.name} must be an integer, got {value!r}")
            elif kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append(f"{f.name} must be a number, got {value!r}")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))
        for name in ("audio_dim", "patch_dim", "d_model"):
            heads = {
                "audio_dim": self.audio_heads,
                "patch_dim": self.mesh_heads,
                "d_model": self.decoder_heads,
            }[name]
            if heads < 1 or getattr(self, name) % heads:
                problems.append(f"{name}={getattr(self, name)} must be divisible by its head count {heads}")
        positive = (
            "n_vertices n_phones n_emotions style_dim n_arkit n_mels audio_dim mesh_patches patch_dim "
            "vertex_embed_dim d_model decoder_layers decoder_window motion_window ff_mult mesh_ff_mult "
            "consistency_dim sampling_passes vertex_layer_budget"
        ).split()
        problems += [f"{n} must be >= 1, got {getattr(self, n)}" for n in positive if getattr(self, n) < 1]
        non_negative = (
            "audio_layers mesh_layers motion_layers audio_window align_radius vertex_layer_rank".split()
        )
        problems += [
            f"{n} must be >= 0, got {getattr(self, n)}" for n in non_negative if getattr(self, n) < 0
        ]
        if self.mesh_patches > self.n_vertices:
            problems.append(f"mesh_patches={self.mesh_patches} exceeds n_vertices={self.n_vertices}")
        if self.n_vertices >= 1 and self.d_model >= 1 and self.vertex_layer_budget >= 1:
            from engine.model.vertex_layers import vertex_layer_rank

            if vertex_layer_rank(self, self.d_model) == -1:
                problems.append(
                    f"vertex_layer_budget={self.vertex_layer_budget} is too small for even a rank-1 layer "
                    f"over {self.n_vertices} vertices; raise it or set vertex_layer_rank"
                )
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.motion_scale <= 0 or self.infonce_temperature <= 0:
            problems.append("motion_scale and infonce_temperature must be > 0")
        if self.n_phones != len(VOCAB):
            problems.append(
                f"n_phones must be len(engine.phonemes.VOCAB) = {len(VOCAB)}, got {self.n_phones}"
            )
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown keys are an error (missing keys take their defaults)."""
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        if unknown:
            raise ValueError(
                f"unknown model config key(s) {unknown}; valid keys: {', '.join(sorted(_FIELD_TYPES))}"
            )
        values = dict(data)
        for name, kind in _FIELD_TYPES.items():  # JSON writes 1.0 as 1: accept ints for float fields
            if kind is float and isinstance(values.get(name), int) and not isinstance(values.get(name), bool):
                values[name] = float(values[name])
        return cls(**values)


_FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "bool": bool}[f.type] if isinstance(f.type, str) else f.type
    for f in fields(ModelConfig)
}
