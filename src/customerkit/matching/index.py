"""An incremental matching index: match one new record in milliseconds (rule M6).

``MatchIndex`` keeps, for every record, its normalised keys and its place in each block
(kept sorted the way batch blocking sorts an oversized block). Matching a new record looks up
its blocks, takes the members batch blocking would have compared it with, and scores them with
the batch scorer, so a pair ``customerkit.matching.api.find_duplicates`` reports is found
here with the same score. Records can be added and removed as a book changes.

The blocks come from a ``BlockSource``: by default the index's own, or a backend's storage
(the SQL books keep them in a table), in which case the index loads only the candidates.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from customerkit.matching.blocking import (
    column_keys,
    neighbours,
    record_keys,
    rules_for,
    scoped,
)
from customerkit.matching.column import Column
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

__all__ = ["BlockSource", "MatchIndex", "blocking_keys"]


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
    if not records:
        return {}
    ids, columns, scopes = _columns(records, kind, region, scope, config)
    keys: dict[str, list[tuple[str, str]]] = {record_id: [] for record_id in ids}
    at, blocks, orders = column_keys(_rules(kind, config), columns, scopes)
    for position, block, order in zip(at.tolist(), blocks, orders, strict=True):
        keys[ids[position]].append((block, order))
    return keys


def _extras(config: MatchConfig) -> list[tuple[str, str]]:
    return [(extra.field, extra.method) for extra in config.comparisons]


def _rules(kind: Kind, config: MatchConfig) -> tuple[Any, ...]:
    return rules_for(kind, [(extra_column(field), method) for field, method in _extras(config)])


def _columns(
    records: Sequence[object], kind: Kind, region: str, scope: str | None, config: MatchConfig
) -> tuple[Sequence[str], Mapping[str, Column], list[str] | None]:
    """The records' ids, normalised columns and scope values (None when not scoped)."""
    extras = _extras(config)
    table = read_records(records, kind=kind, scope=scope, extras=[f for f, _ in extras])
    columns = normalize_columns(kind, table.columns, region=region, extras=extras)
    scopes = table.scopes.tolist() if table.scopes is not None else None
    return table.ids, columns, scopes


def _normalised(
    records: Sequence[object], kind: Kind, region: str, scope: str | None, config: MatchConfig
) -> Iterator[tuple[int, str, dict[str, str], str | None]]:
    """(position, id, normalised row, scope value) of each record, normalised in one batch."""
    if not records:
        return
    ids, columns, scopes = _columns(records, kind, region, scope, config)
    # Plain lists: indexing a list is cheaper than looking a code up per value.
    norm = {name: column.tolist() for name, column in columns.items()}
    for position, record_id in enumerate(ids):
        row = {name: values[position] for name, values in norm.items()}
        yield position, record_id, row, scopes[position] if scopes is not None else None


class BlockSource(Protocol):
    """Where a ``MatchIndex`` reads its blocks: by default its own, or a backend's storage.

    A backend keeping blocking keys itself (``blocking_keys`` makes them) hands an index one of
    these, and the index loads only the candidates a new record's blocks name.
    """

    def neighbours(
        self, block: str, sort_key: str, record_id: str | None, *, cap: int, window: int
    ) -> Sequence[tuple[str, str]]:
        """The ``(sort key, id)`` members of ``block`` batch blocking compares a record with.

        The record sorts at ``(sort_key, record_id or "")`` and is itself left out; an
        oversized block (more than ``cap`` with the record) gives the ``window - 1`` members on
        each side of it, as ``customerkit.matching.blocking.neighbours`` does.
        """

    def count_names(self, names: Sequence[str]) -> Mapping[str, int]:
        """How many records have each of these name keys (for the name frequency)."""

    def count_named(self) -> int:
        """How many records have a name at all."""

    def name_of(self, record_id: str) -> str | None:
        """The name key ``record_id`` is counted under, or None when it is not counted.

        A record probed for its similar ones may be stored already: its counted name is then
        taken out, so that it is counted once, as the probe.
        """

    def load(self, ids: Sequence[str]) -> Sequence[object]:
        """The records with these ids that still take part in matching, in any order."""


class _HeldBlocks:
    """The blocks of the records a ``MatchIndex`` holds itself (its default ``BlockSource``)."""

    def __init__(self, held: Mapping[str, object], names: Mapping[str, str]) -> None:
        self.held = held  # the index's records, by id
        self.names = names  # their name keys, by id
        self.members: dict[str, list[tuple[str, str]]] = {}
        self.name_counts: Counter[str] = Counter()
        self.named = 0  # records with a name

    def put(self, record_id: str, keys: list[tuple[str, str]], name: str, *, insort: bool) -> None:
        """Place a record in its blocks (left unsorted unless ``insort``)."""
        for block, sort_key in keys:
            members = self.members.setdefault(block, [])
            if insort:
                bisect.insort(members, (sort_key, record_id))
            else:
                members.append((sort_key, record_id))
        self.name_counts[name] += 1
        self.named += bool(name)

    def drop(self, record_id: str, keys: list[tuple[str, str]], name: str) -> None:
        """Take a record out of its blocks."""
        for block, sort_key in keys:
            members = self.members[block]
            members.pop(bisect.bisect_left(members, (sort_key, record_id)))
            if not members:
                del self.members[block]
        self.name_counts[name] -= 1
        self.named -= bool(name)
        if not self.name_counts[name]:
            del self.name_counts[name]

    def sort(self) -> None:
        """Sort every block (after puts without ``insort``)."""
        for members in self.members.values():
            members.sort()

    def neighbours(
        self, block: str, sort_key: str, record_id: str | None, *, cap: int, window: int
    ) -> Sequence[tuple[str, str]]:
        members = self.members.get(block, [])
        if record_id is not None and record_id in self.held:
            members = [m for m in members if m[1] != record_id]
        entry = (sort_key, record_id or "")
        return neighbours(members, entry, cap=cap, window=window)

    def count_names(self, names: Sequence[str]) -> Mapping[str, int]:
        return {name: self.name_counts[name] for name in names}

    def count_named(self) -> int:
        return self.named

    def name_of(self, record_id: str) -> str | None:
        return self.names.get(record_id)

    def load(self, ids: Sequence[str]) -> Sequence[object]:
        return []  # every member is held already


class MatchIndex:
    """Records of one kind, indexed by their blocking keys for incremental matching.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        config: Matching settings (the same as batch matching should use).
        region: Default phone region.
        scope: A field partitioning the records (``"customer_id"``), or None.
        blocks: Where the blocks live when not in the index itself (a backend's storage). Such
            an index loads the candidates it needs from ``blocks`` and cannot be changed.

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
        blocks: BlockSource | None = None,
    ) -> None:
        fields_of(kind)  # validates the kind
        self.kind: Kind = kind
        self.config = config or MatchConfig()
        self.region = region
        self.scope = scope
        self._rules = _rules(kind, self.config)
        self._names_in_model = comparisons_of(kind, self.config)
        self._model = Model.of(starting_parameters(kind, self.config), self._names_in_model)
        # The records held, with what matching reads of them: all of them, or with ``blocks``
        # the candidates loaded so far.
        self._records: dict[str, Any] = {}
        self._rows: dict[str, dict[str, str]] = {}
        self._keys: dict[str, list[tuple[str, str]]] = {}
        self._scopes: dict[str, str | None] = {}
        self._names: dict[str, str] = {}
        self._held: _HeldBlocks | None = None
        self._blocks: BlockSource
        if blocks is None:
            self._held = self._blocks = _HeldBlocks(self._records, self._names)
        else:
            self._blocks = blocks
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
        if index._held is not None:
            index._held.sort()
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
        self._writable()
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
        """Hold a normalised record, in the held blocks (unsorted unless ``insort``) if any."""
        keys = record_keys(self._rules, row, scope)
        name = self._name_key(row, scope)
        if self._held is not None:
            self._held.put(record_id, keys, name, insort=insort)
        self._records[record_id] = record
        self._rows[record_id] = row
        self._keys[record_id] = keys
        self._scopes[record_id] = scope
        self._names[record_id] = name

    def _writable(self) -> _HeldBlocks:
        """The held blocks, which ``add`` and ``remove`` change (a backend's are read-only)."""
        if self._held is None:
            raise TypeError("a MatchIndex reading a backend's blocks cannot be changed")
        return self._held

    def _name_key(self, row: dict[str, str], scope: str | None) -> str:
        return scoped(name_key_of(self.kind, row), scope)

    def remove(self, record_id: str) -> None:
        """Forget a record.

        Args:
            record_id: Its id.

        Raises:
            KeyError: No record has this id.
            TypeError: The index reads a backend's blocks.
        """
        held = self._writable()
        keys = self._keys.pop(record_id)
        name = self._names.pop(record_id)
        held.drop(record_id, keys, name)
        del self._records[record_id]
        del self._rows[record_id]
        del self._scopes[record_id]

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
        """The candidate ids, sorted; those a backend's blocks name are loaded first."""
        found: set[str] = set()
        cap, window = self.config.block_cap, self.config.window
        for block, sort_key in record_keys(self._rules, row, scope):
            members = self._blocks.neighbours(block, sort_key, record_id, cap=cap, window=window)
            found.update(other for _, other in members)
        found.discard(record_id or "")
        ids = sorted(found)
        missing = [i for i in ids if i not in self._records]
        if not missing:
            return ids
        loaded = list(self._blocks.load(missing))
        if loaded:
            self._extend(loaded)
        return [i for i in ids if i in self._records]

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
        # A stored candidate is counted under the name it is stored with; it counts once, as the
        # candidate, whether its index holds it (memory) or only its blocks (a SQL book).
        name = self._name_key(row, scope)
        stored = self._blocks.name_of(record_id) if record_id is not None else None
        names = [name, *(self._names[i] for i in ids)]
        known = self._blocks.count_names(names)
        counts = np.array([known[key] - (key == stored) + (key == name) for key in names], np.int64)
        # How many records have a name matters only when a candidate shares the new record's
        # name; counting them is a range read on a SQL book, so skip it otherwise.
        shared = bool(name) and any(self._names[i] == name for i in ids)
        named = self._blocks.count_named() - bool(stored) + bool(name) if shared else 0
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
