"""The 8 RAVDESS emotions, the conditioning vocabulary of the decoder and the corpus."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
EMOTION_ID: dict[str, int] = {e: i for i, e in enumerate(EMOTIONS)}


def emotion_id(name: str) -> int:
    key = name.strip().lower()
    if key not in EMOTION_ID:
        raise ValueError(f"unknown emotion {name!r}; choose one of: {', '.join(EMOTIONS)}")
    return EMOTION_ID[key]
