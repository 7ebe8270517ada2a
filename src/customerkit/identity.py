"""Identity fields: usernames, emails, phones and passwords (rules U1-U4).

Pure functions, no storage. Each field has a ``clean_*`` function that trims the value (U4),
validates it and returns what to store as typed, and a ``*_key`` function that computes the
canonical form used for uniqueness and matching. Keys are computed here, in Python, never by a
database's ``lower()``, so every backend agrees.

Every refusal is a [`ValidationError`][customerkit.ValidationError] mapping the field to a message
that says what to do. Messages never repeat the value: usernames, emails, phones and passwords
are personal data.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable
from typing import Final

import argon2
import attrs
import email_validator
import phonenumbers
import precis_i18n
from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM_LOCAL

from customerkit.errors import ValidationError
from customerkit.text import ascii_fold, digits

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
    "phone_key",
    "suggest_username",
    "username_key",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Usernames, rules U1 and U2
# ---------------------------------------------------------------------------------------------

#: Longest username, in code points of its canonical key (U1).
MAX_USERNAME_LENGTH: Final = 64
# Inputs longer than this are refused before canonicalisation: NFC composes at most four code
# points into one, so they can never fit MAX_USERNAME_LENGTH, and it bounds the work done.
_MAX_TYPED_USERNAME_LENGTH: Final = 4 * MAX_USERNAME_LENGTH

#: Usernames nobody may take (compared by canonical key and by confusable skeleton).
RESERVED_USERNAMES: Final[frozenset[str]] = frozenset(
    {
        ".well-known",
        "abuse",
        "admin",
        "administrator",
        "anonymous",
        "api",
        "autoconfig",
        "autodiscover",
        "hostmaster",
        "localhost",
        "mailer-daemon",
        "no-reply",
        "nobody",
        "noreply",
        "null",
        "postmaster",
        "root",
        "security",
        "superuser",
        "support",
        "sysadmin",
        "system",
        "webmaster",
        "www",
    }
)

_USERNAME_PROFILE: Final = precis_i18n.get_profile("UsernameCaseMapped")

_INVISIBLE = "remove invisible characters and direction marks (zero-width, bidi controls)"
_UNUSUAL = "remove unusual characters; use letters, digits and ASCII punctuation"
# precis-i18n reports why it refused a code point as "DISALLOWED/<reason>".
_PRECIS_MESSAGES: Final[dict[str, str]] = {
    "empty": "enter a username",
    "spaces": "remove the spaces; a username is one word without spaces",
    "controls": "remove control characters such as line breaks, tabs or NUL",
    "has_compat": (
        "use ordinary letters and digits instead of compatibility forms "
        "(superscripts, ligatures, Roman numerals, styled or circled letters)"
    ),
    "precis_ignorable_properties": _INVISIBLE,
    "zero_width_joiner": _INVISIBLE,
    "zero_width_nonjoiner": _INVISIBLE,
    "bidi_rule": "do not mix right-to-left and left-to-right text or start with a digit or mark",
    "unassigned": "remove characters that are not assigned in Unicode",
    "symbols": "remove symbols such as emoji; use letters, digits and ASCII punctuation",
    "punctuation": "remove non-ASCII punctuation; use letters, digits and ASCII punctuation",
}

_MIXABLE_SCRIPTS: Final = ("LATIN", "CYRILLIC", "GREEK")

# A small confusable skeleton (in the spirit of Unicode TS #39): Cyrillic and Greek letters that
# look like Latin ones, digits that look like letters, and the look-alike pairs m/rn, d/cl and
# i/l/1. Applied to a canonical (lower-case) key and to every reserved name; it only decides
# whether a username imitates a reserved one, so it errs on the side of mapping.
_SKELETON: Final = str.maketrans(
    {
        # Latin look-alikes
        "0": "o",
        "1": "l",
        "i": "l",
        "|": "l",
        "\u0131": "l",  # latin small letter dotless i
        "\u0269": "l",  # latin small letter iota
        "\u0237": "j",  # latin small letter dotless j
        "\u0251": "a",  # latin small letter alpha
        "\u0261": "g",  # latin small letter script g
        "m": "rn",
        "d": "cl",
        # Cyrillic
        "\u0430": "a",  # cyrillic small letter a
        "\u0432": "b",  # cyrillic small letter ve
        "\u0435": "e",  # cyrillic small letter ie
        "\u04bb": "h",  # cyrillic small letter shha
        "\u043d": "h",  # cyrillic small letter en
        "\u0456": "l",  # cyrillic small letter byelorussian-ukrainian i
        "\u04cf": "l",  # cyrillic small letter palochka
        "\u0458": "j",  # cyrillic small letter je
        "\u043a": "k",  # cyrillic small letter ka
        "\u043c": "rn",  # cyrillic small letter em
        "\u043e": "o",  # cyrillic small letter o
        "\u043f": "n",  # cyrillic small letter pe
        "\u0440": "p",  # cyrillic small letter er
        "\u0441": "c",  # cyrillic small letter es
        "\u0442": "t",  # cyrillic small letter te
        "\u0443": "y",  # cyrillic small letter u
        "\u04af": "y",  # cyrillic small letter straight u
        "\u0445": "x",  # cyrillic small letter ha
        "\u0455": "s",  # cyrillic small letter dze
        "\u044c": "b",  # cyrillic small letter soft sign
        "\u0501": "cl",  # cyrillic small letter komi de
        "\u051b": "q",  # cyrillic small letter qa
        "\u051d": "w",  # cyrillic small letter we
        # Greek
        "\u03b1": "a",  # greek small letter alpha
        "\u03b2": "b",  # greek small letter beta
        "\u03b3": "y",  # greek small letter gamma
        "\u03b5": "e",  # greek small letter epsilon
        "\u03b7": "n",  # greek small letter eta
        "\u03b9": "l",  # greek small letter iota
        "\u03ba": "k",  # greek small letter kappa
        "\u03bc": "u",  # greek small letter mu
        "\u03bd": "v",  # greek small letter nu
        "\u03bf": "o",  # greek small letter omicron
        "\u03c1": "p",  # greek small letter rho
        "\u03c2": "c",  # greek small letter final sigma
        "\u03f2": "c",  # greek lunate sigma symbol
        "\u03c4": "t",  # greek small letter tau
        "\u03c5": "u",  # greek small letter upsilon
        "\u03c7": "x",  # greek small letter chi
        "\u03c9": "w",  # greek small letter omega
        "\u03f3": "j",  # greek letter yot
    }
)


def _skeleton(key: str) -> str:
    return key.translate(_SKELETON)


_RESERVED_SKELETONS: Final = frozenset(_skeleton(name) for name in RESERVED_USERNAMES)


def _refuse(field: str, message: str) -> ValidationError:
    return ValidationError({field: message})


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _script(ch: str) -> str | None:
    """The script among Latin, Cyrillic and Greek a letter belongs to, else ``None``."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    head = unicodedata.name(ch, "").split(" ", 1)[0]
    return head if head in _MIXABLE_SCRIPTS else None


def username_key(username: str, *, field: str = "username") -> str:
    r"""The canonical key of a username, for uniqueness (rule U1).

    The key is RFC 8265 *UsernameCaseMapped* (via ``precis-i18n``): surrounding whitespace
    trimmed (U4), full-width characters width-mapped, lower-cased, NFC. ``"Kevin"``, the same
    with U+212A KELVIN SIGN, and with a full-width K (U+FF2B) share the key ``"kevin"``;
    ``"Straße"`` and ``"strasse"`` do not (no case folding of ß). The key is idempotent:
    ``username_key(username_key(x)) == username_key(x)`` for every accepted ``x``.

    Besides what the PRECIS profile refuses (interior spaces, controls and NUL, zero-width and
    bidi marks, compatibility characters such as superscript letters, the ligature U+FB01 or
    the Roman numeral U+217B, unassigned code points), a username is refused when its key

    * is longer than `MAX_USERNAME_LENGTH` code points;
    * has no letter or digit, or starts with a combining mark;
    * mixes Latin, Cyrillic and Greek letters ("admin" spelled with a Cyrillic U+0430);
    * is a reserved name (`RESERVED_USERNAMES`) or looks like one (``"r00t"``, or
      "system" spelled in Cyrillic letters).

    Args:
        username: The username as typed.
        field: The field name used in the error.

    Returns:
        The canonical key: what two usernames must differ in to be distinct.

    Raises:
        ValidationError: The username is refused; the message says why and never repeats it.

    >>> username_key(" \uff2bevin ")
    'kevin'
    """
    typed = username.strip()
    if not typed:
        raise _refuse(field, "enter a username")
    if len(typed) > _MAX_TYPED_USERNAME_LENGTH:
        raise _refuse(field, f"use at most {MAX_USERNAME_LENGTH} characters")
    try:
        key = str(_USERNAME_PROFILE.enforce(typed))
    except UnicodeEncodeError as exc:
        raise _refuse(field, _precis_message(exc)) from None
    _check_username_key(key, field)
    return key


def _precis_message(exc: UnicodeEncodeError) -> str:
    """What to do about the code point precis-i18n refused, without naming it."""
    refused = str(exc.object)[exc.start : exc.start + 1]
    if refused and "\ud800" <= refused <= "\udfff":
        return "the username holds an invalid (unpaired surrogate) code point; type it again"
    if refused and unicodedata.category(refused) == "Zs":
        return _PRECIS_MESSAGES["spaces"]
    reason = str(exc.reason).rpartition("/")[2]
    if reason == "bidi_rule" and any(unicodedata.category(ch) == "Cf" for ch in str(exc.object)):
        return _INVISIBLE
    return _PRECIS_MESSAGES.get(reason, _UNUSUAL)


def _check_username_key(key: str, field: str) -> None:
    """The checks U1 adds to the PRECIS profile, made on the canonical key."""
    if len(key) > MAX_USERNAME_LENGTH:
        raise _refuse(field, f"use at most {MAX_USERNAME_LENGTH} characters")
    if unicodedata.category(key[0]).startswith("M"):
        raise _refuse(field, "start the username with a letter, digit or punctuation mark")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in key):
        raise _refuse(field, "include at least one letter or digit")
    scripts = {script for script in map(_script, key) if script is not None}
    if len(scripts) > 1:
        raise _refuse(
            field,
            "use letters of one script only; Latin, Cyrillic and Greek letters that look "
            "alike cannot be mixed",
        )
    if key in RESERVED_USERNAMES or _skeleton(key) in _RESERVED_SKELETONS:
        raise _refuse(field, "this username is reserved; choose another")


def clean_username(username: str, *, field: str = "username") -> str:
    """Trim and validate a username; return it to store as typed (rules U1, U4).

    Args:
        username: The username as typed.
        field: The field name used in the error.

    Returns:
        The username without surrounding whitespace; store its `username_key()` beside it.

    Raises:
        ValidationError: The username is refused (see `username_key()`).
    """
    username_key(username, field=field)
    return username.strip()


#: How many ``-2``, ``-3``, ... suffixes `suggest_username()` tries before giving up.
_MAX_SUGGESTION_ATTEMPTS: Final = 10_000
_MAX_SUGGESTION_NAME: Final = 48
_MAX_SUGGESTION_INPUT: Final = 256
_FALLBACK_USERNAME: Final = "customer"


def suggest_username(first: str, last: str, phone: str, is_taken: Callable[[str], bool]) -> str:
    """Suggest a free username from a person's name and phone (rule U2).

    First initial + last name + the last four digits of the phone number (its extension left
    aside), ASCII-folded (other scripts transliterated: "Søstergaard" gives ``sostergaard``,
    "Иван Петров" ``ipetrov``), lower case, anything but ``a-z0-9`` dropped. When nothing usable
    is left of the names (no letters, or the result is refused, e.g. reserved), the name part
    is ``"customer"``. When ``is_taken(candidate)`` is true, ``-2``, ``-3``, ... are appended
    until it is free. Every candidate is its own canonical key, so ``is_taken`` may compare it
    with stored keys directly. The result is always accepted by `username_key()`.

    Args:
        first: First name.
        last: Last name.
        phone: Phone number as typed (may be empty or messy; it is not validated here).
        is_taken: Whether a candidate's key is already used.

    Returns:
        The first candidate ``is_taken`` says is free.

    Raises:
        ValidationError: ``is_taken`` said 10,000 candidates in a row were taken.

    >>> suggest_username("José", "García-López", "+1 (303) 555-0142", lambda _: False)
    'jgarcialopez0142'
    """
    # Inputs are cut first: a name or phone longer than this is garbage, and this bounds work.
    number, _extension = _split_extension(_width_map(phone.strip()[:_MAX_SUGGESTION_INPUT]))
    tail = digits(number)[-4:]
    initial = ascii_fold(first[:_MAX_SUGGESTION_INPUT])[:1]
    name = (initial + ascii_fold(last[:_MAX_SUGGESTION_INPUT]))[:_MAX_SUGGESTION_NAME]
    base = name + tail
    if not name or not _accepted(base):
        base = _FALLBACK_USERNAME + tail
    candidate = base
    for n in range(2, _MAX_SUGGESTION_ATTEMPTS + 2):
        if not is_taken(candidate):
            return candidate
        candidate = f"{base}-{n}"
    raise _refuse("username", "no free username could be suggested; choose one")


def _accepted(candidate: str) -> bool:
    try:
        username_key(candidate)
    except ValidationError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Emails, rule U4
# ---------------------------------------------------------------------------------------------

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
        raise _refuse(field, f"the address is too long; use at most {_EMAIL_MAX_LENGTH} characters")
    # Printable ASCII holds no control, format or surrogate code point and no space but " ".
    plain = value.isascii() and value.isprintable()
    if not plain and any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise _refuse(
            field,
            "remove line breaks, control and invalid characters; enter one address on one line",
        )
    if not plain and any(unicodedata.category(ch) == "Cf" for ch in value):
        raise _refuse(field, "remove invisible characters and direction marks")
    if "<" in value or ">" in value:
        raise _refuse(
            field, f"enter only the address, without a name or angle brackets; {_EMAIL_EXAMPLE}"
        )
    if "," in value or ";" in value:
        raise _refuse(field, f"enter a single address; {_EMAIL_EXAMPLE}")
    if " " in value if plain else any(ch.isspace() for ch in value):
        raise _refuse(field, f"remove the spaces; {_EMAIL_EXAMPLE}")
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
        raise _refuse(field, message) from None
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
    checked = (domain, domain) if _is_plain_domain(domain) else _checked_domain(domain)
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
    trimmed = value.strip()
    if trimmed:
        _validated_email(trimmed, field)
    return trimmed


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


# ---------------------------------------------------------------------------------------------
# Phones, rule U4
# ---------------------------------------------------------------------------------------------

#: Fewest digits a phone number (without extension) may have.
MIN_PHONE_DIGITS: Final = 4
#: Most digits a phone number (without extension) may have.
MAX_PHONE_DIGITS: Final = 20
_MAX_EXTENSION_DIGITS: Final = 10
_MAX_PHONE_LENGTH: Final = 64

_PHONE_PUNCTUATION: Final = frozenset(" -.()/\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_TEL_PREFIX: Final = re.compile(r"tel:\s*", re.IGNORECASE)
_EXTENSION: Final = re.compile(
    r"(?P<number>.*?)\s*(?:(?:;ext=|extension|ext\.?|x|\#)\s*(?P<extension>\d+))?\s*",
    re.IGNORECASE | re.DOTALL,
)
_PHONE_EXAMPLE = "enter digits with optional + - . ( ) / and an extension like x123"
#: ASCII digits and the ASCII members of _PHONE_PUNCTUATION (space is the only ASCII Zs).
_PLAIN_PHONE_BODY: Final = re.compile(r"[0-9 ().\-/]*")
_PLAIN_PHONE: Final = re.compile(r"[0-9 ().\-/+]*")
_DROP_ASCII_PUNCTUATION: Final = str.maketrans("", "", " ().-/")


def _width_map(text: str) -> str:
    """Map full-width ASCII forms and the ideographic space to ASCII."""
    return "".join(
        chr(ord(ch) - 0xFEE0) if "\uff01" <= ch <= "\uff5e" else " " if ch == "\u3000" else ch
        for ch in text
    )


def _split_extension(text: str) -> tuple[str, str]:
    """Split a width-mapped phone into its number and extension (``tel:`` prefix dropped)."""
    if _PLAIN_PHONE.fullmatch(text):
        # No letter, '#' or ';': neither a tel: prefix nor an extension marker can be there.
        return text.rstrip(" "), ""
    text = _TEL_PREFIX.sub("", text, count=1) if _TEL_PREFIX.match(text) else text
    match = _EXTENSION.fullmatch(text)
    if match is None:  # pragma: no cover - the pattern matches every string
        return text, ""
    return match["number"], match["extension"] or ""


def _parse_phone(value: str, field: str) -> tuple[bool, str, str]:
    """Validate a trimmed, non-empty phone; return (international, number digits, extension)."""
    if len(value) > _MAX_PHONE_LENGTH:
        raise _refuse(
            field, f"the phone number is too long; use at most {_MAX_PHONE_LENGTH} characters"
        )
    # ASCII has nothing to width-map, and digits with ASCII punctuation need no per-character
    # look-ups: the loop below only explains what is wrong, so it runs for anything else.
    number, extension = _split_extension(value if value.isascii() else _width_map(value))
    international = number.startswith("+")
    body = number[1:] if international else number
    plain = _PLAIN_PHONE_BODY.fullmatch(body) is not None
    for ch in () if plain else body:
        if ch.isdecimal() or ch in _PHONE_PUNCTUATION or unicodedata.category(ch) == "Zs":
            continue
        if ch.isalpha():
            raise _refuse(
                field,
                "type the digits instead of letters (vanity numbers are not accepted); "
                "an extension goes after x, ext or #",
            )
        raise _refuse(
            field, f"remove characters that do not belong in a phone number; {_PHONE_EXAMPLE}"
        )
    if not body[:1].isdecimal() and body[:1] != "(":
        raise _refuse(field, f"start the phone number with a digit, + or (; {_PHONE_EXAMPLE}")
    number_digits = body.translate(_DROP_ASCII_PUNCTUATION) if plain else digits(body)
    if len(number_digits) < MIN_PHONE_DIGITS:
        raise _refuse(field, f"enter at least {MIN_PHONE_DIGITS} digits")
    if len(number_digits) > MAX_PHONE_DIGITS:
        raise _refuse(field, f"enter at most {MAX_PHONE_DIGITS} digits before any extension")
    if len(extension) > _MAX_EXTENSION_DIGITS:
        raise _refuse(field, f"use an extension of at most {_MAX_EXTENSION_DIGITS} digits")
    if international and _possible_e164("+" + number_digits, "ZZ") is None:
        raise _refuse(
            field,
            "check the country code and number: after + enter the full international number",
        )
    return international, number_digits, digits(extension)


def _e164(number: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _possible_e164(number: str, region: str) -> str | None:
    """E.164 of ``number`` when libphonenumber finds it a possible number, else ``None``.

    Only an E.164 form that reads back as itself counts (a national prefix inside a short
    number can make it shrink on every parse), so keys stay idempotent.
    """
    e164 = _e164(number, region)
    if e164 is None:
        return None
    # Parsing is deterministic: a number already in its E.164 form reads back as itself.
    if e164 != number and _e164(e164, region) != e164:
        return None
    return e164


def clean_phone(value: str, *, field: str = "phone") -> str:
    """Trim and validate a phone number; return it as typed (rule U4).

    Accepted characters: digits (full-width and other decimal digits too), spaces, ``+`` (first
    only), ``- . ( ) /`` and dashes, an optional ``tel:`` prefix, and one extension at the end
    marked ``x``, ``ext``, ``ext.``, ``extension``, ``#`` or ``;ext=``. Refused:

    * a value without digits or with fewer than `MIN_PHONE_DIGITS` (``"12"``), more than
      `MAX_PHONE_DIGITS` digits before the extension, or an extension over 10 digits;
    * letters outside the extension marker: vanity numbers such as ``"1-800-FLOWERS"`` are
      refused by policy, because the letters are ambiguous data and hide the number from
      matching; type the digits instead;
    * anything else that is not phone punctuation (``"=1+1"``), and a value starting with
      anything but a digit, ``+`` or ``(`` (``"-1234"``), so no formula reaches an export;
    * a number written with ``+`` that libphonenumber cannot read as a possible international
      number (``"+999 123"``).

    Dealer data is messy: a short local number such as ``"5550142"`` is kept.
    The empty string means "no phone" and is returned as is.

    Args:
        value: The phone number as typed.
        field: The field name used in the error.

    Returns:
        The phone without surrounding whitespace, otherwise as typed, or ``""``.

    Raises:
        ValidationError: The phone is refused; the message never repeats it.
    """
    trimmed = value.strip()
    if trimmed:
        _parse_phone(trimmed, field)
    return trimmed


@attrs.frozen(kw_only=True)
class PhoneKey:
    """The normalised form of a phone number, for matching (rules U4, M1).

    Attributes:
        number: E.164 (``"+13035550142"``) when libphonenumber reads the number as possible in
            the default region, else its ASCII digits (``"5550142"``); ``""`` for no phone.
        extension: The extension's ASCII digits, or ``""``.
    """

    number: str
    extension: str = ""

    def __str__(self) -> str:
        """The key as RFC 3966-style text, which `phone_key()` maps back to this key."""
        return f"{self.number};ext={self.extension}" if self.extension else self.number


def phone_key(value: str, *, region: str = "US", field: str = "phone") -> PhoneKey:
    """The normalised form of a phone number (rule U4).

    ``"+49 (0)30 1234567"``, ``"030 1234567"`` (region ``"DE"``), ``"tel:+49-30-1234567"`` and
    the same in full-width digits all give ``PhoneKey(number="+49301234567")``. A number that
    is not possible in ``region`` keeps its digits (``"5550142"``). Deterministic and idempotent:
    ``phone_key(str(k), region=r) == k`` for ``k = phone_key(x, region=r)``.

    Args:
        value: The phone number as typed.
        region: ISO 3166 region assumed for numbers written without ``+``.
        field: The field name used in the error.

    Returns:
        The key; ``PhoneKey(number="")`` for an empty value.

    Raises:
        ValidationError: The phone is refused (see `clean_phone()`).
        ValueError: ``region`` is not a region libphonenumber knows.

    >>> str(phone_key("+1 (303) 555-0142 ext. 12"))
    '+13035550142;ext=12'
    """
    region_code = region.upper()
    if region_code not in phonenumbers.SUPPORTED_REGIONS:
        msg = f"unknown phone region {region!r}; use an ISO 3166 code such as 'US' or 'DE'"
        raise ValueError(msg)
    trimmed = value.strip()
    if not trimmed:
        return PhoneKey(number="")
    international, number_digits, extension = _parse_phone(trimmed, field)
    number = ("+" if international else "") + number_digits
    e164 = _possible_e164(number, region_code)
    return PhoneKey(number=number_digits if e164 is None else e164, extension=extension)


# ---------------------------------------------------------------------------------------------
# Passwords, rule U3
# ---------------------------------------------------------------------------------------------

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


def check_password(value: str, *, field: str = "password") -> None:
    """Validate a new password (rule U3): 8 to 256 characters, no NUL or unpaired surrogates.

    Passwords are not trimmed (unlike other text, U4): spaces are part of them. They are
    NFC-normalised before hashing, so the length counts NFC code points.

    Args:
        value: The password.
        field: The field name used in the error.

    Raises:
        ValidationError: The password is refused; the message never contains it.
    """
    if "\x00" in value or _has_surrogate(value):
        raise _refuse(field, "remove the NUL or invalid characters from the password")
    length = len(unicodedata.normalize("NFC", value))
    if not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH:
        raise _refuse(
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


class PasswordHasher:
    """Hash and verify passwords with argon2id (rule U3).

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
