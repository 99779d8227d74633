"""The one error type of retargeting, so callers (Blender operators, CLI) can show its message as is."""

from __future__ import annotations


class RetargetError(ValueError):
    """A head cannot be retargeted as given; the message names the fix."""
