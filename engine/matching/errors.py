"""The matching package's error."""

from __future__ import annotations

from engine.errors import InputError


class MatchingError(InputError):
    """The matcher was given inconsistent input or driven out of order.

    Bad canonical frames name the frame, row and column; an inconsistent pass or
    evaluation result says what was expected and what was found.
    """
