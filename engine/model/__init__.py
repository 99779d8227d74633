"""The DualFace network (audio encoder, Mesh Attention, face decoder, lip reader) and its losses."""

from engine.model.config import ModelConfig
from engine.model.dualface import DualFace, GenerationState
from engine.model.losses import dual_losses

__all__ = ["DualFace", "GenerationState", "ModelConfig", "dual_losses"]
