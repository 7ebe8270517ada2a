"""A memory book's tables and indexes, and the journal that undoes a unit of work's writes."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from customerkit import model
from customerkit.matching import MatchConfig, MatchIndex
from customerkit.ports import READ_ONLY_REFUSAL
from customerkit.search.index import MemorySearchIndex

_MISSING: Any = object()


class _Journal:
    """Undo steps of the running unit of work; every write of the memory book goes through it.

    A read-only unit of work's journal refuses every write, as SQL databases refuse them.
    """

    def __init__(self, *, read_only: bool = False) -> None:
        self.steps: list[Callable[[], None]] = []
        self.read_only = read_only

    def check_writable(self) -> None:
        """Raise ``RuntimeError`` in a read-only unit of work."""
        if self.read_only:
            raise RuntimeError(READ_ONLY_REFUSAL)

    def set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self.check_writable()
        old = table.get(key, _MISSING)
        table[key] = value
        self.steps.append(lambda: self._restore(table, key, old))

    def pop(self, table: dict[Any, Any], key: Any) -> None:
        self.check_writable()
        old = table.pop(key, _MISSING)
        self.steps.append(lambda: self._restore(table, key, old))

    def append(self, items: list[Any], item: Any) -> None:
        self.check_writable()
        items.append(item)
        self.steps.append(items.pop)

    def add_id(self, ids: SortedIds, key: str) -> None:
        self.check_writable()
        if ids.add(key):
            self.steps.append(lambda: ids.forget(key))

    def discard_id(self, ids: SortedIds, key: str) -> None:
        self.check_writable()
        if ids.discard(key):
            self.steps.append(lambda: ids.put(key))

    @staticmethod
    def _restore(table: dict[Any, Any], key: Any, old: Any) -> None:
        if old is _MISSING:
            table.pop(key, None)
        else:
            table[key] = old

    def undo(self) -> None:
        while self.steps:
            self.steps.pop()()


class SortedIds:
    """A set of ids kept in ascending order, read in constant memory (exports, matching).

    A sorted list of blocks, each at most ``2 * block`` ids long: adding or removing an id
    moves at most a block's worth of pointers, and reading in order from any id on walks the
    blocks, so an export of a million customers needs no sorted copy of a million ids.
    """

    def __init__(self, block: int = 1000) -> None:
        self._block = block
        self._blocks: list[list[str]] = []
        self._last: list[str] = []  # the largest id of each block, for bisecting

    def __len__(self) -> int:
        return sum(map(len, self._blocks))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SortedIds):
            return NotImplemented
        return self._blocks == other._blocks or list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SortedIds({list(self)!r})"

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        i = bisect_left(self._last, key)
        if i == len(self._last):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        return j < len(block) and block[j] == key

    def add(self, key: str) -> bool:
        """Add ``key``; whether it was new."""
        if not self._blocks:
            self._blocks.append([key])
            self._last.append(key)
            return True
        i = min(bisect_left(self._last, key), len(self._last) - 1)
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j < len(block) and block[j] == key:
            return False
        block.insert(j, key)
        self._last[i] = block[-1]
        if len(block) > 2 * self._block:
            half = len(block) // 2
            self._blocks[i : i + 1] = [block[:half], block[half:]]
            self._last[i : i + 1] = [block[half - 1], block[-1]]
        return True

    def discard(self, key: str) -> bool:
        """Remove ``key`` if present; whether it was."""
        i = bisect_left(self._last, key)
        if i == len(self._last):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j == len(block) or block[j] != key:
            return False
        del block[j]
        if block:
            self._last[i] = block[-1]
        else:
            del self._blocks[i], self._last[i]
        return True

    def put(self, key: str) -> None:
        """``add``, for an undo step."""
        self.add(key)

    def forget(self, key: str) -> None:
        """``discard``, for an undo step."""
        self.discard(key)

    def after(self, key: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids greater than ``key`` (all ids when ``None``), in order."""
        out: list[str] = []
        i = 0 if key is None else bisect_right(self._last, key)
        while i < len(self._blocks) and len(out) < limit:
            block = self._blocks[i]
            j = 0 if key is None else bisect_right(block, key)
            out.extend(block[j : j + limit - len(out)])
            i += 1
        return out

    def __iter__(self) -> Iterator[str]:
        # Keyset pagination: a page at a time, each starting after the last id returned, so
        # adding or removing ids while a reader is paused never skips or repeats one.
        key: str | None = None
        while page := self.after(key, self._block):
            yield from page
            key = page[-1]


class _State:
    """Every table of a memory book, with its secondary indexes."""

    def __init__(self) -> None:
        self.customers: dict[str, model.Customer] = {}
        self.by_location: dict[str, dict[str, None]] = {}
        #: The same ids in ascending order, for reading a location in id order.
        self.sorted_ids: dict[str, SortedIds] = {}
        self.numbers: dict[tuple[str, str], str] = {}
        self.usernames: dict[str, str] = {}
        self.source_ids: dict[tuple[str, str], str] = {}
        self.contacts: dict[str, model.Contact] = {}
        self.contacts_of: dict[str, dict[str, None]] = {}
        self.external_users: dict[str, str] = {}
        self.users: dict[str, model.User] = {}
        self.history: dict[str, list[model.ChangeRecord]] = {}
        self.history_seq: list[int] = [0]
        self.company_types: dict[str, model.CompanyType] = {}
        self.categories: dict[str, model.Category] = {}
        self.settings: dict[tuple[str, str], bool] = {}
        self.merges: dict[str, Mapping[str, Any]] = {}
        #: target id -> ids of the tombstones merged into it (customers and contacts alike).
        self.merged_into: dict[str, dict[str, None]] = {}
        #: (location id, kind, left id, right id) -> the dismissal of that pair.
        self.dismissals: dict[tuple[str, str, str, str], model.Dismissal] = {}
        #: (kind, record id) -> keys of the dismissals naming the record (purges remove them).
        self.dismissals_of: dict[tuple[str, str], dict[tuple[str, str, str, str], None]] = {}
        self.index = MemorySearchIndex()
        #: (kind, location id, phone region, config) -> matching index of the live records, as
        #: committed.
        self.match: dict[tuple[str, str, str, MatchConfig], MatchIndex] = {}

    def live_contacts(self, location_id: str) -> Iterator[model.Contact]:
        """The live contacts of the location's live customers."""
        for customer_id in self.sorted_ids.get(location_id, ()):
            if self.customers[customer_id].is_live:
                for contact_id in self.contacts_of.get(customer_id, {}):
                    if self.contacts[contact_id].is_live:
                        yield self.contacts[contact_id]


def _dismissal_key(
    location_id: str, kind: str, left_id: str, right_id: str
) -> tuple[str, str, str, str]:
    low, high = sorted((left_id, right_id))
    return location_id, kind, low, high


def _live_customers(
    state: _State, location_id: str, ids: Sequence[str] | None = None
) -> Iterator[model.Customer]:
    members = state.by_location.get(location_id, {})
    wanted: Iterable[str]
    if ids is None:
        wanted = state.sorted_ids.get(location_id, ())  # in order, without a sorted copy
    else:
        wanted = sorted(set(ids) & members.keys())
    for customer_id in wanted:
        customer = state.customers.get(customer_id)
        if customer is not None and customer.is_live:
            yield customer


def _oldest_first(contact: model.Contact) -> tuple[datetime, str]:
    """The order contacts are listed in (``for_customer``, exports)."""
    return contact.created_at, contact.id
