"""Cancelling a take, shared by both backends (torch-free): the caller sets a threading.Event."""

from __future__ import annotations


class Cancelled(RuntimeError):
    """The caller's cancel event was set; nothing is returned."""


def check_cancel(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")
