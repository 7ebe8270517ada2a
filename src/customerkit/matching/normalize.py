"""Matching keys: the one place where names, companies, addresses, emails and phones are normalised.

Every function takes a value as typed (already trimmed, ``""`` for missing) and returns a key
where ``""`` still means missing. Keys are plain strings so that batch matching, the incremental
index and the tests compare exactly the same things (rule M1).

Emails and phones use the lenient keys of ``customerkit.identity`` (``lenient_email_key``,
``lenient_phone_number``): a value the strict keys refuse (messy dealer data) still gets a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache, partial
from typing import Final

from customerkit.data.nicknames import NICKNAME_GROUPS, NICKNAMES
from customerkit.identity import lenient_email_key, lenient_phone_number
from customerkit.matching.column import Column
from customerkit.text import digits, fold, number_key

__all__ = [
    "ADDRESS_KEYS",
    "CONTACT_KEYS",
    "CUSTOMER_KEYS",
    "address_key",
    "company_key",
    "customer_number_key",
    "date_key",
    "email_key",
    "extra_column",
    "full_name_key",
    "given_name_key",
    "identifier_key",
    "is_nickname",
    "normalize_columns",
    "person_name_key",
    "phone_number_key",
    "place_key",
    "postal_key",
]

_APOSTROPHES: Final = re.compile("['\u2019\u02bc\u2018`\u00b4]")
_TOKEN: Final = re.compile(r"[^\W_]+")


def _without_apostrophes(text: str) -> str:
    # Most text has none: two substring tests are much cheaper than the substitution.
    if text.isascii() and "'" not in text and "`" not in text:
        return text
    return _APOSTROPHES.sub("", text)


def _tokens(text: str) -> list[str]:
    """Folded words of ``text``: apostrophes join ("O'Brien" is one word), anything else splits."""
    return _TOKEN.findall(_without_apostrophes(fold(text)))


# --- people ------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def person_name_key(value: str) -> str:
    """A person's name as folded words joined by one space.

    >>> person_name_key("  O'Brien-Smith ")
    'obrien smith'
    """
    return " ".join(_tokens(value))


def _canonical_given_names() -> Mapping[str, str]:
    """Every nickname -> the formal name of its group (alphabetically first of several)."""
    formal_names = {person_name_key(group[0]) for group in NICKNAME_GROUPS}
    canonical: dict[str, str] = {}
    for group in NICKNAME_GROUPS:
        formal = person_name_key(group[0])
        for name in group[1:]:
            key = person_name_key(name)
            if key not in formal_names:
                canonical[key] = min(canonical.get(key, formal), formal)
    return canonical


_CANONICAL_GIVEN: Final = _canonical_given_names()


@lru_cache(maxsize=1 << 16)
def given_name_key(value: str) -> str:
    """A given name with each word replaced by its formal name ("Bob" -> "robert").

    A nickname of several names ("Kate") takes the alphabetically first formal name; use
    ``is_nickname`` to compare such names exactly.

    >>> given_name_key("Bob"), given_name_key("Mary-Liz")
    ('robert', 'mary elizabeth')
    """
    return " ".join(_CANONICAL_GIVEN.get(word, word) for word in _tokens(value))


def is_nickname(left: str, right: str) -> bool:
    """Whether two folded given names are nicknames of one another ("bob", "robert").

    Args:
        left: A folded given name (see ``person_name_key``).
        right: Another folded given name.

    Returns:
        True when the names differ and one can stand for the other.
    """
    return left != right and right in NICKNAMES.get(left, frozenset())


@lru_cache(maxsize=1 << 18)
def full_name_key(given: str, last: str) -> str:
    """The words of a normalised given and last name, sorted (swapped names share it).

    >>> full_name_key("robert", "lee"), full_name_key("lee", "robert")
    ('lee robert', 'lee robert')
    """
    return " ".join(sorted(f"{given} {last}".split())) if given and last else ""


# --- companies ---------------------------------------------------------------------------------

_LEGAL_SUFFIXES: Final = frozenset(
    {
        "inc",
        "incorporated",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "co",
        "company",
        "corp",
        "corporation",
        "gmbh",
        "ag",
        "kg",
        "plc",
        "pllc",
        "pc",
        "sa",
        "sarl",
        "srl",
        "bv",
        "nv",
        "pty",
        "oy",
        "ab",
    }
)
_CONNECTORS: Final = frozenset({"and", "the"})
# Dots between single letters make one word: "L.L.C." is "llc", "S.A." is "sa".
_DOTTED: Final = re.compile(r"\b(?:[^\W\d_]\.){2,}", re.UNICODE)


def _undot(match: re.Match[str]) -> str:
    return match.group(0).replace(".", "")


@lru_cache(maxsize=1 << 16)
def company_key(value: str) -> str:
    """A company name without legal suffixes, "&"/"and", "the" or punctuation.

    Legal suffixes (Inc, LLC, Ltd, Co, Corp, GmbH, ...) are dropped at the end of the name, where
    they are suffixes; a name made only of them keeps them.

    >>> company_key("The Johnson & Sons Tire Co., L.L.C.")
    'johnson sons tire'
    """
    folded = fold(value)
    if "." in folded:  # only dotted abbreviations need the substitution
        folded = _DOTTED.sub(_undot, folded)
    words = _TOKEN.findall(_without_apostrophes(folded))
    end = len(words)
    while end > 1 and words[end - 1] in _LEGAL_SUFFIXES:
        end -= 1
    kept = [word for word in words[:end] if word not in _CONNECTORS]
    return " ".join(kept or words)


# --- addresses ---------------------------------------------------------------------------------

_ADDRESS_WORDS: Final[Mapping[str, str]] = {
    "street": "st",
    "str": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "terrace": "ter",
    "circle": "cir",
    "highway": "hwy",
    "parkway": "pkwy",
    "expressway": "expy",
    "freeway": "fwy",
    "way": "wy",
    "trail": "trl",
    "plaza": "plz",
    "center": "ctr",
    "centre": "ctr",
    "mount": "mt",
    "fort": "ft",
    "saint": "st",
    "suite": "ste",
    "apartment": "apt",
    "building": "bldg",
    "floor": "fl",
    "unit": "unit",
    "number": "",
    "no": "",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}


def address_key(value: str) -> str:
    """A street address with street types and directionals abbreviated.

    >>> address_key("1200 North Main Street, Suite #4")
    '1200 n main st ste 4'
    """
    words = _tokens(value)
    # Each word's abbreviation (or the word), without the words abbreviated to nothing.
    return " ".join(filter(None, map(_ADDRESS_WORDS.get, words, words)))


_ASCII_NOT_ALNUM: Final = re.compile(r"[^0-9a-z]+")
_NOT_DIGIT: Final = re.compile(r"[^0-9]+")
_ASCII_LETTER: Final = re.compile(r"[A-Za-z]")


def postal_key(value: str) -> str:
    """A postal code: the first five digits of a numeric code, else its folded letters and digits.

    >>> postal_key("80202-1234"), postal_key("sw1a 1aa")
    ('80202', 'sw1a1aa')
    """
    if value.isascii():
        if _ASCII_LETTER.search(value) is None:
            return _NOT_DIGIT.sub("", value)[:5]
        return _ASCII_NOT_ALNUM.sub("", value.lower())
    if not any(ch.isalpha() for ch in value):
        return digits(value)[:5]
    return "".join(_tokens(value))


#: A customer number compared as rule C2 says: case and separators ignored (``c1001``).
customer_number_key: Final = number_key


# --- emails and phones -------------------------------------------------------------------------

#: An email address compared as ``local.casefold()@idna-domain`` (rule U4); an address
#: ``customerkit.identity.email_key`` refuses is folded, so messy data still matches itself.
email_key: Final = lenient_email_key
#: A phone number without its extension: E.164 when possible, else its digits (rule U4).
phone_number_key: Final = lenient_phone_number


# --- columns ---------------------------------------------------------------------------------

#: Normalised address columns, for customers and for contacts that carry an address.
ADDRESS_KEYS: Final = ("address", "address_line2", "city", "state", "postal")
#: Normalised contact columns and the input fields they come from.
CONTACT_KEYS: Final = ("first", "given", "last", "email", "phone", *ADDRESS_KEYS)
#: Normalised customer columns.
CUSTOMER_KEYS: Final = ("company", "number", "email", "phone", *ADDRESS_KEYS)


def place_key(value: str) -> str:
    """A place name (city, state, a second address line) as folded words.

    >>> place_key(" Mount  Saint-Helens ")
    'mount saint helens'
    """
    return person_name_key(value)


def identifier_key(value: str) -> str:
    """An identifier compared with case and separators ignored (VIN, tax id, account number)."""
    return customer_number_key(value)


_DATE_DIGITS: Final = re.compile(r"(\d{4})\D?(\d{1,2})\D?(\d{1,2})")


def date_key(value: str) -> str:
    """A date as ``YYYYMMDD``: ISO dates, ``YYYYMMDD`` digits, or ``datetime`` text.

    Text that is not such a date keeps its digits, so two equal oddities still agree.

    >>> date_key("1956-04-09"), date_key("19560409"), date_key("1956-4-9 00:00:00")
    ('19560409', '19560409', '19560409')
    """
    match = _DATE_DIGITS.match(value.strip())
    if match is None:
        return digits(value)
    year, month, day = match.groups()
    return f"{year}{int(month):02d}{int(day):02d}"


_EXTRA_KEYS: Final[Mapping[str, Callable[[str], str]]] = {
    "exact": identifier_key,
    "date": date_key,
    "text": person_name_key,
}


def extra_column(field: str) -> str:
    """The normalised column of an extra comparison on ``field``."""
    return f"extra:{field}"


def _keys(texts: Sequence[str], key: Callable[[str], str]) -> Column:
    """``key`` of each non-empty text: once per distinct text when ``texts`` is a Column."""
    if type(texts) is Column:
        return texts.map(key)
    # Mostly distinct values: numbering them first would cost more than it saves.
    return Column.of([key(text) if text else "" for text in texts])


def _address_columns(columns: Mapping[str, Sequence[str]]) -> dict[str, Column]:
    return {
        "address": _keys(columns["address_line1"], address_key),
        "address_line2": _keys(columns["address_line2"], place_key),
        "city": _keys(columns["city"], place_key),
        "state": _keys(columns["state"], place_key),
        "postal": _keys(columns["postal_code"], postal_key),
    }


def normalize_columns(
    kind: str,
    columns: Mapping[str, Sequence[str]],
    *,
    region: str = "US",
    extras: Sequence[tuple[str, str]] = (),
) -> dict[str, Column]:
    """Normalise raw text columns (``""`` for missing) into the matching keys of ``kind``.

    A ``Column`` is normalised once per distinct value (names, companies and cities
    repeat a lot); any other sequence value by value.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        columns: Model field name -> trimmed values, one per record.
        region: Default phone region.
        extras: ``(field, method)`` of extra comparisons; their columns are in ``columns``.

    Returns:
        For contacts the columns ``CONTACT_KEYS`` (``first`` is the folded given name,
        ``given`` its formal form), for customers ``CUSTOMER_KEYS``; then one column per
        extra comparison (see ``extra_column``).
    """
    out = {
        "email": _keys(columns["email"], email_key),
        "phone": _keys(columns["phone"], partial(phone_number_key, region=region)),
    }
    if kind == "contact":
        first = columns["first_name"]
        out["first"] = _keys(first, person_name_key)
        out["given"] = _keys(first, given_name_key)
        out["last"] = _keys(columns["last_name"], person_name_key)
    else:
        out["company"] = _keys(columns["company_name"], company_key)
        out["number"] = _keys(columns["customer_number"], customer_number_key)
    out.update(_address_columns(columns))
    for field, method in extras:
        out[extra_column(field)] = _keys(columns[field], _EXTRA_KEYS[method])
    return out
