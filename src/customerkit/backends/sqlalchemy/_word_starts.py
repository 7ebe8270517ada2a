"""How a customer's words start, as the bits of one integer: a search's cheapest check.

Every ``customer_words`` row of a customer carries two masks of its words' starts: one over
its NAME words (``name_starts``), one over the words of every searchable field (``starts``).
A word sets the bit of its first character (one each for ``a``-``z`` and ``0``-``9``) and the
bit its first two characters hash to. A customer holding a word that starts with a query word
(or equals it) has that query word's bits set; so a page of a search of several words keeps
only the driver's rows whose mask has the other words' bits, inside the index scan, before
any of them is checked against the other words' rows (S4 decides; the mask only rules out).
Infix and typo matches need no common start: a bucket where another word may match so does
not filter on it.

Bit 63 stays clear: the masks are positive ``BIGINT`` values on both databases.
"""

from __future__ import annotations

from functools import lru_cache

_FIRST = {character: bit for bit, character in enumerate("abcdefghijklmnopqrstuvwxyz0123456789")}
#: Bits 36-62 hold the hashed first two characters.
_PAIRS = 63 - len(_FIRST)


@lru_cache(maxsize=65536)
def start_bits(word: str) -> int:
    """The bits a (folded, non-empty) word sets, and that every word starting with it sets."""
    first = word[0]
    bits = 1 << _FIRST.get(first, ord(first) % len(_FIRST))
    if len(word) > 1:
        bits |= 1 << (len(_FIRST) + (ord(first) * 31 + ord(word[1])) % _PAIRS)
    return bits
