"""Errors raised for user mistakes.

Every error a user can cause by passing something wrong is an :class:`InterpolantError`
(a ``ValueError``), with a message that says what is wrong and what to do. The command
line prints these as one line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class InterpolantError(ValueError):
    """A user-facing error: bad input, an unknown name, an unusable file."""


def unknown_name(kind: str, name: object, valid: Iterable[str]) -> InterpolantError:
    """The error for a name that is not one of ``valid`` (solver, grid, target, ...)."""
    choices = ", ".join(sorted(valid))
    return InterpolantError(f"unknown {kind} {name!r}; choose one of: {choices}")
