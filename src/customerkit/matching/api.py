"""Finding duplicates among records, in one batch or one new record at a time.

Batch matching reads the records into columns, normalises each distinct value once, proposes
candidate pairs by blocking, compares them field by field, estimates the model's parameters
from the records themselves (when there are enough of them), scores every pair with its match
probability and joins the likely duplicates into groups.

>>> report = find_duplicates(
...     [
...         {"first_name": "Bob", "last_name": "Lee", "email": "BOB@x.com"},
...         {"first_name": "Robert", "last_name": "Lee", "email": "bob@x.com"},
...     ],
...     kind="contact",
... )
>>> report.pairs[0].reasons
('same email', 'nickname bob/robert', 'same last name')
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.errors import MatchingError
from customerkit.matching.blocking import candidate_pairs, rules_for
from customerkit.matching.config import MatchConfig, Parameters
from customerkit.matching.estimate import (
    em,
    estimate_parameters,
    fit_labelled,
    frequencies,
    level_patterns,
    random_pairs,
)
from customerkit.matching.groups import group_pairs
from customerkit.matching.index import MatchIndex
from customerkit.matching.normalize import extra_column, normalize_columns
from customerkit.matching.report import DuplicatePair, DuplicateReport, Evidence, SimilarMatch
from customerkit.matching.score import (
    FIELD_OF,
    Compared,
    Features,
    Model,
    build_features,
    compare,
    comparisons_of,
    level_matrix,
    levels_of,
    probability,
    reasons,
    starting_parameters,
    weigh,
)
from customerkit.matching.table import Kind, RecordTable, read_records

__all__ = ["compared_pairs", "find_duplicates", "find_similar", "fit"]

IntArray = npt.NDArray[np.int64]
#: ``progress(stage, done, total)``: stages "blocking", "comparing" (pairs), "estimating",
#: "scoring" and "grouping", in that order; ``total`` is 0 where there is nothing to count.
MatchProgress = Callable[[str, int, int], None]
#: Random pairs drawn to estimate ``u``.
_RANDOM_PAIRS: Final = 50_000


class _Values(Mapping[str, Mapping[str, str]]):
    """Field values of the records in a report, read from the table's columns on demand."""

    def __init__(self, table: RecordTable, positions: Iterable[int]) -> None:
        self._columns = table.columns
        self._position = {table.ids[p]: p for p in positions}

    def __getitem__(self, record_id: str) -> Mapping[str, str]:
        at = self._position[record_id]
        return {field: column[at] for field, column in self._columns.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector.

    Matching allocates millions of objects that hold no reference cycles; each automatic
    collection would walk all of them (and the caller's records) again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _id_rank(ids: Sequence[str]) -> IntArray:
    order = sorted(range(len(ids)), key=ids.__getitem__)
    rank = np.empty(len(ids), np.int64)
    rank[np.array(order, np.int64)] = np.arange(len(ids), dtype=np.int64)
    return rank


@attrs.frozen(kw_only=True, eq=False)
class _Prepared:
    """Records read, normalised and blocked: what scoring needs."""

    table: RecordTable
    features: Features
    id_rank: IntArray
    left: IntArray
    right: IntArray
    names: tuple[str, ...]


def _extras(config: MatchConfig) -> list[tuple[str, str]]:
    return [(extra.field, extra.method) for extra in config.comparisons]


def _prepare(table: RecordTable, config: MatchConfig, region: str) -> _Prepared:
    extras = _extras(config)
    norm = normalize_columns(table.kind, table.columns, region=region, extras=extras)
    id_rank = _id_rank(table.ids)
    features = build_features(table.kind, norm, config=config, scopes=table.scopes)
    rules = rules_for(table.kind, [(extra_column(field), method) for field, method in extras])
    left, right = candidate_pairs(
        rules, norm, table.scopes, id_rank, cap=config.block_cap, window=config.window
    )
    return _Prepared(
        table=table,
        features=features,
        id_rank=id_rank,
        left=left,
        right=right,
        names=comparisons_of(table.kind, config),
    )


def _read(
    records: Iterable[object], kind: Kind, config: MatchConfig, scope: str | None
) -> RecordTable:
    return read_records(
        records, kind=kind, scope=scope, extras=[e.field for e in config.comparisons], warn=True
    )


def _levels_of_candidates(
    prepared: _Prepared, config: MatchConfig, model: Model, progress: MatchProgress
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
    prepared: _Prepared, config: MatchConfig, start: Parameters, matrix: npt.NDArray[np.int8]
) -> Parameters:
    """``u`` started from random pairs, then ``m``, ``u`` and the prior by EM over candidates."""
    n = len(prepared.table)
    sizes = [len(levels_of(name, config)) for name in prepared.names]
    model = Model.of(start, prepared.names)
    left, right = random_pairs(n, _RANDOM_PAIRS, config.seed)
    chance = compare(prepared.features, left, right, config, model)
    u_values = frequencies(level_matrix(chance, prepared.names), sizes)
    u = {name: tuple(v.tolist()) for name, v in zip(prepared.names, u_values, strict=True)}
    patterns, counts = level_patterns(matrix, sizes)
    return estimate_parameters(
        patterns, counts, prepared.names, start, u, records=n, kind=prepared.table.kind
    )


def _parameters(
    prepared: _Prepared, config: MatchConfig, progress: MatchProgress
) -> tuple[Parameters, npt.NDArray[np.int8]]:
    start = starting_parameters(prepared.table.kind, config)
    matrix = _levels_of_candidates(prepared, config, Model.of(start, prepared.names), progress)
    if config.estimate and len(prepared.table) >= config.min_records and matrix.shape[0]:
        progress("estimating", 0, 0)
        return _estimate(prepared, config, start, matrix), matrix
    return start, matrix


def _quiet(stage: str, done: int, total: int) -> None:
    """Progress nobody listens to."""


def _dismissed_mask(
    left: IntArray, right: IntArray, apart: Mapping[int, set[int]]
) -> npt.NDArray[np.bool_]:
    """Which of the pairs (positions) were marked "not a duplicate" (see ``_apart``)."""
    if not apart:
        return np.zeros(left.size, np.bool_)
    return np.fromiter(
        (b in apart.get(a, ()) for a, b in zip(left.tolist(), right.tolist(), strict=True)),
        np.bool_,
        left.size,
    )


def _apart(ids: Sequence[str], dismissed: Iterable[tuple[str, str]]) -> dict[int, set[int]]:
    """Position -> the positions it must never share a group with (dismissed pairs)."""
    pairs = [(a, b) for a, b in dismissed if a != b]
    if not pairs:
        return {}
    wanted = {record_id for pair in pairs for record_id in pair}
    at = {record_id: p for p, record_id in enumerate(ids) if record_id in wanted}
    apart: dict[int, set[int]] = {}
    for a, b in pairs:
        if a in at and b in at:
            apart.setdefault(at[a], set()).add(at[b])
            apart.setdefault(at[b], set()).add(at[a])
    return apart


def _evidence(
    compared: Compared, k: int, names: Sequence[str], model: Model, config: MatchConfig
) -> tuple[Evidence, ...]:
    out = []
    for name in names:
        level = int(compared.levels[name][k])
        if level == 0:
            continue
        out.append(
            Evidence(
                field=FIELD_OF.get(name, name),
                level=levels_of(name, config)[level - 1],
                weight=round(float(model.weights[name][level]), 4),
            )
        )
    if compared.tf[k]:
        out.append(
            Evidence(field="name", level="frequency", weight=round(float(compared.tf[k]), 4))
        )
    return tuple(out)


def match_table(
    table: RecordTable,
    config: MatchConfig,
    region: str,
    *,
    dismissed: Iterable[tuple[str, str]] = (),
    progress: MatchProgress | None = None,
) -> DuplicateReport:
    """Find the duplicates among records already read into a table.

    Args:
        table: The records.
        config: Matching settings.
        region: Default phone region.
        dismissed: Pairs of ids never to report (marked "not a duplicate").
        progress: Told how far the work has come (see ``MatchProgress``).

    Returns:
        The report.
    """
    apart = _apart(table.ids, dismissed)
    progress = progress or _quiet
    progress("blocking", 0, 0)
    prepared = _prepare(table, config, region)
    parameters, matrix = _parameters(prepared, config, progress)
    progress("scoring", 0, 0)
    model = Model.of(parameters, prepared.names)
    levels = {name: matrix[:, column] for column, name in enumerate(prepared.names)}
    _, weight = weigh(prepared.features, prepared.left, prepared.right, levels, model)
    # Dismissals are looked up for the pairs above the threshold only, not every candidate.
    kept = np.flatnonzero(probability(weight) >= config.threshold)
    kept = kept[~_dismissed_mask(prepared.left[kept], prepared.right[kept], apart)]
    # Compare the kept pairs again for what the report says about them (similarities).
    compared = compare(prepared.features, prepared.left[kept], prepared.right[kept], config, model)
    id_rank = prepared.id_rank
    left, right, score = compared.left, compared.right, compared.score
    swap = id_rank[left] > id_rank[right]
    left, right = np.where(swap, right, left), np.where(swap, left, right)
    order = np.lexsort((id_rank[right], id_rank[left], -score))
    interned: dict[object, object] = {}

    def once(value: tuple[object, ...]) -> tuple[object, ...]:
        return interned.setdefault(value, value)  # type: ignore[return-value]

    ids = table.ids
    pairs = []
    pair_reasons = []
    for k in order.tolist():
        why = once(reasons(compared, k, prepared.features, model, config))
        pair_reasons.append(why)
        pairs.append(
            DuplicatePair(
                left_id=ids[left[k]],
                right_id=ids[right[k]],
                score=float(score[k]),
                match_weight=float(compared.weight[k]),
                reasons=why,  # type: ignore[arg-type]
                comparisons=once(_evidence(compared, k, prepared.names, model, config)),  # type: ignore[arg-type]
            )
        )
    left, right = left[order], right[order]
    progress("grouping", 0, 0)
    # Completeness counts the fields these records use (contacts rarely carry an address).
    fields = tuple(field for field in table.columns if table.filled(field).any())
    filled = np.zeros(len(table), np.int64)
    for field in fields:
        filled += table.filled(field)
    groups = group_pairs(
        left,
        right,
        pair_reasons,  # type: ignore[arg-type]
        ids=ids,
        id_rank=id_rank,
        filled=filled,
        contacted=table.last_contacted,
        created=table.created,
        total_fields=len(fields),
        link_fraction=config.link_fraction,
        apart=apart,  # a dismissed pair never shares a group either
    )
    involved = np.unique(np.concatenate((left, right))).tolist()
    given = table.originals
    return DuplicateReport(
        pairs=tuple(pairs),
        groups=tuple(groups),
        compared=int(prepared.left.size),
        kind=table.kind,
        fields=fields,
        values=_Values(table, involved),
        config=attrs.evolve(config, parameters=parameters, estimate=False),
        originals=None if given is None else {ids[p]: given[p] for p in involved},
    )


def find_duplicates(
    records: Iterable[object],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
    scope: str | None = None,
    dismissed: Iterable[tuple[str, str]] = (),
    progress: MatchProgress | None = None,
) -> DuplicateReport:
    """Find the duplicates among contacts or customers.

    Args:
        records: Mappings, attrs records (``Contact``, ``Customer``, ``NewContact``,
            ``NewCustomer``) or a pandas DataFrame whose columns are the model's field names
            (contacts may also have the customers' address fields). A record's id is its ``id``
            field as a string, else its position (``"0"``, ``"1"``, ...). None, NaN and
            ``pandas.NA`` mean missing. Columns the matcher does not know are named in an
            ``UnknownColumnsWarning``.
        kind: ``"contact"`` or ``"customer"``.
        config: Comparisons, parameters, threshold and blocking limits (defaults:
            ``MatchConfig``, which estimates the parameters from these records).
        region: Region assumed for phone numbers written without a country code.
        scope: A field that partitions the records, such as ``"customer_id"``: only records
            with the same value are compared (records without one are compared among
            themselves). None compares all records.
        dismissed: Pairs of ids marked "not a duplicate": never reported nor grouped.
        progress: Called as ``progress(stage, done, total)`` while the work goes on: stages
            "blocking", "comparing" (``done`` of ``total`` candidate pairs), "estimating",
            "scoring" and "grouping".

    Returns:
        Pairs whose match probability reaches the threshold, groups with a proposed main, the
        number of pairs compared, and the configuration (with the estimated parameters) that
        scores other records the same way.

    Raises:
        MatchingError: ``kind`` is unknown, two records have the same id, or ``records`` is
            not an iterable of records.
    """
    config = config or MatchConfig()
    with _collector_paused():
        table = _read(records, kind, config, scope)
        return match_table(table, config, region, dismissed=dismissed, progress=progress)


def compared_pairs(
    records: Iterable[object],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
    scope: str | None = None,
) -> list[tuple[str, str]]:
    """The pairs of ids blocking proposes for comparison, smaller id first, sorted.

    For measuring blocking: a true duplicate pair missing here can never be found.
    """
    config = config or MatchConfig()
    table = _read(records, kind, config, scope)
    prepared = _prepare(table, config, region)
    ids = table.ids
    return sorted(
        (min(ids[a], ids[b]), max(ids[a], ids[b]))
        for a, b in zip(prepared.left.tolist(), prepared.right.tolist(), strict=True)
    )


def fit(
    records: Iterable[object],
    labelled: Iterable[tuple[str, str, bool]],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
) -> MatchConfig:
    """A configuration whose parameters are fitted from pairs a person labelled.

    ``m`` comes from the pairs labelled duplicates, ``u`` from the others (label pairs the
    matcher compares, such as a report's, so that ``u`` describes compared pairs), and the share
    of duplicates among the records' compared pairs is estimated with both held.

    Args:
        records: The records the labelled pairs come from.
        labelled: ``(left_id, right_id, is_duplicate)`` triples; both kinds are needed.
        kind: ``"contact"`` or ``"customer"``.
        config: The settings to start from (comparisons, threshold, blocking).
        region: Default phone region.

    Returns:
        ``config`` with the fitted parameters and estimation switched off.

    Raises:
        MatchingError: An id is unknown, or the labels hold no duplicate or no non-duplicate.
    """
    config = config or MatchConfig()
    table = _read(records, kind, config, None)
    position = {record_id: at for at, record_id in enumerate(table.ids)}
    triples = list(labelled)
    unknown = sorted({i for a, b, _ in triples for i in (a, b) if i not in position})
    if unknown:
        msg = f"labelled pairs name ids that are not among the records: {', '.join(unknown[:5])}"
        raise MatchingError(msg, field="labelled")
    is_match = np.array([bool(label) for _, _, label in triples], np.bool_)
    if is_match.all() or not is_match.any():
        msg = "label at least one pair as a duplicate and one as not a duplicate"
        raise MatchingError(msg, field="labelled")
    prepared = _prepare(table, config, region)
    names = prepared.names
    model = Model.of(starting_parameters(kind, config), names)
    left = np.array([position[a] for a, _, _ in triples], np.int64)
    right = np.array([position[b] for _, b, _ in triples], np.int64)
    compared = compare(prepared.features, left, right, config, model)
    sizes = [len(levels_of(name, config)) for name in names]
    fitted = fit_labelled(level_matrix(compared, names), is_match, names, sizes, records=len(table))
    # The labelled share of duplicates says how the pairs were picked, not how many of the
    # compared pairs are duplicates: estimate that over the records' compared pairs.
    matrix = _levels_of_candidates(prepared, config, model, _quiet)
    if matrix.shape[0]:
        patterns, counts = level_patterns(matrix, sizes)
        fitted = em(
            patterns,
            counts,
            names,
            fitted,
            fitted.u,
            records=len(table),
            fixed_m=True,
            fixed_u=True,
        )
    return attrs.evolve(config, parameters=fitted, estimate=False)


def find_similar(
    candidate: object,
    index: MatchIndex,
    *,
    scope_value: str | None = None,
    limit: int | None = None,
) -> list[SimilarMatch]:
    """The indexed records similar to one new record, best first.

    Uses the index's blocking rules and scorer, so it finds every pair ``find_duplicates``
    would report for the candidate under the same parameters, with the same score.

    Args:
        candidate: A mapping or attrs record of the index's kind.
        index: The records to match against.
        scope_value: The candidate's scope (e.g. its customer id) when the index is scoped and
            the candidate does not carry it.
        limit: Return at most this many matches.

    Returns:
        Matches scoring at least the threshold, by score then id.
    """
    return index.find_similar(candidate, scope_value=scope_value, limit=limit)
