"""Records read, normalised and blocked into candidate pairs, and the model fitted to them.

What every batch use of the matcher (a report, the compared pairs, a fit from labels) starts
from; the parameters are estimated here (EM over the candidate pairs, ``u`` from random pairs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.matching.blocking import candidate_pairs, rules_for
from customerkit.matching.comparisons import (
    Model,
    comparisons_of,
    level_sizes,
    starting_parameters,
)
from customerkit.matching.config import MatchConfig, Parameters
from customerkit.matching.estimate import (
    RANDOM_PAIRS,
    estimate_parameters,
    frequencies,
    level_patterns,
    random_pairs,
)
from customerkit.matching.features import Features, build_features
from customerkit.matching.normalize import extra_column, normalize_columns
from customerkit.matching.score import compare, level_matrix
from customerkit.matching.table import Kind, RecordTable, read_records

IntArray = npt.NDArray[np.int64]
#: ``progress(stage, done, total)``: stages "blocking", "comparing" (pairs), "estimating",
#: "scoring" and "grouping", in that order; ``total`` is 0 where there is nothing to count.
MatchProgress = Callable[[str, int, int], None]


def _id_rank(ids: Sequence[str]) -> IntArray:
    """Each id's position among the ids sorted as strings."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    rank = np.empty(len(ids), np.int64)
    rank[np.array(order, np.int64)] = np.arange(len(ids), dtype=np.int64)
    return rank


@attrs.frozen(kw_only=True, eq=False)
class Prepared:
    """Records read, normalised and blocked: what scoring needs."""

    table: RecordTable
    features: Features
    id_rank: IntArray
    left: IntArray
    right: IntArray
    names: tuple[str, ...]


def _extras(config: MatchConfig) -> list[tuple[str, str]]:
    return [(extra.field, extra.method) for extra in config.comparisons]


def prepare(table: RecordTable, config: MatchConfig, region: str) -> Prepared:
    """Normalise a table's records and block them into candidate pairs."""
    extras = _extras(config)
    norm = normalize_columns(table.kind, table.columns, region=region, extras=extras)
    id_rank = _id_rank(table.ids)
    features = build_features(table.kind, norm, config=config, scopes=table.scopes)
    rules = rules_for(table.kind, [(extra_column(field), method) for field, method in extras])
    left, right = candidate_pairs(
        rules, norm, table.scopes, id_rank, cap=config.block_cap, window=config.window
    )
    return Prepared(
        table=table,
        features=features,
        id_rank=id_rank,
        left=left,
        right=right,
        names=comparisons_of(table.kind, config),
    )


def read_table(
    records: Iterable[object], kind: Kind, config: MatchConfig, scope: str | None
) -> RecordTable:
    """Read records into a table, warning of columns the matcher does not know."""
    return read_records(
        records, kind=kind, scope=scope, extras=[e.field for e in config.comparisons], warn=True
    )


def levels_of_candidates(
    prepared: Prepared, config: MatchConfig, model: Model, progress: MatchProgress
) -> npt.NDArray[np.int8]:
    """The level matrix of every candidate pair, compared a chunk at a time."""
    parts = []
    total = int(prepared.left.size)
    progress("comparing", 0, total)
    for start in range(0, total, config.chunk_size):
        stop = start + config.chunk_size
        compared = compare(
            prepared.features, prepared.left[start:stop], prepared.right[start:stop], config, model
        )
        parts.append(level_matrix(compared, prepared.names))
        progress("comparing", min(stop, total), total)
    if not parts:
        return np.zeros((0, len(prepared.names)), np.int8)
    return np.concatenate(parts)


def _estimate(
    prepared: Prepared, config: MatchConfig, start: Parameters, matrix: npt.NDArray[np.int8]
) -> Parameters:
    """``u`` started from random pairs, then ``m``, ``u`` and the prior by EM over candidates."""
    n = len(prepared.table)
    sizes = level_sizes(prepared.names, config)
    model = Model.of(start, prepared.names)
    left, right = random_pairs(n, RANDOM_PAIRS, config.seed)
    chance = compare(prepared.features, left, right, config, model)
    u_values = frequencies(level_matrix(chance, prepared.names), sizes)
    u = {name: tuple(v.tolist()) for name, v in zip(prepared.names, u_values, strict=True)}
    patterns, counts = level_patterns(matrix, sizes)
    return estimate_parameters(
        patterns, counts, prepared.names, start, u, records=n, kind=prepared.table.kind
    )


def parameters_for(
    prepared: Prepared, config: MatchConfig, progress: MatchProgress
) -> tuple[Parameters, npt.NDArray[np.int8]]:
    """The parameters to score with (estimated when asked and possible), and the level matrix."""
    start = starting_parameters(prepared.table.kind, config)
    matrix = levels_of_candidates(prepared, config, Model.of(start, prepared.names), progress)
    if config.estimate and len(prepared.table) >= config.min_records and matrix.shape[0]:
        progress("estimating", 0, 0)
        return _estimate(prepared, config, start, matrix), matrix
    return start, matrix


def quiet(stage: str, done: int, total: int) -> None:
    """Progress nobody listens to."""
