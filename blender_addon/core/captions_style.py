"""How a caption looks: its colour says how well lips and audio agree, so artists know where to look."""

from __future__ import annotations

LOW_SYNC = 0.5  # below this the caption is red: the lip reader disagrees with the audio
GOOD_SYNC = 0.85  # above this it is green


def sync_colour(sync: float) -> tuple[float, float, float, float]:
    """Red below LOW_SYNC, green above GOOD_SYNC, through yellow in between (RGBA, linear 0..1)."""
    sync = min(max(float(sync), 0.0), 1.0)
    if sync <= LOW_SYNC:
        return (1.0, 0.25, 0.2, 1.0)
    if sync >= GOOD_SYNC:
        return (0.3, 1.0, 0.35, 1.0)
    t = (sync - LOW_SYNC) / (GOOD_SYNC - LOW_SYNC)
    if t < 0.5:
        return (1.0, 0.25 + 1.5 * t, 0.2, 1.0)  # red -> yellow
    return (1.0 - 1.4 * (t - 0.5), 1.0, 0.2 + 0.3 * (t - 0.5), 1.0)  # yellow -> green


def caption_label(text: str, sync: float) -> str:
    return f"{text}  [{round(100 * min(max(sync, 0.0), 1.0))}%]"
