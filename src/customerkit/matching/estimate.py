"""Estimating the Fellegi-Sunter parameters from the records being matched.

``u`` (how often two different records land in a level) starts from random pairs of the
records: almost every random pair is two different records. ``m`` (how often duplicates land in
a level), ``u`` and the prior then come from expectation maximisation over the compared pairs,
started from the given ``m`` and prior. The compared pairs have few distinct level patterns, so EM
runs over the patterns with their counts, whatever the number of pairs.

Parameters can also be fitted from pairs a person labelled: ``m`` from the duplicates, ``u``
from the rest (``fit_labelled``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from customerkit.matching.comparisons import TF_COMPARISONS
from customerkit.matching.config import Parameters

__all__ = [
    "RANDOM_PAIRS",
    "decode_patterns",
    "em",
    "encode_patterns",
    "estimate_parameters",
    "fit_labelled",
    "frequencies",
    "level_patterns",
    "plausible",
    "random_pairs",
]

IntArray = npt.NDArray[np.int64]
LevelMatrix = npt.NDArray[np.int8]

_FLOOR: Final = 1e-6  # no level is ever impossible: a pair landing in it must not get -inf
_ITERATIONS: Final = 100
_TOLERANCE: Final = 1e-7
_LARGEST_PRIOR: Final = 0.999
_LEAST_ANCHOR: Final = 20.0  # pairs' worth of pull towards the starting m, at the least
#: How strongly estimated ``m`` is held towards the starting ``m``: as if half as many pairs
#: again as EM counts as duplicates had landed in the starting proportions. Without it, EM
#: over many non-duplicates that share a town or a company name (branches) splits the pairs
#: by town or by name instead of into duplicates and the rest.
_ANCHOR: Final = 0.5
#: Random pairs drawn to estimate ``u`` (in-process and on Spark alike).
RANDOM_PAIRS: Final = 50_000


def random_pairs(n: int, count: int, seed: int) -> tuple[IntArray, IntArray]:
    """Up to ``count`` distinct random pairs of positions ``0 .. n-1``, never a record twice."""
    rng = np.random.default_rng(seed)
    if n < 2:
        empty = np.empty(0, np.int64)
        return empty, empty
    total = n * (n - 1) // 2
    if total <= count:
        left, right = np.triu_indices(n, k=1)
        return left.astype(np.int64), right.astype(np.int64)
    left = rng.integers(0, n, size=count, dtype=np.int64)
    right = rng.integers(0, n - 1, size=count, dtype=np.int64)
    right += right >= left  # never the same record
    low, high = np.minimum(left, right), np.maximum(left, right)
    codes = np.unique(low * n + high)
    return codes // n, codes % n


def encode_patterns(matrix: LevelMatrix, sizes: Sequence[int]) -> IntArray:
    """One integer per row of a level matrix (``level_patterns``' numbering).

    Pairs compared apart (in chunks, processes or Spark tasks) bring back only these codes;
    counting them is all estimation needs.
    """
    code = np.zeros(matrix.shape[0], np.int64)
    for column, size in enumerate(sizes):
        code = code * (size + 1) + matrix[:, column]
    return code


def decode_patterns(codes: IntArray, sizes: Sequence[int]) -> LevelMatrix:
    """The level matrix of ``encode_patterns``' integers."""
    matrix = np.zeros((codes.size, len(sizes)), np.int8)
    rest = codes.copy()
    for column in range(len(sizes) - 1, -1, -1):
        base = sizes[column] + 1
        matrix[:, column] = rest % base
        rest //= base
    return matrix


def level_patterns(matrix: LevelMatrix, sizes: Sequence[int]) -> tuple[LevelMatrix, IntArray]:
    """The distinct rows of a level matrix and how often each occurs."""
    if matrix.shape[0] == 0:
        return matrix, np.empty(0, np.int64)
    code = encode_patterns(matrix, sizes)
    distinct, first_at, counts = np.unique(code, return_index=True, return_counts=True)
    del distinct
    return matrix[first_at], counts.astype(np.int64)


def frequencies(
    matrix: LevelMatrix, sizes: Sequence[int], weights: npt.NDArray[np.float64] | None = None
) -> list[npt.NDArray[np.float64]]:
    """Per comparison, the (weighted) share of each level among pairs where it is not missing.

    Levels never seen get a share of half a pair (so no level is impossible).
    """
    out = []
    w = np.ones(matrix.shape[0]) if weights is None else weights
    for column, size in enumerate(sizes):
        counts = np.bincount(matrix[:, column], weights=w, minlength=size + 1)[1:] + 0.5
        out.append(np.maximum(counts / counts.sum(), _FLOOR))
    return out


def em(
    patterns: LevelMatrix,
    counts: IntArray,
    names: Sequence[str],
    start: Parameters,
    u: Mapping[str, Sequence[float]],
    *,
    records: int,
    fixed_m: bool = False,
    fixed_u: bool = False,
    anchor: float = 0.0,
) -> Parameters:
    """``m``, ``u`` and the prior by expectation maximisation over level patterns.

    The compared pairs are a mixture of duplicates (``m``) and different records that
    blocking brought together (``u``); those agree on far more than random pairs do, so ``u``
    starts from the random pairs' frequencies and is re-estimated with ``m``. Scores are then
    probabilities among the compared pairs.

    Args:
        patterns: Distinct level rows of the compared pairs (a column per comparison).
        counts: How many pairs have each row.
        names: The comparisons, in column order.
        start: Starting ``m`` and prior.
        u: Starting ``u`` per comparison (from random pairs).
        records: How many records the pairs come from (kept in the result).
        fixed_m: Keep ``m`` as given.
        fixed_u: Keep ``u`` as given (with ``fixed_m``: estimate the prior alone).
        anchor: Hold ``m`` towards ``start.m``, as if this share of the pairs EM counts as
            duplicates again had landed in the starting proportions (0: plain EM).

    Returns:
        The estimated parameters.
    """
    weights = counts.astype(np.float64)
    log_m = [np.log(np.asarray(start.m[name], np.float64)) for name in names]
    log_u = [np.log(np.asarray(u[name], np.float64)) for name in names]
    prior = min(max(start.prior, 1e-6), _LARGEST_PRIOR)
    sizes = [len(start.m[name]) for name in names]
    u_part = _log_likelihood(patterns, log_u)
    for _ in range(_ITERATIONS):
        m_part = _log_likelihood(patterns, log_m)
        # Posterior probability that each pattern is a duplicate.
        odds = np.log(prior) - np.log1p(-prior) + m_part - u_part
        match = 1.0 / (1.0 + np.exp(-np.clip(odds, -700, 700)))
        new_prior = float(np.clip((weights * match).sum() / weights.sum(), 1e-6, _LARGEST_PRIOR))
        new_log_m = log_m
        if not fixed_m:
            new_log_m = [
                np.log(_anchored(counts_m, start.m[name], anchor))
                for counts_m, name in zip(
                    _counts(patterns, sizes, weights * match), names, strict=True
                )
            ]
        if not fixed_u:
            log_u = [np.log(v) for v in frequencies(patterns, sizes, weights * (1 - match))]
            u_part = _log_likelihood(patterns, log_u)
        change = abs(new_prior - prior) + max(
            float(np.abs(np.exp(a) - np.exp(b)).max())
            for a, b in zip(new_log_m, log_m, strict=True)
        )
        prior, log_m = new_prior, new_log_m
        if change < _TOLERANCE:
            break
    return Parameters(
        prior=prior,
        m={name: tuple(np.exp(values).tolist()) for name, values in zip(names, log_m, strict=True)},
        u={name: tuple(np.exp(values).tolist()) for name, values in zip(names, log_u, strict=True)},
        records=records,
    )


def estimate_parameters(
    patterns: LevelMatrix,
    counts: IntArray,
    names: Sequence[str],
    start: Parameters,
    u: Mapping[str, Sequence[float]],
    *,
    records: int,
    kind: str,
) -> Parameters:
    """``m``, ``u`` and the prior of batch matching, from the compared pairs' level patterns.

    Anchored EM first; when the duplicates it found are implausible (see ``plausible``), EM
    again with the starting ``m`` held. The in-process and the Spark matcher both call this on
    the same pattern counts, so both estimate the same parameters.

    Args:
        patterns: Distinct level rows of the compared pairs, in ``level_patterns`` order.
        counts: How many pairs have each row.
        names: The comparisons, in column order.
        start: Starting ``m`` and prior.
        u: Starting ``u`` per comparison (from random pairs).
        records: How many records the pairs come from.
        kind: ``"contact"`` or ``"customer"`` (whose name comparisons ``plausible`` checks).
    """
    fitted = em(patterns, counts, names, start, u, records=records, anchor=_ANCHOR)
    if plausible(fitted, start, TF_COMPARISONS[kind]):
        return fitted
    # EM found another split of the pairs than duplicates and the rest: keep the starting m,
    # and estimate u and how many duplicates there are.
    return em(patterns, counts, names, start, u, records=records, fixed_m=True)


def _counts(
    matrix: LevelMatrix, sizes: Sequence[int], weights: npt.NDArray[np.float64]
) -> list[npt.NDArray[np.float64]]:
    """Per comparison, the weighted count of pairs in each level (missing left out)."""
    return [
        np.bincount(matrix[:, column], weights=weights, minlength=size + 1)[1:].astype(np.float64)
        for column, size in enumerate(sizes)
    ]


def _anchored(
    counts: npt.NDArray[np.float64], start: Sequence[float], anchor: float
) -> npt.NDArray[np.float64]:
    """Level shares from ``counts``, held towards ``start`` (see ``em``'s ``anchor``).

    The pull is at least that of ``_LEAST_ANCHOR`` pairs, so that with next to no
    duplicates among the pairs ``m`` stays where it started instead of going flat.
    """
    mass = float(counts.sum())
    pseudo = max(anchor * mass, _LEAST_ANCHOR if anchor > 0 else 0.5)
    shares = (counts + pseudo * (np.asarray(start) if anchor > 0 else 1 / counts.size)) / (
        mass + pseudo
    )
    return np.maximum(shares, _FLOOR)


def _log_likelihood(
    patterns: LevelMatrix, log_p: Sequence[npt.NDArray[np.float64]]
) -> npt.NDArray[np.float64]:
    """Per pattern, the sum over comparisons of the log probability of its level (0 if missing)."""
    total = np.zeros(patterns.shape[0], np.float64)
    for column, values in enumerate(log_p):
        table = np.r_[0.0, values]
        total += table[patterns[:, column]]
    return total


def fit_labelled(
    matrix: LevelMatrix,
    is_match: npt.NDArray[np.bool_],
    names: Sequence[str],
    sizes: Sequence[int],
    *,
    records: int,
) -> Parameters:
    """Parameters from labelled pairs: ``m`` from the duplicates, ``u`` from the others.

    Args:
        matrix: Levels of the labelled pairs (a column per comparison).
        is_match: Whether each pair is a duplicate.
        names: The comparisons, in column order.
        sizes: Number of levels of each comparison.
        records: How many records the pairs come from.

    Returns:
        The parameters; the prior is the share of duplicates among the labelled pairs.
    """
    m = frequencies(matrix[is_match], sizes)
    u = frequencies(matrix[~is_match], sizes)
    share = float(is_match.mean()) if is_match.size else 0.5
    return Parameters(
        prior=min(max(share, 1e-6), _LARGEST_PRIOR),
        m={name: tuple(values.tolist()) for name, values in zip(names, m, strict=True)},
        u={name: tuple(values.tolist()) for name, values in zip(names, u, strict=True)},
        records=records,
    )


def plausible(parameters: Parameters, start: Parameters, names: Sequence[str]) -> bool:
    """Whether the duplicates EM found agree on these comparisons about as often as expected.

    EM over pairs with few duplicates can settle on another split of the pairs (records of one
    town against the rest); the "duplicates" of such a split rarely share their names. Only
    the share is checked, not ``m`` against ``u``: blocking brings together many different
    records with the same name, so among compared pairs ``u`` of a name can exceed ``m``.
    """
    return all(parameters.m[name][0] >= start.m[name][0] / 2 for name in names)
