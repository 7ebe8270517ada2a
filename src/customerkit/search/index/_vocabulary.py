"""A segment's sorted vocabulary: lookups by prefix, infix (trigrams) and typo (a trie walk)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Final

import numpy as np

from customerkit.search.index._arrays import Array, offsets, sorted_distinct, within
from customerkit.search.rules import max_typos

#: One vocabulary word in this many is kept as a Python string for bisecting.
_SAMPLE_STEP: Final = 64
#: Sorts after every word character, so ``q + _AFTER`` bounds the words starting with ``q``.
_AFTER: Final = "\U0010ffff"
#: Bits a packed (trigram, word) pair may use; otherwise the pairs sort with ``np.lexsort``.
_PACKED_BITS: Final = 63


class Vocabulary:
    """The sorted distinct words of a segment, with lookups by prefix, infix and typo.

    Words are stored newline-separated in one string (words never hold a newline); every
    ``_SAMPLE_STEP``-th word is kept as a Python string so a lookup bisects those, then
    one small block.
    """

    def __init__(self, sorted_words: Sequence[str]) -> None:
        self._blob = "\n".join(sorted_words) + "\n"
        lengths = np.fromiter(map(len, sorted_words), dtype=np.int64, count=len(sorted_words))
        self._starts = offsets(lengths + 1)
        self._sample = list(sorted_words[::_SAMPLE_STEP])
        chars = np.frombuffer(self._blob.encode("utf-32-le"), dtype=np.uint32)
        present = np.zeros(int(chars.max()) + 1, dtype=bool)
        present[chars] = True
        # Trigrams are packed from each character's rank in the alphabet, in few bits.
        self._alphabet = np.flatnonzero(present)
        self._bits = len(self._alphabet).bit_length()
        ranks = np.cumsum(present, dtype=np.int64)[chars]
        self._grams, self._gram_starts, self._gram_words = self._trigram_index(chars, ranks)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def word(self, index: int) -> str:
        """The word with this number."""
        return self._blob[self._starts[index] : self._starts[index + 1] - 1]

    def _block(self, first: int, last: int) -> list[str]:
        return self._blob[self._starts[first] : self._starts[last] - 1].split("\n")

    def lower_bound(self, text: str) -> int:
        """The number of words sorting before ``text``."""
        block = bisect_right(self._sample, text) - 1
        if block < 0:
            return 0
        first = block * _SAMPLE_STEP
        last = min(first + _SAMPLE_STEP, len(self))
        return first + bisect_left(self._block(first, last), text)

    def prefix_range(self, prefix: str) -> tuple[int, int]:
        """The numbers ``lo, hi`` of the words starting with ``prefix``.

        ``prefix`` itself is word ``lo`` when it is a word.
        """
        return self.lower_bound(prefix), self.lower_bound(prefix + _AFTER)

    def _trigram_index(self, chars: Array, ranks: Array) -> tuple[Array, Array, Array]:
        """For each trigram occurring past a word's first character, the words holding it.

        Returns the sorted packed trigrams, offsets into the third array, and the word numbers
        holding each trigram, ascending. (trigram, word) pairs sort as one packed int64.
        """
        # Trigram ``i`` starts at character ``i + 1``: never at a word's first character.
        newline = chars == ord("\n")
        inside = ~(newline[:-3] | newline[1:-2] | newline[2:-1] | newline[3:])
        bits = self._bits
        grams = ((ranks[1:-2] << 2 * bits) | (ranks[2:-1] << bits) | ranks[3:])[inside]
        owners = np.cumsum(newline, dtype=np.int64)[1:-2][inside]
        shift = max(1, len(self).bit_length())
        if 3 * bits + shift < _PACKED_BITS:
            packed = sorted_distinct(np.sort((grams << shift) | owners))
            grams, owners = packed >> shift, packed & ((1 << shift) - 1)
        else:  # a huge alphabet: sort the pairs the slow way
            order = np.lexsort((owners, grams))
            grams, owners = grams[order], owners[order]
            fresh = np.ones(len(grams), dtype=bool)
            fresh[1:] = (grams[1:] != grams[:-1]) | (owners[1:] != owners[:-1])
            grams, owners = grams[fresh], owners[fresh]
        first = np.ones(len(grams), dtype=bool)
        first[1:] = grams[1:] != grams[:-1]
        starts = offsets(np.diff(np.append(np.flatnonzero(first), len(grams))))
        return grams[first], starts, owners.astype(np.int32)

    def _gram_code(self, gram: str) -> int | None:
        """A trigram packed as in the index, or ``None`` when a character never occurs."""
        code = 0
        for char in gram:
            at = int(np.searchsorted(self._alphabet, ord(char)))
            if at == len(self._alphabet) or int(self._alphabet[at]) != ord(char):
                return None
            code = (code << self._bits) | (at + 1)
        return code

    def all_words(self) -> list[str]:
        """Every word, in order."""
        return self._blob.split("\n")[:-1] if len(self) else []

    def _holding(self, gram: str) -> Array | None:
        code = self._gram_code(gram)
        if code is None:
            return None
        at = int(np.searchsorted(self._grams, code))
        if at == len(self._grams) or int(self._grams[at]) != code:
            return None
        return self._gram_words[self._gram_starts[at] : self._gram_starts[at + 1]]

    def infix_ids(self, text: str, lo: int, hi: int) -> Array:
        """Words holding ``text`` past their first character, apart from ``lo <= id < hi``."""
        lists = []
        for at in range(len(text) - 2):
            found = self._holding(text[at : at + 3])
            if found is None:
                return np.empty(0, dtype=np.int32)
            lists.append(found)
        lists.sort(key=len)
        ids = lists[0]
        for other in lists[1:]:
            ids = ids[within(ids, other)]
        ids = ids[(ids < lo) | (ids >= hi)]
        if len(text) > 3:  # the trigrams are all there; check they are in a row
            ids = ids[[self.word(int(i)).find(text, 1) >= 0 for i in ids]]
        return ids

    def _length(self, index: int) -> int:
        return int(self._starts[index + 1] - self._starts[index]) - 1

    def children(self, depth: int, lo: int, hi: int) -> list[tuple[str, int, int]]:
        """The characters following a shared prefix of length ``depth``, with word ranges.

        Words ``lo .. hi`` must share their first ``depth`` characters and be longer.
        """
        out = []
        if hi - lo <= _SAMPLE_STEP:  # a few words: one slice of the string beats bisecting
            block = self._block(lo, hi)
            start = 0
            for end in range(1, len(block) + 1):
                if end == len(block) or block[end][depth] != block[start][depth]:
                    out.append((block[start][depth], lo + start, lo + end))
                    start = end
            return out
        at = lo
        while at < hi:
            word = self.word(at)
            end = min(hi, self.lower_bound(word[: depth + 1] + _AFTER))
            out.append((word[depth], at, end))
            at = end
        return out

    def fuzzy_ids(self, text: str) -> Array:
        """Words a typo or two away from ``text``, or whose start is (see the oracle).

        Walks the vocabulary as a trie, one OSA distance row per prefix, and prunes prefixes
        no longer word can bring back within reach: only words near ``text`` are visited.
        """
        size, reach = len(text), max_typos(text)
        singles: list[int] = []
        ranges: list[Array] = []
        # depth, word range, distance rows of this prefix and the one a character shorter,
        # and the prefix's last character (for transpositions).
        stack: list[tuple[int, int, int, list[int], list[int] | None, str]] = [
            (0, 0, len(self), list(range(size + 1)), None, "")
        ]
        while stack:
            depth, lo, hi, row, before, last = stack.pop()
            if depth and self._length(lo) == depth:  # the prefix is a word itself
                if row[size] <= reach:
                    singles.append(lo)
                lo += 1
            if depth == size and row[size] <= reach:  # every longer word starts close enough
                ranges.append(np.arange(lo, hi))
                continue
            # Rows never drop below min(this row, the row before + 1) further down.
            hopeless = min(row) > reach and (before is None or min(before) >= reach)
            if depth >= size + reach or hopeless or lo >= hi:
                continue
            for char, start, end in self.children(depth, lo, hi):
                stack.append(
                    (depth + 1, start, end, _osa_row(text, row, before, char, last), row, char)
                )
        return np.concatenate([np.array(singles, dtype=np.int64), *ranges]).astype(np.int32)


def _osa_row(
    text: str, row: list[int], before: list[int] | None, char: str, last: str
) -> list[int]:
    """The next row of the OSA distance table between ``text`` and a word, one character on.

    ``row`` belongs to the word's prefix ending in ``last``; ``before`` to the one before it.
    """
    out = [row[0] + 1]
    for column in range(1, len(text) + 1):
        expected = text[column - 1]
        value = min(row[column] + 1, out[column - 1] + 1, row[column - 1] + (expected != char))
        if before is not None and column > 1 and char == text[column - 2] and last == expected:
            value = min(value, before[column - 2] + 1)
        out.append(value)
    return out
