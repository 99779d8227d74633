"""The emotion vocabulary as the panel shows it (enum items whose values are the engine's ids)."""

from __future__ import annotations

from engine.emotions import EMOTIONS

EMOTION_NAMES: tuple[str, ...] = EMOTIONS

_DESCRIPTIONS = {
    "neutral": "No emotional colouring",
    "calm": "Relaxed, softer movements",
    "happy": "Smiling mouth corners, raised cheeks",
    "sad": "Lowered mouth corners, raised inner brows",
    "angry": "Lowered brows, pressed lips",
    "fearful": "Raised brows, stretched lips",
    "disgust": "Raised upper lip, wrinkled nose",
    "surprised": "Raised brows, wide eyes, dropped jaw",
}


def enum_items() -> list[tuple[str, str, str, int]]:
    return [
        (name.upper(), name.capitalize(), _DESCRIPTIONS.get(name, ""), i) for i, name in enumerate(EMOTIONS)
    ]
