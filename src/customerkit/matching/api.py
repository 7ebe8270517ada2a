"""Finding duplicates among records, in one batch or one new record at a time (M1, M2, M5, M6).

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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from customerkit.matching.blocking import candidate_pairs, rules_for
from customerkit.matching.config import MatchConfig
from customerkit.matching.groups import group_pairs
from customerkit.matching.index import MatchIndex
from customerkit.matching.normalize import normalize_columns
from customerkit.matching.report import DuplicatePair, DuplicateReport, SimilarMatch
from customerkit.matching.score import build_features, compare, reasons
from customerkit.matching.table import Kind, RecordTable, fields_of, read_records

__all__ = ["find_duplicates", "find_similar"]

IntArray = npt.NDArray[np.int64]


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


def _score_candidates(
    table: RecordTable, config: MatchConfig, region: str
) -> tuple[IntArray, IntArray, npt.NDArray[np.float64], list[tuple[str, ...]], int, IntArray]:
    """Block, compare and keep the pairs above the threshold (positions, unordered)."""
    norm = normalize_columns(table.kind, table.columns, region=region)
    id_rank = _id_rank(table.ids)
    features = build_features(table.kind, norm, scopes=table.scopes)
    left, right = candidate_pairs(
        rules_for(table.kind),
        norm,
        table.scopes,
        id_rank,
        cap=config.block_cap,
        window=config.window,
    )
    del norm
    kept_left, kept_right, kept_score = [], [], []
    kept_reasons: list[tuple[str, ...]] = []
    interned: dict[tuple[str, ...], tuple[str, ...]] = {}
    for start in range(0, left.size, config.chunk_size):
        stop = start + config.chunk_size
        comparison = compare(features, left[start:stop], right[start:stop], config)
        keep = np.flatnonzero(comparison.score >= config.threshold)
        kept_left.append(comparison.left[keep])
        kept_right.append(comparison.right[keep])
        kept_score.append(comparison.score[keep])
        for k in keep.tolist():
            why = reasons(comparison, k, features)
            kept_reasons.append(interned.setdefault(why, why))
    empty = np.empty(0, np.int64)
    return (
        np.concatenate(kept_left) if kept_left else empty,
        np.concatenate(kept_right) if kept_right else empty,
        np.concatenate(kept_score) if kept_score else np.empty(0, np.float64),
        kept_reasons,
        int(left.size),
        id_rank,
    )


def _apart(ids: Sequence[str], dismissed: Iterable[tuple[str, str]]) -> dict[int, set[int]]:
    """Position -> the positions it must not be paired or grouped with (ids not here ignored)."""
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


def match_table(
    table: RecordTable,
    config: MatchConfig,
    region: str,
    *,
    dismissed: Iterable[tuple[str, str]] = (),
) -> DuplicateReport:
    """Find the duplicates among records already read into a table.

    Args:
        table: The records.
        config: Matching settings.
        region: Default phone region.
        dismissed: Pairs of ids (either order) a person decided are not duplicates.

    Returns:
        The report.
    """
    left, right, score, why, compared, id_rank = _score_candidates(table, config, region)
    apart = _apart(table.ids, dismissed)
    if apart:  # drop dismissed pairs; group_pairs keeps them out of one group too
        keep = [
            k
            for k, (a, b) in enumerate(zip(left.tolist(), right.tolist(), strict=True))
            if b not in apart.get(a, ())
        ]
        left, right, score = left[keep], right[keep], score[keep]
        why = [why[k] for k in keep]
    swap = id_rank[left] > id_rank[right]
    left, right = np.where(swap, right, left), np.where(swap, left, right)
    order = np.lexsort((id_rank[right], id_rank[left], -score))
    left, right, score = left[order], right[order], score[order]
    ordered_reasons = [why[k] for k in order.tolist()]
    ids = table.ids
    pairs = tuple(
        DuplicatePair(left_id=ids[a], right_id=ids[b], score=s, reasons=r)
        for a, b, s, r in zip(
            left.tolist(), right.tolist(), score.tolist(), ordered_reasons, strict=True
        )
    )
    fields = fields_of(table.kind)
    filled = np.zeros(len(table), np.int64)
    for field in fields:
        filled += table.filled(field)
    groups = group_pairs(
        left,
        right,
        ordered_reasons,
        ids=ids,
        id_rank=id_rank,
        filled=filled,
        contacted=table.last_contacted,
        created=table.created,
        total_fields=len(fields),
        link_fraction=config.link_fraction,
        apart=apart,
    )
    involved = np.unique(np.concatenate((left, right))).tolist()
    return DuplicateReport(
        pairs=pairs,
        groups=tuple(groups),
        compared=compared,
        kind=table.kind,
        fields=fields,
        values=_Values(table, involved),
    )


def find_duplicates(
    records: Iterable[object],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
    scope: str | None = None,
    dismissed: Iterable[tuple[str, str]] = (),
) -> DuplicateReport:
    """Find the duplicates among contacts or customers (rules M1, M2, M5).

    Args:
        records: Mappings, attrs records (``Contact``, ``Customer``, ``NewContact``,
            ``NewCustomer``) or a pandas DataFrame whose columns are the model's field names.
            A record's id is its ``id`` field as a string, else its position (``"0"``, ``"1"``,
            ...). None, NaN and ``pandas.NA`` mean missing.
        kind: ``"contact"`` or ``"customer"``.
        config: Weights, threshold and blocking limits (defaults: :class:`MatchConfig`).
        region: Region assumed for phone numbers written without a country code.
        scope: A field that partitions the records, such as ``"customer_id"``: only records
            with the same value are compared (records without one are compared among
            themselves). None compares all records.
        dismissed: Pairs of ids, in either order, a person decided are not duplicates: they
            are never reported, and never end up in one group.

    Returns:
        Pairs above the threshold, groups with a proposed main, and the number of pairs
        compared.

    Raises:
        ValueError: ``kind`` is unknown, or two records have the same id.
    """
    with _collector_paused():
        table = read_records(records, kind=kind, scope=scope)
        return match_table(table, config or MatchConfig(), region, dismissed=dismissed)


def find_similar(
    candidate: object,
    index: MatchIndex,
    *,
    scope_value: str | None = None,
    limit: int | None = None,
) -> list[SimilarMatch]:
    """The indexed records similar to one new record, best first (rule M6).

    Uses the index's blocking rules and scorer, so it finds every pair :func:`find_duplicates`
    would report for the candidate, with the same score.

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
