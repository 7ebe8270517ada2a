"""What every identity field shares: how a refusal is made, and what no text may hold."""

from __future__ import annotations

from collections.abc import Callable

from customerkit.errors import ValidationError


def refuse(field: str, message: str) -> ValidationError:
    """The error refusing ``field``: its message says what to do and never repeats the value."""
    return ValidationError({field: message})


def checked_as_typed(value: str, field: str, check: Callable[[str, str], object]) -> str:
    """``value`` trimmed (rule U4), else as typed, once ``check(trimmed, field)`` accepts it.

    The empty string means "no value" and is not checked.
    """
    trimmed = value.strip()
    if trimmed:
        check(trimmed, field)
    return trimmed


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds an unpaired surrogate, which no encoding can store."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)
