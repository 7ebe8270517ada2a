"""Usernames: the canonical key, validation and suggestions (rules U1, U2, U4).

The key is RFC 8265 *UsernameCaseMapped* (``precis-i18n``) plus the checks rule U1 adds: length,
one script, nothing reserved or looking like it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from importlib.resources import files
from typing import Final

import precis_i18n

from customerkit.errors import ValidationError
from customerkit.identity._common import refuse
from customerkit.identity.phones import split_extension, width_map
from customerkit.text import ascii_fold, digits

#: Longest username, in code points of its canonical key (rule U1).
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


def _confusables() -> dict[str, str]:
    """Each look-alike character of ``confusables.txt`` and the Latin text it is read as."""
    table = {}
    text = (files("customerkit.identity") / "confusables.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            code, skeleton, _name = line.split(";")
            table[chr(int(code, 16))] = skeleton.strip()
    return table


# A small confusable skeleton (in the spirit of Unicode TS #39): Cyrillic and Greek letters that
# look like Latin ones, digits that look like letters, and the look-alike pairs m/rn, d/cl and
# i/l/1, listed in ``confusables.txt`` beside this module. Applied to a canonical (lower-case)
# key and to every reserved name; it only decides whether a username imitates a reserved one,
# so it errs on the side of mapping.
_SKELETON: Final = str.maketrans(_confusables())


def _skeleton(key: str) -> str:
    return key.translate(_SKELETON)


_RESERVED_SKELETONS: Final = frozenset(_skeleton(name) for name in RESERVED_USERNAMES)


def _script(ch: str) -> str | None:
    """The script among Latin, Cyrillic and Greek a letter belongs to, else ``None``."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    head = unicodedata.name(ch, "").split(" ", 1)[0]
    return head if head in _MIXABLE_SCRIPTS else None


def username_key(username: str, *, field: str = "username") -> str:
    r"""The canonical key of a username, for uniqueness (rule U1).

    The key is RFC 8265 *UsernameCaseMapped* (via ``precis-i18n``): surrounding whitespace
    trimmed (rule U4), full-width characters width-mapped, lower-cased, NFC. ``"Kevin"``, the same
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
        raise refuse(field, "enter a username")
    if len(typed) > _MAX_TYPED_USERNAME_LENGTH:
        raise refuse(field, f"use at most {MAX_USERNAME_LENGTH} characters")
    try:
        key = str(_USERNAME_PROFILE.enforce(typed))
    except UnicodeEncodeError as exc:
        raise refuse(field, _precis_message(exc)) from None
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
    """The checks rule U1 adds to the PRECIS profile, made on the canonical key."""
    if len(key) > MAX_USERNAME_LENGTH:
        raise refuse(field, f"use at most {MAX_USERNAME_LENGTH} characters")
    if unicodedata.category(key[0]).startswith("M"):
        raise refuse(field, "start the username with a letter, digit or punctuation mark")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in key):
        raise refuse(field, "include at least one letter or digit")
    scripts = {script for script in map(_script, key) if script is not None}
    if len(scripts) > 1:
        raise refuse(
            field,
            "use letters of one script only; Latin, Cyrillic and Greek letters that look "
            "alike cannot be mixed",
        )
    if key in RESERVED_USERNAMES or _skeleton(key) in _RESERVED_SKELETONS:
        raise refuse(field, "this username is reserved; choose another")


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
    number, _extension = split_extension(width_map(phone.strip()[:_MAX_SUGGESTION_INPUT]))
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
    raise refuse("username", "no free username could be suggested; choose one")


def _accepted(candidate: str) -> bool:
    try:
        username_key(candidate)
    except ValidationError:
        return False
    return True
