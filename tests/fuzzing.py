"""Shared settings of the fuzz suite (tests/test_fuzz_*.py): seeded, no example database, bounded."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def fuzz(examples: int) -> settings:
    """Seeded (same examples every run), no example database on disk, bounded in size."""
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=examples,
        suppress_health_check=list(HealthCheck),
    )
