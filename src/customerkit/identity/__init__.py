"""Identity fields: usernames, emails, phones and passwords (rules U1-U4).

Pure functions, no storage. Each field has a ``clean_*`` function that trims the value (rule U4),
validates it and returns what to store as typed, and a ``*_key`` function that computes the
canonical form used for uniqueness and matching. Keys are computed here, in Python, never by a
database's ``lower()``, so every backend agrees. Emails and phones also have a lenient key for
stored data, which gives a refused value a key instead of an error.

Every refusal is a [`ValidationError`][customerkit.ValidationError] mapping the field to a message
that says what to do. Messages never repeat the value: usernames, emails, phones and passwords
are personal data.

One module per field: `usernames`, `emails`, `phones`, `passwords`; their public names are
all importable from here.
"""

from __future__ import annotations

from customerkit.identity.emails import clean_email, email_key, lenient_email_key
from customerkit.identity.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    OWASP_MINIMUM,
    PasswordHasher,
    check_password,
)
from customerkit.identity.phones import (
    MAX_PHONE_DIGITS,
    MIN_PHONE_DIGITS,
    PhoneKey,
    clean_phone,
    lenient_phone_number,
    phone_key,
)
from customerkit.identity.usernames import (
    MAX_USERNAME_LENGTH,
    RESERVED_USERNAMES,
    clean_username,
    suggest_username,
    username_key,
)

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MAX_PHONE_DIGITS",
    "MAX_USERNAME_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "MIN_PHONE_DIGITS",
    "OWASP_MINIMUM",
    "RESERVED_USERNAMES",
    "PasswordHasher",
    "PhoneKey",
    "check_password",
    "clean_email",
    "clean_phone",
    "clean_username",
    "email_key",
    "lenient_email_key",
    "lenient_phone_number",
    "phone_key",
    "suggest_username",
    "username_key",
]
