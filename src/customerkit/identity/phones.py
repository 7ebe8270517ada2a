"""Phone numbers: validation and the normalised key (rules U4, M1).

Dealer data is messy: short local numbers are kept; libphonenumber decides what is a possible
number, and the key is E.164 where it can be.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import attrs
import phonenumbers

from customerkit.errors import CustomerKitError
from customerkit.identity._common import checked_as_typed, refuse
from customerkit.text import digits

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


def width_map(text: str) -> str:
    """Map full-width ASCII forms and the ideographic space to ASCII."""
    return "".join(
        chr(ord(ch) - 0xFEE0) if "\uff01" <= ch <= "\uff5e" else " " if ch == "\u3000" else ch
        for ch in text
    )


def split_extension(text: str) -> tuple[str, str]:
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
        raise refuse(
            field, f"the phone number is too long; use at most {_MAX_PHONE_LENGTH} characters"
        )
    # ASCII has nothing to width-map, and digits with ASCII punctuation need no per-character
    # look-ups: the loop below only explains what is wrong, so it runs for anything else.
    number, extension = split_extension(value if value.isascii() else width_map(value))
    international = number.startswith("+")
    body = number[1:] if international else number
    plain = _PLAIN_PHONE_BODY.fullmatch(body) is not None
    for ch in () if plain else body:
        if ch.isdecimal() or ch in _PHONE_PUNCTUATION or unicodedata.category(ch) == "Zs":
            continue
        if ch.isalpha():
            raise refuse(
                field,
                "type the digits instead of letters (vanity numbers are not accepted); "
                "an extension goes after x, ext or #",
            )
        raise refuse(
            field, f"remove characters that do not belong in a phone number; {_PHONE_EXAMPLE}"
        )
    if not body[:1].isdecimal() and body[:1] != "(":
        raise refuse(field, f"start the phone number with a digit, + or (; {_PHONE_EXAMPLE}")
    number_digits = body.translate(_DROP_ASCII_PUNCTUATION) if plain else digits(body)
    if len(number_digits) < MIN_PHONE_DIGITS:
        raise refuse(field, f"enter at least {MIN_PHONE_DIGITS} digits")
    if len(number_digits) > MAX_PHONE_DIGITS:
        raise refuse(field, f"enter at most {MAX_PHONE_DIGITS} digits before any extension")
    if len(extension) > _MAX_EXTENSION_DIGITS:
        raise refuse(field, f"use an extension of at most {_MAX_EXTENSION_DIGITS} digits")
    if international and _possible_e164("+" + number_digits, "ZZ") is None:
        raise refuse(
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
    return checked_as_typed(value, field, _parse_phone)


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


_NANP_REGIONS: Final = frozenset({"US", "CA"})
_SIMPLE_PHONE: Final = re.compile(
    r"(?P<number>\+?[0-9 ().\-]+?)\s*(?:(?:x|ext\.?|extension|\#)\s*[0-9]+)?", re.IGNORECASE
)
_NOT_DIGIT: Final = re.compile(r"[^0-9]+")


def _simple_digits(value: str) -> str | None:
    """The digits of a number written simply (see ``_SIMPLE_PHONE``), extension aside, or None."""
    # Most numbers are digits, spaces, brackets, dots and dashes: skip the regular expression.
    plain = value[1:] if value[0] == "+" else value
    # Chained replace() beats translate() and a regular expression here.
    plain = plain.replace(" ", "").replace("(", "").replace(")", "").replace(".", "")
    plain = plain.replace("-", "")
    if plain.isascii() and plain.isdigit():
        return plain
    simple = _SIMPLE_PHONE.fullmatch(value)
    return None if simple is None else _NOT_DIGIT.sub("", simple["number"])


def lenient_phone_number(value: str, region: str = "US") -> str:
    """``phone_key``'s number for stored data: a value it refuses keeps its digits (rule M1).

    ``""`` when a refused value has fewer than `MIN_PHONE_DIGITS` digits. A North-American
    number of ten digits (or eleven starting with 1) skips the parse: it becomes ``+1`` and its
    ten digits, as libphonenumber would make it.

    >>> lenient_phone_number("(303) 555-0142 x12"), lenient_phone_number("1.303.555.0142")
    ('+13035550142', '+13035550142')

    Raises:
        ValueError: ``region`` is not a region libphonenumber knows.
    """
    if not value:
        return ""
    number = _simple_digits(value) if region.upper() in _NANP_REGIONS else None
    if number is not None:
        if len(number) == 11 and number[0] == "1":
            number = number[1:]
        elif value[0] == "+":
            number = ""
        if len(number) == 10 and number[0] not in "01":
            return "+1" + number
    try:
        return phone_key(value, region=region).number
    except CustomerKitError:
        number = digits(value)
        return number if len(number) >= MIN_PHONE_DIGITS else ""
