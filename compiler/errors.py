"""Exceptions that carry a located diagnostic out of a backend.

A backend that cannot express a construct raises `EmitError` with the diagnostic that says
so (E06xx); the driver renders it like any front-end error. Defined here, not in a backend,
so that each backend can raise it without importing another.
"""
from __future__ import annotations

from .diagnostics import Diagnostic


class EmitError(Exception):
    """A construct a backend cannot express faithfully; carries the diagnostic."""

    def __init__(self, diag: Diagnostic) -> None:
        super().__init__(diag.message)
        self.diag = diag
