"""Numpy helpers the search index is built from: offsets, sorted sets, ranges."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


def offsets(lengths: Array) -> Array:
    """Start offsets (plus the end) for items of these lengths, in the smallest safe dtype."""
    ends = np.cumsum(lengths, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    dtype = np.int32 if total < 2**31 else np.int64
    out = np.zeros(len(lengths) + 1, dtype=dtype)
    out[1:] = ends
    return out


def sorted_distinct(ordered: Array) -> Array:
    """The distinct values of a sorted array."""
    fresh = np.ones(len(ordered), dtype=bool)
    fresh[1:] = ordered[1:] != ordered[:-1]
    return ordered[fresh]


def sorted_unique(values: Array) -> Array:
    """Sorted distinct values: ``np.unique``, which is over ten times slower in numpy 2.4."""
    return sorted_distinct(np.sort(values))


def within(values: Array, ordered: Array) -> Array:
    """Whether each value occurs in the sorted array ``ordered`` (a fast ``np.isin``)."""
    if not len(ordered):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return np.asarray(ordered[at] == values)


def expand(starts: Array, counts: Array) -> Array:
    """Indices ``starts[i] .. starts[i] + counts[i]`` for every ``i``, concatenated."""
    ends = np.cumsum(counts)
    shifts: Array = np.repeat(starts - (ends - counts), counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + shifts
