"""An incremental matching index: match one new record in milliseconds (rule M6).

``MatchIndex`` keeps, for every record, its normalised keys and its place in each block
(kept sorted the way batch blocking sorts an oversized block). Matching a new record looks up
its blocks, takes the members batch blocking would have compared it with, and scores them with
the batch scorer, so a pair ``customerkit.matching.api.find_duplicates`` reports is found
here with the same score. Records can be added and removed as a book changes.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from customerkit.matching.blocking import neighbours, record_keys, rules_for, scoped
from customerkit.matching.config import MatchConfig
from customerkit.matching.normalize import extra_column, normalize_columns
from customerkit.matching.report import SimilarMatch
from customerkit.matching.score import (
    Model,
    build_features,
    compare,
    comparisons_of,
    name_key_of,
    reasons,
    starting_parameters,
)
from customerkit.matching.table import (
    Kind,
    field_value,
    fields_of,
    is_missing,
    read_records,
    text_value,
)

__all__ = ["MatchIndex", "blocking_keys"]


def blocking_keys(
    records: Sequence[object],
    *,
    kind: Kind,
    region: str = "US",
    scope: str | None = None,
    config: MatchConfig | None = None,
) -> dict[str, list[tuple[str, str]]]:
    """Each record's blocking keys as ``(block, sort key)``, as ``MatchIndex`` keeps them.

    For a backend that stores blocks itself; values are normalised once per distinct value.

    Args:
        records: Mappings or attrs records with ids.
        kind: ``"contact"`` or ``"customer"``.
        region: Default phone region.
        scope: A field partitioning the records, or None.
        config: Matching settings (extra comparisons may add blocking keys).

    Returns:
        Record id -> its keys (empty for a record no rule gives a key).
    """
    config = config or MatchConfig()
    rules = _rules(kind, config)
    return {
        record_id: record_keys(rules, row, record_scope)
        for _, record_id, row, record_scope in _normalised(records, kind, region, scope, config)
    }


def _extras(config: MatchConfig) -> list[tuple[str, str]]:
    return [(extra.field, extra.method) for extra in config.comparisons]


def _rules(kind: Kind, config: MatchConfig) -> tuple[Any, ...]:
    return rules_for(kind, [(extra_column(field), method) for field, method in _extras(config)])


def _normalised(
    records: Sequence[object], kind: Kind, region: str, scope: str | None, config: MatchConfig
) -> Iterator[tuple[int, str, dict[str, str], str | None]]:
    """(position, id, normalised row, scope value) of each record, normalised in one batch."""
    if not records:
        return
    extras = _extras(config)
    table = read_records(records, kind=kind, scope=scope, extras=[f for f, _ in extras])
    # Plain lists: indexing a list is cheaper than looking a code up per value.
    columns = normalize_columns(kind, table.columns, region=region, extras=extras)
    norm = {name: column.tolist() for name, column in columns.items()}
    scopes = table.scopes.tolist() if table.scopes is not None else None
    for position, record_id in enumerate(table.ids):
        row = {name: values[position] for name, values in norm.items()}
        yield position, record_id, row, scopes[position] if scopes is not None else None


class MatchIndex:
    """Records of one kind, indexed by their blocking keys for incremental matching.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        config: Matching settings (the same as batch matching should use).
        region: Default phone region.
        scope: A field partitioning the records (``"customer_id"``), or None.

    Example:
        >>> index = MatchIndex.build([{"id": "k1", "first_name": "Ann", "last_name": "Lee",
        ...                            "email": "ann@x.com"}], kind="contact")
        >>> [m.score > 0.9 for m in index.find_similar({"first_name": "Anne",
        ...                                              "last_name": "Lee", "email": "ANN@x.com"})]
        [True]
    """

    def __init__(
        self,
        kind: Kind,
        *,
        config: MatchConfig | None = None,
        region: str = "US",
        scope: str | None = None,
    ) -> None:
        fields_of(kind)  # validates the kind
        self.kind: Kind = kind
        self.config = config or MatchConfig()
        self.region = region
        self.scope = scope
        self._rules = _rules(kind, self.config)
        self._names_in_model = comparisons_of(kind, self.config)
        self._model = Model.of(starting_parameters(kind, self.config), self._names_in_model)
        self._records: dict[str, Any] = {}
        self._rows: dict[str, dict[str, str]] = {}
        self._keys: dict[str, list[tuple[str, str]]] = {}
        self._blocks: dict[str, list[tuple[str, str]]] = {}
        self._scopes: dict[str, str | None] = {}
        self._names: dict[str, str] = {}
        self._name_counts: Counter[str] = Counter()
        self._named = 0  # records with a name
        self._added = 0

    @classmethod
    def build(
        cls,
        records: Iterable[object],
        *,
        kind: Kind,
        config: MatchConfig | None = None,
        region: str = "US",
        scope: str | None = None,
    ) -> MatchIndex:
        """An index of ``records`` (ids as in ``customerkit.matching.api.find_duplicates``).

        Args:
            records: Mappings or attrs records (not a DataFrame: pass ``df.to_dict("records")``).
            kind: ``"contact"`` or ``"customer"``.
            config: Matching settings.
            region: Default phone region.
            scope: A field partitioning the records, or None.

        Returns:
            The index.
        """
        index = cls(kind, config=config, region=region, scope=scope)
        rows = records if isinstance(records, Sequence) else list(records)
        if not rows:
            return index
        # One pass of batch normalisation (values repeat: each distinct one is normalised once)
        # and one sort per block, instead of an insort per record.
        index._extend(rows)
        for members in index._blocks.values():
            members.sort()
        index._added = len(rows)
        return index

    def _extend(self, records: Sequence[object]) -> None:
        """Index records with ids not indexed yet, leaving their blocks unsorted."""
        for position, record_id, row, scope in _normalised(
            records, self.kind, self.region, self.scope, self.config
        ):
            self._put(record_id, records[position], row, scope)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._records

    def _read(
        self, record: object, scope_value: str | None = None
    ) -> tuple[str | None, dict[str, str], str | None]:
        """(id or None, normalised row, scope value or None) of one record."""
        extras = _extras(self.config)
        table = read_records(
            [record], kind=self.kind, scope=self.scope, extras=[f for f, _ in extras]
        )
        norm = normalize_columns(self.kind, table.columns, region=self.region, extras=extras)
        row = {name: values[0] for name, values in norm.items()}
        scope = table.scopes[0] if table.scopes is not None else None
        if self.scope is not None and scope_value is not None:
            scope = scope_value
        raw_id = field_value(record, "id")
        return (None if is_missing(raw_id) else text_value(raw_id)), row, scope

    def add(self, record: object) -> str:
        """Index a record (replacing one with the same id).

        Args:
            record: A mapping or attrs record; without an ``id`` it gets the number of records
                added before it, as a string (the position batch matching would give it).

        Returns:
            The record's id.
        """
        record_id, row, scope = self._read(record)
        if record_id is None:
            record_id = str(self._added)
        self._added += 1
        if record_id in self._records:
            self.remove(record_id)
        self._put(record_id, record, row, scope, insort=True)
        return record_id

    def _put(
        self,
        record_id: str,
        record: object,
        row: dict[str, str],
        scope: str | None,
        *,
        insort: bool = False,
    ) -> None:
        """Index a normalised record (blocks left unsorted unless ``insort``)."""
        keys = record_keys(self._rules, row, scope)
        for block, sort_key in keys:
            members = self._blocks.setdefault(block, [])
            if insort:
                bisect.insort(members, (sort_key, record_id))
            else:
                members.append((sort_key, record_id))
        self._records[record_id] = record
        self._rows[record_id] = row
        self._keys[record_id] = keys
        self._scopes[record_id] = scope
        name = self._name_key(row, scope)
        self._names[record_id] = name
        self._name_counts[name] += 1
        self._named += bool(name)

    def _name_key(self, row: dict[str, str], scope: str | None) -> str:
        return scoped(name_key_of(self.kind, row), scope)

    def remove(self, record_id: str) -> None:
        """Forget a record.

        Args:
            record_id: Its id.

        Raises:
            KeyError: No record has this id.
        """
        keys = self._keys.pop(record_id)
        for block, sort_key in keys:
            members = self._blocks[block]
            members.pop(bisect.bisect_left(members, (sort_key, record_id)))
            if not members:
                del self._blocks[block]
        del self._records[record_id]
        del self._rows[record_id]
        del self._scopes[record_id]
        name = self._names.pop(record_id)
        self._name_counts[name] -= 1
        self._named -= bool(name)
        if not self._name_counts[name]:
            del self._name_counts[name]

    def candidates(self, record: object, *, scope_value: str | None = None) -> list[str]:
        """Ids of the indexed records blocking would compare ``record`` with, sorted.

        Args:
            record: A mapping or attrs record.
            scope_value: The record's scope when it does not carry it.

        Returns:
            The candidate ids (never the record's own id).
        """
        record_id, row, scope = self._read(record, scope_value)
        return self._candidates(record_id, row, scope)

    def _candidates(
        self, record_id: str | None, row: dict[str, str], scope: str | None
    ) -> list[str]:
        found: set[str] = set()
        for block, sort_key in record_keys(self._rules, row, scope):
            found.update(other for _, other in self._neighbours(block, sort_key, record_id))
        found.discard(record_id or "")
        return sorted(found)

    def _neighbours(
        self, block: str, sort_key: str, record_id: str | None
    ) -> Sequence[tuple[str, str]]:
        """The members of ``block`` batch blocking compares a record sorting at ``sort_key`` with.

        A backend keeping blocks elsewhere overrides this (and loads the members it returns).
        """
        members = self._blocks.get(block, [])
        if record_id is not None and record_id in self._records:
            members = [m for m in members if m[1] != record_id]
        entry = (sort_key, record_id or "")
        return neighbours(members, entry, cap=self.config.block_cap, window=self.config.window)

    def _count_names(self, names: Sequence[str]) -> Mapping[str, int]:
        """How many indexed records have each of these name keys (for the name frequency)."""
        return {name: self._name_counts[name] for name in names}

    def _count_named(self) -> int:
        """How many indexed records have a name at all."""
        return self._named

    def find_similar(
        self, candidate: object, *, scope_value: str | None = None, limit: int | None = None
    ) -> list[SimilarMatch]:
        """The indexed records similar to ``candidate``, best first (rule M6).

        Args:
            candidate: A mapping or attrs record of the index's kind.
            scope_value: The candidate's scope (e.g. its customer id) when it does not carry it.
            limit: Return at most this many matches.

        Returns:
            Matches scoring at least the threshold, by score then id.
        """
        record_id, row, scope = self._read(candidate, scope_value)
        ids = self._candidates(record_id, row, scope)
        if not ids:
            return []
        rows = [row, *(self._rows[i] for i in ids)]
        norm = {name: [r[name] for r in rows] for name in row}
        # Name counts as batch matching would see them with the candidate among the records.
        name = self._name_key(row, scope)
        extra = 0 if record_id is not None and record_id in self._records else 1
        names = [name, *(self._names[i] for i in ids)]
        known = self._count_names(names)
        counts = np.array([known[key] + (extra if key == name else 0) for key in names], np.int64)
        # How many records have a name matters only when a candidate shares the new record's
        # name; counting them is a range read on a SQL book, so skip it otherwise.
        shared = bool(name) and any(self._names[i] == name for i in ids)
        named = self._count_named() + extra if shared else 0
        scopes = [scope, *(self._scopes[i] for i in ids)] if self.scope is not None else None
        features = build_features(
            self.kind,
            norm,
            config=self.config,
            scopes=scopes,
            name_counts=counts,
            named=named,
        )
        right = np.arange(1, len(rows), dtype=np.int64)
        model = self._model
        compared = compare(features, np.zeros(right.size, np.int64), right, self.config, model)
        keep = np.flatnonzero(compared.score >= self.config.threshold).tolist()
        keep.sort(key=lambda k: (-compared.weight[k], ids[k]))
        return [
            SimilarMatch(
                record=self._records[ids[k]],
                score=float(compared.score[k]),
                reasons=reasons(compared, k, features, model, self.config),
            )
            for k in keep[:limit]
        ]
