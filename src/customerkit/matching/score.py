"""Comparing candidate pairs: a level per field, then a match weight and probability.

Everything here works on whole arrays of pairs. Batch matching compares millions of pairs per
call; the incremental index compares one record against a handful with the very same code, so
both give the same score to the same pair under the same parameters.

The levels come from ``customerkit.matching.levels``, the comparisons and their weights from
``customerkit.matching.comparisons``. When two records share the same full name (contacts) or
company name (customers), the weight of that agreement is adjusted here by how common the name
is among the records: two "Smith"s say less than two "Zbyszewski"s.

The model, the features and the reasons are re-exported: the incremental index and the tests
import them from here, beside ``compare`` and ``weigh``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from customerkit.matching.comparisons import (
    LEVELS,
    SAME,
    TF_COMPARISONS,
    Compared,
    FloatArray,
    IntArray,
    LevelArray,
    Model,
    comparisons_of,
    starting_parameters,
)
from customerkit.matching.config import MatchConfig
from customerkit.matching.features import Features, build_features, name_key_of
from customerkit.matching.levels import Pairs, compare_levels
from customerkit.matching.reasons import reasons

__all__ = [
    "LEVELS",
    "Compared",
    "Features",
    "Model",
    "build_features",
    "compare",
    "comparisons_of",
    "name_key_of",
    "names_agree",
    "reasons",
    "starting_parameters",
    "weigh",
    "weigh_levels",
]

_TF_LIMIT: Final = 2.0  # bits a rare name may add to its agreement's weight
_NAME_PRIOR: Final = 10.0  # records' worth of belief in the model's u before counting names


def _name_adjustment(pairs: Pairs, levels: Mapping[str, LevelArray], model: Model) -> FloatArray:
    """Bits added to the agreement on a name for how rare (or common) the name is.

    The name's chance of agreeing by accident is its frequency among the other records (those
    two aside), smoothed towards the model's ``u``, as if ``_NAME_PRIOR`` records had been
    seen before: a few records say little about how common a name is.
    """
    kind = pairs.features.kind
    names = TF_COMPARISONS[kind]
    _, same_name = pairs.codes("name")
    agree = same_name.copy()
    for name in names:
        agree &= levels[name] == SAME
    out = np.zeros(pairs.size, np.float64)
    where = np.flatnonzero(agree)
    if where.size:
        chance = float(np.prod([model.u_same[name] for name in names]))
        others = pairs.features.codes["name_count"][pairs.left[where]] - 2
        seen = max(pairs.features.named - 2, 0)
        frequency = (np.maximum(others, 0) + _NAME_PRIOR * chance) / (seen + _NAME_PRIOR)
        out[where] = np.minimum(np.log2(chance / frequency), _TF_LIMIT)
    return out


def compare(
    features: Features,
    left: IntArray,
    right: IntArray,
    config: MatchConfig,
    model: Model,
) -> Compared:
    """Compare and score pairs of records.

    Args:
        features: The records.
        left: Positions of one side of each pair.
        right: Positions of the other side (the score does not depend on which side is which).
        config: Similarity levels.
        model: The parameters to score with.

    Returns:
        The levels, similarities, match weights and probabilities of the pairs.
    """
    pairs = Pairs(features, left, right, config.workers)
    levels, similarity, swapped = compare_levels(pairs, config)
    tf, weight = weigh(features, left, right, levels, model)
    return Compared(
        left=left,
        right=right,
        levels=levels,
        similarity=similarity,
        tf=tf,
        weight=weight,
        score=probability(weight),
        swapped=swapped,
    )


def weigh(
    features: Features,
    left: IntArray,
    right: IntArray,
    levels: Mapping[str, LevelArray],
    model: Model,
) -> tuple[FloatArray, FloatArray]:
    """(name frequency adjustment, match weight) of pairs whose levels are known, in bits."""
    pairs = Pairs(features, left, right, 1)
    tf = _name_adjustment(pairs, levels, model)
    weight = np.full(left.size, model.prior_weight, np.float64) + tf
    for name in model.names:
        weight += model.weights[name][levels[name]]
    return tf, weight


def names_agree(features: Features, left: IntArray, right: IntArray) -> npt.NDArray[np.bool_]:
    """Whether each pair's two records have the same name (what ``weigh_levels`` needs)."""
    _, same = Pairs(features, left, right, 1).codes("name")
    return same


def weigh_levels(
    levels: Mapping[str, LevelArray],
    same_name: npt.NDArray[np.bool_],
    name_count: IntArray,
    model: Model,
    *,
    kind: str,
    named: int,
) -> FloatArray:
    """Match weights of pairs from what comparing them told, with no record at hand.

    A weight needs only a pair's levels, whether its names agree and how many records share
    its left record's name (``name_count``, of the ``named`` records with a name); ``weigh``
    reads them from features of the pairs' two sides (pair ``j`` is ``j`` and ``k + j``) that
    hold just that.
    """
    k = same_name.size
    sides = Features(
        kind=kind,
        text={},
        codes={
            "name": np.concatenate((np.zeros(k, np.int64), np.where(same_name, 0, 1))),
            "name_count": np.concatenate((name_count, np.zeros(k, np.int64))),
        },
        named=named,
        extras={},
    )
    left = np.arange(k, dtype=np.int64)
    _, weight = weigh(sides, left, left + k, levels, model)
    return weight


def probability(weight: FloatArray) -> FloatArray:
    """Match probabilities of match weights (bits), rounded to four decimals."""
    return np.round(1.0 / (1.0 + np.exp2(-np.clip(weight, -60.0, 60.0))), 4)


def level_matrix(compared: Compared, names: Sequence[str]) -> npt.NDArray[np.int8]:
    """The levels as a matrix: a row per pair, a column per comparison in ``names`` order."""
    return np.stack([compared.levels[name] for name in names], axis=1)
