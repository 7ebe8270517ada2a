"""Text folding and tokenising (rule S2), shared by search, usernames and matching.

``fold`` makes text comparable: Unicode NFKD, accents (non-spacing marks) removed, casefolded,
and letters and digits that are still not ASCII then transliterated (``ø`` → ``o``, ``ł`` →
``l``, ``æ`` → ``ae``, Cyrillic and Greek to Latin), so "soren" finds "Søren" and "lodz" finds
"Łódź". ASCII text is only lower-cased.
``words`` splits folded text into the words search indexes: a word is a run of letters and
digits; apostrophes join ("O'Brien" is ``obrien``); a hyphenated word is indexed as its parts and
joined ("Smith-Jones" gives ``smith``, ``jones``, ``smithjones``). ``query_words`` splits a query
the same way but keeps only the parts, so "smith-jones" finds "Smith Jones" too.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from anyascii import anyascii

_APOSTROPHES = "'\u2019\u02bc\u2018`\u00b4"
_HYPHENS = "-\u2010\u2011\u2012\u2013"
_APOSTROPHE_TABLE = str.maketrans("", "", _APOSTROPHES)
_HYPHEN_RE = re.compile(f"[{re.escape(_HYPHENS)}]+")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Fold text for comparison: NFKD, accents removed, casefolded, transliterated to ASCII.

    >>> fold("Ãlvarez ÉCOLE")
    'alvarez ecole'
    >>> fold("Søren Łódź Иван")
    'soren lodz ivan'
    """
    if text.isascii():
        return text.lower()  # ASCII's casefold, with nothing to decompose or transliterate
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    # casefold can produce decomposable characters again; NFKD once more keeps fold idempotent.
    folded = unicodedata.normalize("NFKD", stripped.casefold())
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Mn")
    return folded if folded.isascii() else _transliterate(folded)


def _transliterate(folded: str) -> str:
    """Letters and digits that no decomposition brings to ASCII, in ASCII (a fallback).

    Only word characters: symbols, emoji and punctuation separate words whatever they are, and
    a transliterated emoji (``:smile:``) would make a word nobody typed.
    """
    return "".join(
        anyascii(ch).lower() if not ch.isascii() and _is_word_char(ch) else ch for ch in folded
    )


def _chunks(folded: str) -> list[str]:
    """Split folded text at every character that is neither a word character nor a hyphen."""
    chunks: list[str] = []
    current: list[str] = []
    for ch in folded.translate(_APOSTROPHE_TABLE):
        if ch in _HYPHENS or _is_word_char(ch):
            current.append(ch)
        elif current:
            chunks.append("".join(current))
            current = []
    if current:
        chunks.append("".join(current))
    return chunks


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def words(text: str) -> tuple[str, ...]:
    """The indexed words of ``text``, unique, in order of appearance.

    >>> words("Smith-Jones & O'Brien")
    ('smith', 'jones', 'smithjones', 'obrien')
    """
    out: list[str] = []
    for chunk in _chunks(fold(text)):
        parts = [part for part in _HYPHEN_RE.split(chunk) if part]
        out.extend(parts)
        if len(parts) > 1:
            out.append("".join(parts))
    return _unique(out)


def query_words(text: str) -> tuple[str, ...]:
    """The words of a search query: like ``words``, without joined hyphenated forms.

    >>> query_words("john den")
    ('john', 'den')
    """
    out: list[str] = []
    for chunk in _chunks(fold(text)):
        out.extend(part for part in _HYPHEN_RE.split(chunk) if part)
    return _unique(out)


def ascii_fold(text: str) -> str:
    """Fold and keep only ASCII letters and digits (for generated usernames, U2).

    >>> ascii_fold("García-López Søstergaard")
    'garcialopezsostergaard'
    """
    return "".join(ch for ch in fold(text) if ch.isascii() and ch.isalnum())


def digits(text: str) -> str:
    """Only the decimal digits of ``text``, mapped to ASCII (fullwidth digits included).

    >>> digits("+1 (303) 555-0142")
    '13035550142'
    """
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())


def number_key(customer_number: str) -> str:
    """Canonical customer number (rule C2): folded, separators dropped.

    >>> number_key(" c-1001 ") == number_key("C1001")
    True
    """
    return "".join(ch for ch in fold(customer_number) if _is_word_char(ch))
