"""Index look-ups that find every word a query word can match (a superset; S4).

An ``Anchor`` is something an index answers: words equal to a text, starting with it
(a B-tree range), or containing it (a trigram index; 3+ characters). ``anchors`` gives a
set of anchors such that every word the oracle's ``word_strength`` accepts satisfies at least
one of them; the candidates are then checked with the oracle's own rules, so extra words only
cost time, never correctness.

Fuzzy matches (OSA distance at most k to the word or to its first ``len(q)`` characters) are
covered by a pigeonhole argument. Let ``p`` be the word or that start of it, so ``p`` is a
prefix of the word. Cut the query word into k+1 pieces. Each of the k edits touches one piece
(an insertion at the very start counts as touching the first), so some piece is untouched and
appears in ``p`` as it is: the first piece as a prefix, any other piece somewhere inside. The
one exception, a transposition of the two characters either side of a cut, touches two
pieces; then the query word with those two characters swapped is at most k-1 edits from
``p``, and the same argument runs on it. Pieces are as even as possible, but the ones after
the first have at least 3 characters, the shortest a trigram index can look up; fuzzy words
are long enough for that (4+ characters for one typo, 8+ for two).
"""

from __future__ import annotations

from typing import Literal

import attrs

from customerkit.search.query import SearchQuery
from customerkit.search.rules import MIN_FUZZY_LENGTH, MIN_INFIX_LENGTH, max_typos

#: Length of the pieces a trigram index can look up.
TRIGRAM = 3


@attrs.frozen
class Anchor:
    """Words equal to ``text``, starting with it, or containing it."""

    kind: Literal["equals", "prefix", "contains"]
    text: str

    def covers(self, other: Anchor) -> bool:
        """Whether every word ``other`` finds is found by this anchor too."""
        if self.kind == "contains":
            return self.text in other.text
        if self.kind == "prefix":
            return other.kind != "contains" and other.text.startswith(self.text)
        return other == self


def fuzzy_anchors(word: str, typos: int) -> list[Anchor]:
    """Anchors covering every word within ``typos`` OSA edits of ``word`` or of its start."""
    if typos == 0:
        return [Anchor("prefix", word)]
    # Even pieces are the most selective, but every piece after the first needs 3 characters.
    size = max(TRIGRAM, len(word) // (typos + 1))
    first = len(word) - size * typos
    cuts = [first + size * i for i in range(typos)]
    found = [Anchor("prefix", word[:first])]
    found += [Anchor("contains", word[cut : cut + size]) for cut in cuts]
    for cut in cuts:  # a transposition across a cut touches the pieces on both sides
        swapped = word[: cut - 1] + word[cut] + word[cut - 1] + word[cut + 1 :]
        found += fuzzy_anchors(swapped, typos - 1)
    return found


def _minimal(found: list[Anchor]) -> list[Anchor]:
    """Drop anchors another anchor covers (the first of equal ones stays)."""
    kept: list[Anchor] = []
    for i, anchor in enumerate(found):
        covered = any(
            other.covers(anchor) and (other != anchor or j < i)
            for j, other in enumerate(found)
            if j != i
        )
        if not covered:
            kept.append(anchor)
    return kept


def anchors(word: str, query: SearchQuery) -> list[Anchor]:
    """Index look-ups finding every indexed word that matches the query word ``word``."""
    if query.exact_only:
        return [Anchor("equals", word)]
    found = [Anchor("prefix", word)]
    if len(word) >= MIN_INFIX_LENGTH:
        found.append(Anchor("contains", word))
    if query.fuzzy and len(word) >= MIN_FUZZY_LENGTH:
        found += fuzzy_anchors(word, max_typos(word))
    return _minimal(found)


def successor(prefix: str) -> str:
    """The smallest string, in code point order, above every string starting with ``prefix``.

    ``word >= prefix AND word < successor(prefix)`` is a B-tree range under binary collation.
    """
    while prefix:
        following = ord(prefix[-1]) + 1
        if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored; skip past them
            following = 0xE000
        if following <= 0x10FFFF:
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    msg = "no string follows every string"
    raise ValueError(msg)
