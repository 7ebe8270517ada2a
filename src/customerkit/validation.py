"""Field validation shared by every service: trim, refuse what no field may hold, check lengths.

Rule U4: surrounding whitespace is trimmed from every text field before validation and storage.
A ``FieldErrors`` collects the problems of one call so they are reported together (C1).
Messages name the field and never repeat its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from customerkit import identity
from customerkit.errors import CustomerKitError, ValidationError

T = TypeVar("T")
P = ParamSpec("P")

#: Words that make a column name a secret's (``password``, ``User PIN``, ``api_token``, ...).
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passcode",
        "passphrase",
        "pin",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "otp",
        "cvv",
        "hash",
        "salt",
    }
)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def is_secret_name(name: str) -> bool:
    """Whether a field name looks like a secret's: one of its words is in ``SECRET_WORDS``.

    Words are split at separators and case changes (``userPassword``, ``API_TOKEN``), and the
    whole name is tried joined too (``apikey``, ``api-key``).
    """
    words = [word.casefold() for word in _NAME_WORDS.findall(name)]
    return any(w in SECRET_WORDS for w in words) or "".join(words) in SECRET_WORDS


#: Longest value, in code points, of each text field.
MAX_LENGTH: dict[str, int] = {
    "company_name": 200,
    "customer_number": 64,
    "address_line1": 200,
    "address_line2": 200,
    "city": 100,
    "state": 100,
    "postal_code": 32,
    "country": 100,
    "email": 254,
    "phone": 64,
    "phone_extension": 16,
    "fax": 64,
    "first_name": 100,
    "last_name": 100,
    "title": 100,
    "company_type": 100,
    "category": 100,
    "one_time_case_id": 100,
    "extra": 1000,
}
DEFAULT_MAX_LENGTH = 200


class FieldErrors:
    """Collects field errors and raises them together as one ``ValidationError``."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        """Record a problem (the first one per field wins)."""
        self.errors.setdefault(field, message)

    def check(self, field: str, clean: Callable[[], T], default: T) -> T:
        """Run a cleaning function, recording its error against ``field``."""
        try:
            return clean()
        except ValidationError as error:
            self.add(field, error.errors.get(field) or next(iter(error.errors.values())))
        except CustomerKitError as error:
            self.add(field, error.message)
        return default

    def run(
        self, field: str, default: T, clean: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like ``check``, calling ``clean(*args, **kwargs)`` (no closure per call)."""
        try:
            return clean(*args, **kwargs)
        except ValidationError as error:
            self.add(field, error.errors.get(field) or next(iter(error.errors.values())))
        except CustomerKitError as error:
            self.add(field, error.message)
        return default

    def raise_if_any(self) -> None:
        """Raise the collected errors, if any."""
        if self.errors:
            raise ValidationError(self.errors)


_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls other than tab, LF and CR (those are judged by the multiline rule).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile("[\t\n\r]")


def _bad_character(value: str) -> str | None:
    if _SURROGATE.search(value):
        return "contains a lone surrogate, which no text can hold"
    if "\x00" in value:
        return "contains a NUL character"
    if _CONTROL.search(value):
        return "contains a control character"
    return None


def clean_text(value: Any, field: str, *, multiline: bool = False) -> str:
    """Trim a text field and refuse values no field may hold (U4).

    Raises:
        ValidationError: not a string, a NUL, a lone surrogate, a control character (line breaks
            and tabs too unless ``multiline``), or longer than the field allows.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field: "must be text"})
    text: str = value.strip()
    # Printable text has no surrogate, control character, tab or line break: nothing to find.
    if not text.isprintable():
        problem = _bad_character(text)
        if problem is None and not multiline and _LINE_BREAK.search(text):
            problem = "must be on one line"
        if problem is not None:
            raise ValidationError({field: f"{problem}; remove it and try again"})
    limit = MAX_LENGTH.get(field, DEFAULT_MAX_LENGTH)
    if len(text) > limit:
        raise ValidationError({field: f"is longer than {limit} characters; shorten it"})
    return text


def clean_optional(value: Any, field: str) -> str | None:
    """Like ``clean_text``, but blank becomes ``None``."""
    return clean_text(value, field) or None


def clean_email_field(value: Any, field: str = "email") -> str:
    """Trim and validate an email (U4); blank stays blank."""
    return identity.clean_email(clean_text(value, field), field=field)


def clean_phone_field(value: Any, field: str = "phone") -> str:
    """Trim and validate a phone number (U4); blank stays blank."""
    return identity.clean_phone(clean_text(value, field), field=field)
