"""Email addresses: validation and the canonical key (rules U4, K3, M1).

The syntax is email-validator's, without network look-ups; a fast path for plain addresses
gives the library's own verdict without its per-character work.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Final

import email_validator
from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM_LOCAL

from customerkit.errors import CustomerKitError
from customerkit.identity._common import checked_as_typed, refuse
from customerkit.text import fold

_EMAIL_MAX_LENGTH: Final = 254
_EMAIL_MAX_LOCAL_LENGTH: Final = 64
_EMAIL_EXAMPLE = "enter one address like name@example.com"
#: Distinct domains whose verdict is remembered (a few MiB; free-mail domains stay hot).
_EMAIL_DOMAIN_CACHE: Final = 65_536


def _library_validate(address: str) -> email_validator.ValidatedEmail:
    """email-validator with our options: syntax only, strict, no display names or quoting."""
    return email_validator.validate_email(
        address,
        check_deliverability=False,
        strict=True,
        allow_display_name=False,
        allow_quoted_local=False,
        allow_domain_literal=False,
        globally_deliverable=True,
    )


def _validated_email(value: str, field: str) -> tuple[str, str]:
    """Syntax-check a trimmed, non-empty address; return its local part and ASCII domain.

    Never looks anything up on the network. email-validator decides every address; the fast
    path below only skips work whose outcome the library has already given (see
    `_fast_email()`).
    """
    if len(value) > _EMAIL_MAX_LENGTH:
        raise refuse(field, f"the address is too long; use at most {_EMAIL_MAX_LENGTH} characters")
    # Printable ASCII holds no control, format or surrogate code point and no space but " ".
    plain = value.isascii() and value.isprintable()
    if not plain and any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise refuse(
            field,
            "remove line breaks, control and invalid characters; enter one address on one line",
        )
    if not plain and any(unicodedata.category(ch) == "Cf" for ch in value):
        raise refuse(field, "remove invisible characters and direction marks")
    if "<" in value or ">" in value:
        raise refuse(
            field, f"enter only the address, without a name or angle brackets; {_EMAIL_EXAMPLE}"
        )
    if "," in value or ";" in value:
        raise refuse(field, f"enter a single address; {_EMAIL_EXAMPLE}")
    if " " in value if plain else any(ch.isspace() for ch in value):
        raise refuse(field, f"remove the spaces; {_EMAIL_EXAMPLE}")
    fast = _fast_email(value)
    if fast is not None:
        return fast
    try:
        checked = _library_validate(value)
    except email_validator.EmailNotValidError as exc:
        # The library's message can quote characters of the address: never pass it on.
        text = str(exc)
        if "too long before" in text:
            message = "the part before the @ is too long; use at most 64 characters there"
        elif "too long" in text:
            message = f"the address is too long; use at most {_EMAIL_MAX_LENGTH} characters"
        elif "period" in text or "special-use" in text:
            message = "use a full internet domain after the @, such as example.com"
        else:
            message = _EMAIL_EXAMPLE
        raise refuse(field, message) from None
    return checked.local_part, checked.ascii_domain


def _fast_email(value: str) -> tuple[str, str] | None:
    """What email-validator returns for ``value`` when that is cheap to know, else ``None``.

    ``validate_email`` spends most of its time on the domain (IDNA, per-character Unicode
    checks) and on splitting the address character by character; in a bulk load the same
    domains come again and again. For a plain ASCII dot-atom local part (the library's own
    ``DOT_ATOM_TEXT``, at most 64 characters) the library's verdict on the address is its
    verdict on the domain plus its length checks, so the domain is validated once, by the
    library, as ``x@domain``, and remembered. Anything else (and every refusal) goes to the
    full ``validate_email``, which stays the authority; a property test compares both paths.
    """
    local, at, domain = value.partition("@")
    if not at or len(local) > _EMAIL_MAX_LOCAL_LENGTH or _DOT_ATOM_LOCAL.match(local) is None:
        return None
    checked = _domain_forms(domain)
    if checked is None:
        return None
    unicode_domain, ascii_domain = checked
    # The library's length checks: as given, normalised, and with the IDNA ASCII domain.
    longest = max(
        len(value.encode("utf-8")),
        len(local) + 1 + len(unicode_domain.encode("utf-8")),
        len(local) + 1 + len(ascii_domain),
    )
    if longest > _EMAIL_MAX_LENGTH:
        return None
    return local, ascii_domain


#: Lower-case letters, digits and inner hyphens in labels of 1-63, a dot, a letters-only TLD.
_PLAIN_DOMAIN: Final = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{1,63}", re.ASCII
)
_SPECIAL_USE_DOMAINS: Final = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
_DOMAIN_MAX_LENGTH: Final = 253


def _is_plain_domain(domain: str) -> bool:
    """Whether email-validator surely accepts ``domain`` as it is (most company domains).

    A lower-case host name (nothing for UTS-46 to map, no IDNA label: no ``--`` at all) with a
    letters-only top-level domain, within the length limits and outside the special-use names,
    passes every check of the library's domain validation unchanged; a new domain in a bulk
    load then costs a regular expression instead of ~100 µs. Anything else goes to the library.
    """
    if len(domain) > _DOMAIN_MAX_LENGTH or "--" in domain:
        return False
    if _PLAIN_DOMAIN.fullmatch(domain) is None:
        return False
    return not any(domain == d or domain.endswith("." + d) for d in _SPECIAL_USE_DOMAINS)


@functools.lru_cache(maxsize=_EMAIL_DOMAIN_CACHE)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The domain's normalised and ASCII forms, ``None`` if refused: once per domain.

    Company domains repeat across a bulk load's rows; the plain-domain check alone (a regular
    expression and the special-use names) cost more than the rest of a plain address's fast
    path.
    """
    return (domain, domain) if _is_plain_domain(domain) else _checked_domain(domain)


@functools.lru_cache(maxsize=_EMAIL_DOMAIN_CACHE)
def _checked_domain(domain: str) -> tuple[str, str] | None:
    """The normalised and ASCII forms email-validator gives ``domain``; ``None`` if refused."""
    try:
        checked = _library_validate("x@" + domain)
    except email_validator.EmailNotValidError:
        return None
    return checked.domain, checked.ascii_domain


def clean_email(value: str, *, field: str = "email") -> str:
    """Trim and validate an email address; return it as typed (rule U4).

    The syntax is checked with ``email-validator`` without any network look-up. Refused:
    display names and angle brackets (``"Bob <bob@x.com>"``), line breaks and other controls
    (header injection), NUL, several addresses, quoted local parts, IP-literal, dotless and
    special-use domains (``bob@localhost``, ``bob@x.test``), a local part over 64 characters, an
    address over 254. The empty string means "no email" and is returned as is.

    Args:
        value: The address as typed.
        field: The field name used in the error.

    Returns:
        The address without surrounding whitespace (its case and spelling kept), or ``""``.

    Raises:
        ValidationError: The address is refused; the message never repeats it.
    """
    return checked_as_typed(value, field, _validated_email)


def email_key(value: str, *, field: str = "email") -> str:
    """The canonical form of an email address, for duplicate checks (rules U4, K3, M1).

    ``local.casefold() + "@" + domain`` where the domain is its IDNA ASCII form in lower case:
    ``"Bob@Example.COM"`` and ``"bob@example.com"`` share a key, and so do ``"bob@exämple.com"``
    and ``"bob@xn--exmple-cua.com"``. Nothing provider-specific is rewritten: ``+tags`` and dots
    are kept. The key is idempotent and ``""`` (no email) has the key ``""``.

    Args:
        value: The address as typed.
        field: The field name used in the error.

    Returns:
        The canonical address.

    Raises:
        ValidationError: The address is refused (see `clean_email()`).

    >>> email_key(" Bob@Exämple.COM ")
    'bob@xn--exmple-cua.com'
    """
    trimmed = value.strip()
    if not trimmed:
        return ""
    local, ascii_domain = _validated_email(trimmed, field)
    # casefold() can leave text un-normalised; repeat until stable so the key is idempotent.
    for _ in range(4):
        folded = unicodedata.normalize("NFC", local.casefold())
        if folded == local:
            break
        local = folded
    return f"{local}@{ascii_domain.lower()}"


_SIMPLE_EMAIL: Final = re.compile(r"[^\s\"\[\]<>]+@[^\s\"\[\]<>@]+")


def lenient_email_key(value: str) -> str:
    """``email_key`` for stored data: an address it refuses is folded instead (rule M1).

    Matching compares what is stored, and data stored before a rule tightened (or imported
    from a DMS) must still match itself. A plain ASCII address skips the parse: its
    ``casefold`` is ``lower`` and its domain's IDNA form the domain lower-cased.

    >>> lenient_email_key("Bob@Example.COM"), lenient_email_key("not an address")
    ('bob@example.com', 'not an address')
    """
    if not value:
        return ""
    if value.isascii() and _SIMPLE_EMAIL.fullmatch(value):
        return value.lower()
    try:
        return email_key(value)
    except (CustomerKitError, ValueError):
        return fold(value)
