"""Text folding, word splitting and the customer-number key (rules S2, C2): their one home.

Search, usernames, matching and the SQL rows all call these functions; each has its ASCII
shortcut here, beside the general path it must agree with (tests compare the two).

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

import itertools
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from anyascii import anyascii

_APOSTROPHES = "'\u2019\u02bc\u2018`\u00b4"
_HYPHENS = "-\u2010\u2011\u2012\u2013"
_APOSTROPHE_TABLE = str.maketrans("", "", _APOSTROPHES)
_HYPHEN_RE = re.compile(f"[{re.escape(_HYPHENS)}]+")
# The word characters of folded ASCII text, hyphens kept (they join the parts of a word).
_ASCII_CHUNK = re.compile(r"[a-z0-9-]+")
_ASCII_TOKEN = re.compile(r"[a-z0-9-]+|\n")
_NOT_ASCII_WORD = re.compile(r"[^a-z0-9]+")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def fold(text: str) -> str:
    """Fold text for comparison: NFKD, accents removed, casefolded, transliterated to ASCII.

    >>> fold("Ãlvarez ÉCOLE")
    'alvarez ecole'
    >>> fold("Søren Łódź Иван")
    'soren lodz ivan'
    """
    # ASCII's casefold is lower(), with nothing to decompose or transliterate; ASCII is kept out
    # of the cache too, which a million distinct names would only churn.
    return text.lower() if text.isascii() else _general_fold(text)


@lru_cache(maxsize=65536)
def _general_fold(text: str) -> str:
    """``fold`` without its ASCII shortcut: right for any text (tests compare both)."""
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


def _add_parts(chunk: str, out: list[str]) -> None:
    """The hyphen-separated parts of a chunk, then (for two or more) the parts joined."""
    parts = [part for part in _HYPHEN_RE.split(chunk) if part]
    out.extend(parts)
    if len(parts) > 1:
        out.append("".join(parts))


def words(text: str) -> tuple[str, ...]:
    """The indexed words of ``text``, unique, in order of appearance.

    >>> words("Smith-Jones & O'Brien")
    ('smith', 'jones', 'smithjones', 'obrien')
    """
    if not text.isascii():
        return _general_words(text)
    # ASCII needs no Unicode normalisation and lower() is its casefold: a regular expression
    # does the splitting, several times faster (tests compare it with the general path).
    lowered = text.lower()
    if "'" in lowered or "`" in lowered:
        lowered = lowered.replace("'", "").replace("`", "")
    chunks = _ASCII_CHUNK.findall(lowered)
    if "-" not in lowered:
        return tuple(dict.fromkeys(chunks))
    out: list[str] = []
    for chunk in chunks:
        _add_parts(chunk, out)
    return tuple(dict.fromkeys(out))


def _general_words(text: str) -> tuple[str, ...]:
    """``words`` without its ASCII shortcut: right for any text."""
    out: list[str] = []
    for chunk in _chunks(fold(text)):
        _add_parts(chunk, out)
    return _unique(out)


def words_of_texts(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """The indexed words of many texts, concatenated, and how many each text has.

    Each text's ``words``, possibly repeated within the text (a bulk load deduplicates
    later). ASCII texts are split by one regular expression over all of them joined by
    newlines, which saves a Python call per text.

    >>> words_of_texts(["Smith-Jones", "Denver"])
    (['smith', 'jones', 'smithjones', 'denver'], [3, 1])
    """
    if not texts:
        return [], []
    blob = "\n".join(texts)
    if not blob.isascii() or blob.count("\n") != len(texts) - 1:
        found = list(map(words, texts))
        return list(itertools.chain.from_iterable(found)), list(map(len, found))
    lowered = blob.lower().replace("'", "").replace("`", "")
    flat: list[str] = []
    counts: list[int] = []
    start = 0
    for chunk in [*_ASCII_TOKEN.findall(lowered), "\n"]:
        if chunk == "\n":
            counts.append(len(flat) - start)
            start = len(flat)
        elif "-" not in chunk:
            flat.append(chunk)
        else:
            _add_parts(chunk, flat)
    return flat, counts


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
    """Fold and keep only ASCII letters and digits (for generated usernames, rule U2).

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
    if customer_number.isascii():  # folding is lower(); the word characters are [a-z0-9]
        lowered = customer_number.lower()
        return lowered if lowered.isalnum() else _NOT_ASCII_WORD.sub("", lowered)
    return _general_number_key(customer_number)


def _general_number_key(customer_number: str) -> str:
    """``number_key`` without its ASCII shortcut: right for any text."""
    return "".join(ch for ch in fold(customer_number) if _is_word_char(ch))
