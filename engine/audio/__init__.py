"""Audio in: reading recordings (`io`), model features (`features`), training augmentation (`augment`)."""

from engine.audio.io import MODEL_SAMPLE_RATE, AudioError, load_audio

__all__ = ["MODEL_SAMPLE_RATE", "AudioError", "load_audio"]
