"""Passwords: the rules a new one must meet, and argon2id hashing (rule U3)."""

from __future__ import annotations

import logging
import secrets
import unicodedata
from typing import Final

import argon2

from customerkit.identity._common import has_surrogate, refuse

logger = logging.getLogger("customerkit.identity")

#: Fewest characters a password may have.
MIN_PASSWORD_LENGTH: Final = 8
#: Most characters a password may have (bounds the hashing work one request can cause).
MAX_PASSWORD_LENGTH: Final = 256

#: OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
OWASP_MINIMUM: Final = argon2.Parameters(
    type=argon2.Type.ID,
    version=argon2.low_level.ARGON2_VERSION,
    salt_len=16,
    hash_len=16,
    time_cost=2,
    memory_cost=19 * 1024,
    parallelism=1,
)


def check_password(value: str, *, field: str = "password") -> None:  # rule U3
    """Validate a new password: 8 to 256 characters, no NUL or unpaired surrogates.

    Passwords are not trimmed (unlike other text, rule U4): spaces are part of them. They are
    NFC-normalised before hashing, so the length counts NFC code points.

    Args:
        value: The password.
        field: The field name used in the error.

    Raises:
        ValidationError: The password is refused; the message never contains it.
    """
    if "\x00" in value or has_surrogate(value):
        raise refuse(field, "remove the NUL or invalid characters from the password")
    length = len(unicodedata.normalize("NFC", value))
    if not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH:
        raise refuse(
            field,
            f"use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters for the password",
        )


def _below_minimum(parameters: argon2.Parameters) -> bool:
    floor = OWASP_MINIMUM
    return (
        parameters.type is not argon2.Type.ID
        or parameters.memory_cost < floor.memory_cost
        or parameters.time_cost < floor.time_cost
        or parameters.parallelism < floor.parallelism
        or parameters.salt_len < floor.salt_len
        or parameters.hash_len < floor.hash_len
    )


class PasswordHasher:  # rule U3
    """Hash and verify passwords with argon2id.

    The default parameters are argon2-cffi's ``RFC_9106_LOW_MEMORY`` profile (64 MiB, t=3,
    p=4), above OWASP's minimum. Parameters below `OWASP_MINIMUM`, or another argon2
    variant, raise ``ValueError`` unless ``allow_insecure=True``: only `for_tests()` should
    pass it. Passwords are NFC-normalised (as RFC 8265's OpaqueString profile does) so the same
    password typed on different systems verifies. No password is ever kept, logged or shown
    in a ``repr``.

    Args:
        parameters: The argon2 parameters new hashes use; ``None`` for the default.
        allow_insecure: Accept parameters below the OWASP minimum (tests only).

    Raises:
        ValueError: The parameters are below the OWASP minimum and ``allow_insecure`` is false.
    """

    __slots__ = ("_dummy", "_hasher", "_parameters")

    def __init__(
        self, parameters: argon2.Parameters | None = None, *, allow_insecure: bool = False
    ) -> None:
        chosen = argon2.profiles.RFC_9106_LOW_MEMORY if parameters is None else parameters
        if _below_minimum(chosen) and not allow_insecure:
            msg = (
                "argon2 parameters are below OWASP's minimum (argon2id, m=19 MiB, t=2, p=1, "
                "16-byte salt and hash); raise them, or pass allow_insecure=True in tests only"
            )
            raise ValueError(msg)
        self._parameters = chosen
        self._hasher = argon2.PasswordHasher.from_parameters(chosen)
        self._dummy: str | None = None

    @classmethod
    def for_tests(cls) -> PasswordHasher:
        """A fast hasher with argon2-cffi's ``CHEAPEST`` profile; never use it in production."""
        return cls(argon2.profiles.CHEAPEST, allow_insecure=True)

    @property
    def parameters(self) -> argon2.Parameters:
        """The argon2 parameters new hashes use."""
        return self._parameters

    def __repr__(self) -> str:
        p = self._parameters
        return (
            f"PasswordHasher(type={p.type.name}, memory_cost={p.memory_cost}, "
            f"time_cost={p.time_cost}, parallelism={p.parallelism})"
        )

    def hash(self, password: str, *, field: str = "password") -> str:
        """Hash a new password after `check_password()`.

        Args:
            password: The password.
            field: The field name used in the error.

        Returns:
            The encoded argon2id hash (``$argon2id$v=19$m=...``), the only thing to store.

        Raises:
            ValidationError: The password is refused by `check_password()`.
        """
        check_password(password, field=field)
        return self._hasher.hash(unicodedata.normalize("NFC", password))

    def dummy_hash(self) -> str:
        """A hash of nobody's password, made once with this hasher's parameters.

        A login for an unknown username verifies against it: it then takes as long as a wrong
        password for a known one, so the time a login takes tells nobody which usernames exist.

        Returns:
            An encoded argon2 hash no password is known to match.
        """
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(32))
        return self._dummy

    def verify(self, hash: str, password: str) -> bool:  # noqa: A002 - the argon2 vocabulary
        """Whether ``password`` matches ``hash``.

        Never raises for a wrong password: a mismatch, an unusable password (unpaired
        surrogates) or a hash that cannot be parsed (logged, without the hash) give ``False``.

        Args:
            hash: An encoded argon2 hash, as `hash()` returned it.
            password: The password to check.

        Returns:
            ``True`` only when the password matches.
        """
        try:
            encoded = unicodedata.normalize("NFC", password).encode("utf-8")
        except UnicodeEncodeError:
            return False
        try:
            return self._hasher.verify(hash, encoded)
        except argon2.exceptions.InvalidHashError:
            logger.warning("a stored password hash is not a valid argon2 hash")
            return False
        except argon2.exceptions.VerificationError:
            return False

    def needs_rehash(self, hash: str) -> bool:  # noqa: A002 - the argon2 vocabulary
        """Whether ``hash`` was made with other parameters than this hasher's (rehash on login).

        Args:
            hash: An encoded argon2 hash.

        Returns:
            ``True`` when the hash's variant or parameters differ from `parameters`, or
            the hash cannot be parsed.
        """
        try:
            return self._hasher.check_needs_rehash(hash)
        except argon2.exceptions.InvalidHashError:
            return True
