"""Text columns stored as their distinct values and one integer code per record.

Customer books repeat values heavily (a few thousand first names among a million contacts, the
same company on every branch), so the matcher reads, normalises and compares each distinct
value once: a ``Column`` holds the distinct non-empty values and, per record, the index of
its value (``-1`` for ``""``). Equal codes mean equal text, so equality tests are integer
comparisons. A column is still a sequence of strings, one per record, for code that wants one
value at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final, overload

import numpy as np
import numpy.typing as npt

__all__ = ["Column", "combine", "distinct_rows"]

IntArray = npt.NDArray[np.int64]
_LARGEST: Final = 2**62
ObjectArray = npt.NDArray[np.object_]


class Column(Sequence[str]):
    """Texts of many records as distinct values and a code per record.

    Attributes:
        values: The distinct non-empty texts.
        codes: Per record, the index of its text in ``values``; ``-1`` for ``""``.
    """

    __slots__ = ("codes", "values")

    def __init__(self, values: list[str], codes: IntArray) -> None:
        self.values = values
        self.codes = codes

    @classmethod
    def of(cls, texts: Sequence[str]) -> Column:
        """The column of ``texts`` (``""`` for missing).

        >>> column = Column.of(["b", "", "a", "b"])
        >>> column.values, column.codes.tolist()
        (['b', 'a'], [0, -1, 1, 0])
        """
        if type(texts) is Column:
            return texts
        # One pass of dict look-ups: most columns are strings the dict hashes here first.
        code_of = {"": -1}
        setdefault = code_of.setdefault
        codes = [setdefault(text, len(code_of) - 1) for text in texts]
        return cls(list(code_of)[1:], np.array(codes, np.int64))

    def map(self, function: Callable[[str], str]) -> Column:
        """``function`` of each record's text, called once per distinct text (``""`` stays)."""
        mapped = Column.of([function(text) for text in self.values])
        return mapped.take(self.codes)

    def take(self, codes: IntArray) -> Column:
        """The column whose record ``i`` has this column's value number ``codes[i]``."""
        lookup = np.append(self.codes, np.int64(-1))  # code -1 stays -1
        return Column(self.values, lookup[codes])

    def flags(self, function: Callable[[str], bool]) -> IntArray:
        """``function`` of each record's text as 1 or 0, called once per distinct text."""
        table = np.array([*map(function, self.values), function("")], np.int64)
        return table[self.codes]

    def texts_at(self, positions: IntArray) -> list[str]:
        """The texts of the records at ``positions``."""
        padded = [*self.values, ""]  # code -1 is the last item
        return [padded[code] for code in self.codes[positions].tolist()]

    def objects(self) -> ObjectArray:
        """One Python string per record, as an object array."""
        table: ObjectArray = np.empty(len(self.values) + 1, dtype=object)
        table[:-1] = self.values
        table[-1] = ""
        return table[self.codes]

    def tolist(self) -> list[str]:
        """One string per record."""
        texts: list[str] = self.objects().tolist()
        return texts

    def __len__(self) -> int:
        return int(self.codes.size)

    @overload
    def __getitem__(self, at: int) -> str: ...

    @overload
    def __getitem__(self, at: slice) -> list[str]: ...

    def __getitem__(self, at: int | slice) -> str | list[str]:
        if isinstance(at, slice):
            return [self[i] for i in range(*at.indices(len(self)))]
        code = int(self.codes[at])
        return self.values[code] if code >= 0 else ""

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())


def distinct_rows(parts: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
    """(combination number per row, a row of each combination) of several code columns.

    Codes are ``-1`` or more; combination numbers are dense (0, 1, ...) in sorted order.
    """
    combined = parts[0] + 1
    for codes in parts[1:]:
        width = int(codes.max(initial=-1)) + 2
        if int(combined.max(initial=0)) >= _LARGEST // width:
            # Renumber densely first so that the product does not overflow.
            _, dense = np.unique(combined, return_inverse=True)
            combined = dense.reshape(-1)
        combined = combined * width + (codes + 1)
    _, first_at, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.reshape(-1), first_at


def combine(function: Callable[..., str], *columns: Column) -> Column:
    """``function`` of several columns' texts per record, called once per distinct combination.

    >>> combine(lambda a, b: a + b, Column.of(["x", "y", "x"]), Column.of(["1", "2", "1"])).tolist()
    ['x1', 'y2', 'x1']
    """
    inverse, first_at = distinct_rows([column.codes for column in columns])
    texts = [column.texts_at(first_at) for column in columns]
    results = [function(*args) for args in zip(*texts, strict=True)]
    return Column.of(results).take(inverse)
