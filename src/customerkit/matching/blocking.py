"""Blocking: which pairs of records are compared at all (rule M5).

Each record gets one key per blocking rule (same email, same phone, a phonetic name key, ...);
only records that share a key are compared. A block of at most ``block_cap`` records compares
every pair; a larger block (a common surname among a million contacts) is sorted by a secondary
key and each record is compared with its ``window - 1`` following neighbours (the "sorted
neighbourhood" method), so no key ever costs n² comparisons and the total work grows with n.

When a scope is given (contacts of one customer), keys carry the scope value and records of
different scopes never share a block.

Batch matching uses ``candidate_pairs``; the incremental ``customerkit.matching.index.
MatchIndex`` uses ``record_keys`` and ``neighbours`` on the same rules, so both compare
the same pairs.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import attrs
import jellyfish
import numpy as np
import numpy.typing as npt

from customerkit.matching.column import Column, distinct_rows
from customerkit.matching.normalize import full_name_key

__all__ = [
    "CONTACT_RULES",
    "CUSTOMER_RULES",
    "NAME_RULES",
    "BlockingRule",
    "candidate_pairs",
    "column_keys",
    "name_block",
    "neighbours",
    "record_keys",
    "rules_for",
    "scoped",
]

IntArray = npt.NDArray[np.int64]

_SCOPE_SEP: Final = "\x1e"
_SEP: Final = "\x1f"


@lru_cache(maxsize=1 << 18)
def _phonetic(name: str) -> str:
    return str(jellyfish.metaphone(name.replace(" ", ""))) or name


def _sound_and_initial(name: str, other: str) -> str:
    """Metaphone of ``name`` and the first letter of ``other`` ("SM0|r" for Smith, Robert)."""
    if not name or not other:
        return ""
    return f"{_phonetic(name)}|{other[0]}"


def _sorted_words(value: str) -> str:
    """The words of ``value``, sorted."""
    return " ".join(sorted(value.split())) if value else ""


def _sounds(value: str) -> str:
    """The phonetic keys of the words of ``value``, sorted ("jon smith" and "smyth john")."""
    return " ".join(sorted(_phonetic(word) for word in value.split())) if value else ""


def _postal_and_prefix(postal: str, company: str) -> str:
    return f"{postal}|{company[:4]}" if postal and company else ""


def _house(address: str) -> str:
    head = address.split(" ", 1)[0]
    return head if head.isdigit() else ""


def _street(address: str) -> str:
    """The street of an address without its house number."""
    head, _, rest = address.partition(" ")
    return rest if head.isdigit() else address


def _house_and_street(address: str) -> str:
    house, street = _house(address), _street(address)
    return f"{house}|{street[:3]}" if house and street else ""


def _with_house(other: str, address: str) -> str:
    house = _house(address)
    return f"{other}|{house}" if other and house else ""


def _street_prefix(address: str) -> str:
    """The start of the street's name ("main st" and "mainst" share it)."""
    return _street(address).replace(" ", "")[:4]


def _street_and_city(address: str, city: str) -> str:
    street = _street_prefix(address)
    return f"{street}|{city[:3]}" if street and city else ""


def _postal_and_street(postal: str, address: str) -> str:
    street = _street_prefix(address)
    return f"{postal}|{street}" if postal and street else ""


def _word_sounds_with(value: str, other: str) -> tuple[str, ...]:
    """One key per word of ``value`` (its phonetic key) with ``other``: "SM0|80202", ..."""
    if not value or not other:
        return ()
    return tuple(sorted({f"{_phonetic(word)}|{other}" for word in value.split() if len(word) > 1}))


def _word_sounds_with_house(value: str, address: str) -> tuple[str, ...]:
    return _word_sounds_with(value, _house(address))


def _word_sounds_with_street(value: str, address: str) -> tuple[str, ...]:
    return _word_sounds_with(value, _street(address).replace(" ", "")[:3])


def _sound_with(value: str, other: str) -> str:
    return f"{_phonetic(value)}|{other}" if value and other else ""


@attrs.frozen
class BlockingRule:
    """One blocking key: records with equal non-empty keys are compared.

    Attributes:
        name: The rule's name (keys of different rules never mix).
        fields: Normalised columns passed to ``key``.
        key: Computes the key from the fields (``""``: no key); None uses the one field as is.
        order: Columns whose values, joined by a space, order an oversized block (then the id).
        multi: ``key`` returns a tuple of keys (a record may sit in several blocks of the rule).
    """

    name: str
    fields: tuple[str, ...]
    key: Callable[..., Any] | None
    order: tuple[str, ...]
    multi: bool = False

    def keys_of(self, row: Mapping[str, str]) -> tuple[str, ...]:
        """The keys of one normalised record (none, one, or several for a ``multi`` rule)."""
        if self.key is None:
            value = row[self.fields[0]]
            return (value,) if value else ()
        key = self.key(*(row[field] for field in self.fields))
        if self.multi:
            return tuple(key)
        return (key,) if key else ()

    def order_of(self, row: Mapping[str, str]) -> str:
        """The value ordering one normalised record in an oversized block."""
        return " ".join(row[field] for field in self.order)


def _address_rules(name: str) -> tuple[BlockingRule, ...]:
    """Rules on addresses, for customers and for contacts of a data set that has addresses.

    Each pairs records that share part of an address, so a typo in one part still leaves
    another to meet on. ``name`` is the column of the record's name (last name, company).
    """
    return (
        BlockingRule("house-street", ("address",), _house_and_street, ("postal",)),
        BlockingRule("postal-house", ("postal", "address"), _with_house, ("address",)),
        BlockingRule("city-house", ("city", "address"), _with_house, ("address",)),
        BlockingRule("street-city", ("address", "city"), _street_and_city, (name,)),
        BlockingRule("postal-street", ("postal", "address"), _postal_and_street, ("address",)),
        BlockingRule("line2", ("address_line2",), None, (name,)),
    )


#: Blocking rules for contacts.
CONTACT_RULES: Final = (
    BlockingRule("email", ("email",), None, ("last", "given")),
    BlockingRule("phone", ("phone",), None, ("last", "given")),
    BlockingRule("last-sound", ("last", "given"), _sound_and_initial, ("given", "last")),
    BlockingRule("given-sound", ("given", "last"), _sound_and_initial, ("last", "given")),
    BlockingRule("name-words", ("given", "last"), full_name_key, ("email",)),
    *_address_rules("last"),
    BlockingRule("last-postal", ("last", "postal"), _sound_with, ("given",)),
    BlockingRule("last-house", ("last", "address"), _with_house, ("given",)),
)

#: Blocking rules for customers.
CUSTOMER_RULES: Final = (
    BlockingRule("number", ("number",), None, ("company",)),
    BlockingRule("phone", ("phone",), None, ("company",)),
    BlockingRule("email", ("email",), None, ("company",)),
    BlockingRule("company-words", ("company",), _sorted_words, ("postal", "address")),
    BlockingRule("company-sound", ("company",), _sounds, ("postal", "address")),
    BlockingRule("postal-company", ("postal", "company"), _postal_and_prefix, ("company",)),
    *_address_rules("company"),
    BlockingRule("word-postal", ("company", "postal"), _word_sounds_with, ("company",), True),
    BlockingRule("word-house", ("company", "address"), _word_sounds_with_house, ("company",), True),
)


def rules_for(kind: str, extras: Sequence[tuple[str, str]] = ()) -> tuple[BlockingRule, ...]:
    """The blocking rules of ``"contact"`` or ``"customer"``.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        extras: ``(normalised column, method)`` of extra comparisons: exact and date columns
            are blocking keys too.
    """
    rules = CONTACT_RULES if kind == "contact" else CUSTOMER_RULES
    order = ("last", "given") if kind == "contact" else ("company",)
    more = tuple(
        BlockingRule(column, (column,), None, order)
        for column, method in extras
        if method in {"exact", "date"}
    )
    return rules + more


#: The rule whose blocks hold the records sharing a name (full name, or company words).
NAME_RULES: Final = {"contact": "name-words", "customer": "company-words"}


def name_block(kind: str, name_key: str) -> str:
    """The block of ``kind``'s name rule for a (scoped) name key; ``""`` gives the rule's prefix."""
    return f"{NAME_RULES[kind]}{_SEP}{name_key}"


def scoped(key: str, scope: str | None) -> str:
    """``key`` within ``scope`` (unchanged when not scoped or empty)."""
    return f"{scope}{_SCOPE_SEP}{key}" if scope is not None and key else key


def record_keys(
    rules: Sequence[BlockingRule], row: Mapping[str, str], scope: str | None
) -> list[tuple[str, str]]:
    """The block keys of one normalised record, each with its sort key.

    Args:
        rules: The blocking rules.
        row: Normalised column -> value.
        scope: The record's scope value, or None when matching is not scoped.

    Returns:
        ``(rule name + key, sort key)`` for each rule that gives the record a key.
    """
    out: list[tuple[str, str]] = []
    for rule in rules:
        order = rule.order_of(row)
        out.extend((f"{rule.name}{_SEP}{scoped(key, scope)}", order) for key in rule.keys_of(row))
    return out


def column_keys(
    rules: Sequence[BlockingRule],
    norm: Mapping[str, Sequence[str]],
    scopes: Sequence[str | None] | None = None,
) -> tuple[IntArray, list[str], list[str]]:
    """``record_keys`` of every record of normalised columns at once.

    Each rule's keys and sort keys are computed once per distinct combination of the fields
    they read (names, streets and towns repeat thousands of times), not once per record.

    Args:
        rules: The blocking rules.
        norm: Normalised columns, one value per record.
        scopes: Each record's scope value, or None when matching is not scoped.

    Returns:
        ``(record, block, sort key)`` of every key, as three sequences: records in order, and
        each record's keys in the order ``record_keys`` gives them.
    """
    columns = _Columns(norm)
    n = len(next(iter(norm.values()), ()))
    every = np.arange(n, dtype=np.int64)
    records: list[IntArray] = []
    blocks: list[str] = []
    orders: list[str] = []
    for rule in rules:
        at, keys = _rule_keys(rule, columns, every)
        distinct, inverse = columns.apply(rule.order, _join, at)
        orders.extend(distinct[i] for i in inverse.tolist())
        prefix = f"{rule.name}{_SEP}"
        if scopes is None:
            blocks.extend(prefix + key for key in keys)
        else:
            blocks.extend(
                prefix + scoped(key, scopes[r]) for key, r in zip(keys, at.tolist(), strict=True)
            )
        records.append(at)
    record = np.concatenate(records) if records else every
    # By record; within a record by rule, as each rule's keys were appended (a stable sort).
    order = np.argsort(record, kind="stable")
    picked = order.tolist()
    return record[order], [blocks[i] for i in picked], [orders[i] for i in picked]


def _rule_keys(
    rule: BlockingRule, columns: _Columns, every: IntArray
) -> tuple[IntArray, list[str]]:
    """(record, key) of every key one rule gives the records, as ``BlockingRule.keys_of``."""
    if rule.key is None:
        column = columns.column(rule.fields[0])
        at = np.flatnonzero(column.codes >= 0)
        return at, column.texts_at(at)
    distinct, inverse = columns.apply(rule.fields, rule.key, every)
    if rule.multi:
        counts = np.fromiter(map(len, distinct), np.int64, len(distinct))[inverse]
        keys = [key for d in inverse.tolist() for key in distinct[d]]
        return np.repeat(every, counts), keys
    has_key = np.fromiter(map(bool, distinct), np.bool_, len(distinct))
    at = np.flatnonzero(has_key[inverse]) if inverse.size else every
    return at, [distinct[i] for i in inverse[at].tolist()]


def neighbours(
    block: Sequence[tuple[str, str]], entry: tuple[str, str], *, cap: int, window: int
) -> Sequence[tuple[str, str]]:
    """The members of a sorted block that batch blocking would compare with ``entry``.

    Args:
        block: The block's other members as ``(sort key, id)``, sorted.
        entry: The new record's ``(sort key, id)``.
        cap: ``MatchConfig.block_cap``.
        window: ``MatchConfig.window``.

    Returns:
        All members when the block (with the new record) is within the cap, else the
        ``window - 1`` members on each side of where the new record sorts.
    """
    if len(block) + 1 <= cap:
        return block
    at = bisect.bisect_left(block, entry)
    return block[max(0, at - window + 1) : at + window - 1]


def rank_values(values: Sequence[str]) -> IntArray:
    """Each value's rank in sorted order (equal values share a rank)."""
    order = {value: rank for rank, value in enumerate(sorted(set(values)))}
    return np.fromiter(map(order.__getitem__, values), np.int64, len(values))


class _Columns:
    """Normalised columns, each read as a ``Column`` once, and their combinations."""

    def __init__(self, norm: Mapping[str, Sequence[str]]) -> None:
        self.norm = norm
        self._columns: dict[str, Column] = {}
        self._combinations: dict[frozenset[str], tuple[IntArray, IntArray]] = {}

    def column(self, field: str) -> Column:
        if field not in self._columns:
            self._columns[field] = Column.of(self.norm[field])
        return self._columns[field]

    def codes(self, field: str) -> IntArray:
        return self.column(field).codes

    def combinations(self, fields: Sequence[str]) -> tuple[IntArray, IntArray]:
        """(combination number per record, a record of each) of the values of ``fields``.

        Kept per set of fields: rules key and order by the same names in either order.
        """
        wanted = frozenset(fields)
        if wanted not in self._combinations:
            parts = [self.codes(field) for field in sorted(wanted)]
            self._combinations[wanted] = distinct_rows(parts)
        return self._combinations[wanted]

    def apply(
        self, fields: Sequence[str], function: Callable[..., str], rows: IntArray
    ) -> tuple[list[str], IntArray]:
        """``function`` of ``fields`` at ``rows``, called once per distinct combination.

        Returns:
            The distinct results' strings and, per row, the index of its string.
        """
        combination, first_at = self.combinations(fields)
        at_rows = combination[rows]
        present = np.flatnonzero(np.bincount(at_rows, minlength=first_at.size))
        index = np.zeros(first_at.size, np.int64)
        index[present] = np.arange(present.size)
        texts = [self.column(field).texts_at(first_at[present]) for field in fields]
        return [function(*args) for args in zip(*texts, strict=True)], index[at_rows]


def _join(*values: str) -> str:
    return " ".join(values)


def _entries(
    rule: BlockingRule, columns: _Columns, scopes: IntArray | None
) -> tuple[IntArray, IntArray]:
    """(position, key code) of every key the rule gives: equal keys, equal codes."""
    n = columns.codes(rule.fields[0]).size
    every = np.arange(n)
    if rule.key is None:
        positions, keys = every, columns.codes(rule.fields[0])
    elif not rule.multi:
        distinct, inverse = columns.apply(rule.fields, rule.key, every)
        positions, keys = every, Column.of(distinct).codes[inverse]
    else:
        distinct, inverse = columns.apply(rule.fields, rule.key, every)
        lengths = np.fromiter(map(len, distinct), np.int64, len(distinct))
        offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        flat = Column.of([key for keys in distinct for key in keys]).codes
        per_row = lengths[inverse]
        positions = np.repeat(every, per_row)
        firsts = np.repeat(np.cumsum(per_row) - per_row, per_row)
        keys = flat[np.repeat(offsets[inverse], per_row) + np.arange(positions.size) - firsts]
    present = keys >= 0
    positions, keys = positions[present], keys[present]
    if scopes is None:
        return positions, keys
    scoped_keys = keys * (int(scopes.max(initial=0)) + 1) + scopes[positions]
    _, dense = np.unique(scoped_keys, return_inverse=True)
    return positions, dense.reshape(-1).astype(np.int64)


def _rule_pairs(
    rule: BlockingRule,
    columns: _Columns,
    scopes: IntArray | None,
    id_rank: IntArray,
    *,
    cap: int,
    window: int,
) -> IntArray:
    """Pair codes (``low * n + high`` over positions) that one rule proposes."""
    positions, codes = _entries(rule, columns, scopes)

    def order_ranks(entries: IntArray) -> IntArray:
        distinct, inverse = columns.apply(rule.order, _join, positions[entries])
        return rank_values(distinct)[inverse]

    return entry_pairs(positions, codes, id_rank, order_ranks, cap=cap, window=window)


def entry_pairs(
    positions: IntArray,
    codes: IntArray,
    id_rank: IntArray,
    order_ranks: Callable[[IntArray], IntArray],
    *,
    cap: int,
    window: int,
) -> IntArray:
    """Pair codes (``low * n + high``, ``n`` records) of the blocks some entries make.

    Entry ``i`` puts record ``positions[i]`` in block ``codes[i]``. Blocks of one are dropped.
    A block of more than ``cap`` is ordered by its entries' order values, ranked by
    ``order_ranks(entries)`` (asked only for those entries), then by ``id_rank``.
    """
    n = id_rank.size
    if codes.size == 0:
        return np.empty(0, np.int64)
    size_of = np.bincount(codes)[codes]
    kept = np.flatnonzero(size_of >= 2)
    positions, codes, size_of = positions[kept], codes[kept], size_of[kept]
    if positions.size == 0:
        return np.empty(0, np.int64)
    secondary = np.zeros(positions.size, np.int64)
    big = np.flatnonzero(size_of > cap)
    if big.size:
        # Oversized blocks are ordered by the rule's order value, then the id.
        secondary[big] = order_ranks(kept[big])
    # By block, then order value, then id: a stable sort of entries already in id order.
    by_id = np.argsort(id_rank[positions], kind="stable")
    block_then_order = codes[by_id] * (int(secondary.max()) + 1) + secondary[by_id]
    sorted_entries = by_id[np.argsort(block_then_order, kind="stable")]
    order, block = positions[sorted_entries], codes[sorted_entries]
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    return block_pairs(order, starts, n, cap=cap, window=window)


def block_pairs(order: IntArray, starts: IntArray, n: int, *, cap: int, window: int) -> IntArray:
    """Pair codes (``low * n + high``) of sorted blocks, one block after another in ``order``.

    Each block begins at one of ``starts``. A block of at most ``cap`` records pairs every two
    of them; a larger one pairs each record with the next ``window - 1`` in its order (a
    sorted neighbourhood).
    """
    codes = [
        np.minimum(a, b) * n + np.maximum(a, b)
        for _, a, b in _block_steps(order, starts, cap=cap, window=window)
    ]
    return np.concatenate(codes) if codes else np.empty(0, np.int64)


def pairs_by_block(order: IntArray, starts: IntArray, n: int, *, cap: int, window: int) -> IntArray:
    """``block_pairs``' codes, one block's after another's, blocks in the order of ``starts``.

    A block is a run of entries, so ordering the pairs by their first entry orders them by block.
    """
    codes, firsts = [], []
    for entries, a, b in _block_steps(order, starts, cap=cap, window=window):
        codes.append(np.minimum(a, b) * n + np.maximum(a, b))
        firsts.append(entries)
    if not codes:
        return np.empty(0, np.int64)
    return np.concatenate(codes)[np.argsort(np.concatenate(firsts), kind="stable")]


def _block_steps(
    order: IntArray, starts: IntArray, *, cap: int, window: int
) -> Iterator[tuple[IntArray, IntArray, IntArray]]:
    """Per step ``s``: each entry paired with the entry ``s`` after it, and both records."""
    if order.size == 0:
        return
    lengths = np.diff(np.r_[starts, order.size])
    ends = np.repeat(starts + lengths, lengths)
    at = np.arange(order.size)
    limit = np.where(np.repeat(lengths, lengths) <= cap, ends, np.minimum(ends, at + window))
    active = at[limit - at > 1]
    step = 1
    while active.size:
        a, b = order[active], order[active + step]
        distinct_records = a != b  # a multi-key rule may put one record twice in a block
        yield active[distinct_records], a[distinct_records], b[distinct_records]
        step += 1
        active = active[limit[active] - active > step]


def candidate_pairs(
    rules: Sequence[BlockingRule],
    norm: Mapping[str, Sequence[str]],
    scopes: Sequence[str] | None,
    id_rank: IntArray,
    *,
    cap: int,
    window: int,
) -> tuple[IntArray, IntArray]:
    """Every pair of positions that some rule proposes, each once.

    Keys are computed once per distinct combination of the fields they read and compared as
    integers, so the work per record is a few array operations.

    Args:
        rules: The blocking rules.
        norm: Normalised columns.
        scopes: Scope value per record, or None for one global scope.
        id_rank: Rank of each record's id (ties in oversized blocks are broken by it, so the
            result does not depend on input order).
        cap: Largest block compared exhaustively.
        window: Sorted-neighbourhood window of larger blocks.

    Returns:
        ``(left, right)`` positions with ``left < right``, sorted.
    """
    n = max(len(id_rank), 1)
    columns = _Columns(norm)
    # "" is a scope of its own: records without one are compared among themselves.
    scope_codes = None if scopes is None else Column.of(scopes).codes + 1
    parts = [
        _rule_pairs(rule, columns, scope_codes, id_rank, cap=cap, window=window) for rule in rules
    ]
    pairs = distinct_codes(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    return pairs // n, pairs % n


def distinct_codes(values: IntArray) -> IntArray:
    """Sorted distinct values (a sort beats ``np.unique``'s hashing on tens of millions)."""
    values.sort()
    if values.size == 0:
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]
