"""From pairs to groups, each with a proposed main record (rule M2).

Pairs above the threshold are joined best first (average-linkage style): two groups merge only
when at least ``link_fraction`` of the pairs between their members matched. A chain of weak
links (A~B, B~C, C~D, ...) therefore never pulls unrelated records into one group, while records
that all match one another always end up together.

Each group proposes as main the most complete record (most compared fields filled in), then the
most recently contacted (``last_communicated_at``), then the oldest (``created_at``), then the
smallest id, and says which of these decided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.matching.report import DuplicateGroup

__all__ = ["group_pairs"]

_NONE: frozenset[int] = frozenset()


def _label(reason: str) -> str:
    """A reason without its number: "names similar 0.93" -> "names similar"."""
    head, _, tail = reason.rpartition(" ")
    return head if head and tail.replace(".", "", 1).isdigit() else reason


@lru_cache(maxsize=4096)
def _labels(reasons: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_label(reason) for reason in reasons)


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _clusters(
    left: list[int],
    right: list[int],
    n: int,
    link_fraction: float,
    apart: Mapping[int, set[int]],
) -> dict[int, list[int]]:
    """Position -> its group's members, joining pairs best first (see the module docs).

    Two groups never join when a member of one is ``apart`` from a member of the other.
    """
    links = {a * n + b for a, b in zip(left, right, strict=True)}
    links |= {b * n + a for a, b in zip(left, right, strict=True)}
    group_of: dict[int, list[int]] = {}
    for a, b in zip(left, right, strict=True):
        one = group_of.get(a, [a])
        two = group_of.get(b, [b])
        if one is two:
            continue
        if apart and any(not apart.get(x, _NONE).isdisjoint(two) for x in one):
            continue
        if len(one) * len(two) > 1:
            matched = sum(x * n + y in links for x in one for y in two)
            if matched < link_fraction * len(one) * len(two):
                continue
        one.extend(two)
        for member in one:
            group_of[member] = one
    return group_of


def _mains(
    groups: list[list[int]],
    *,
    id_rank: npt.NDArray[np.int64],
    filled: npt.NDArray[np.int64],
    contacted: npt.NDArray[np.float64],
    created: npt.NDArray[np.float64],
) -> tuple[list[int], list[int]]:
    """The best and second-best member of each group, ranked as the module docs say."""
    members = np.fromiter((m for group in groups for m in group), np.int64)
    label = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    recent = np.where(np.isnan(contacted[members]), np.inf, -contacted[members])
    oldest = np.where(np.isnan(created[members]), np.inf, created[members])
    order = np.lexsort((id_rank[members], oldest, recent, -filled[members], label))
    starts = np.r_[0, np.cumsum([len(group) for group in groups])[:-1]]
    ranked = members[order]
    return ranked[starts].tolist(), ranked[starts + 1].tolist()


@attrs.frozen
class _Records:
    """What ``_why`` reads of some records, as Python lists (faster than numpy scalars)."""

    filled: list[int]
    contacted: list[float]
    created: list[float]
    total: int


def _why(main: int, runner: int, record_id: str, records: _Records) -> str:
    """Which rule made the record at ``main`` the main rather than the one at ``runner``."""
    filled, contacted, created = records.filled, records.contacted, records.created
    if filled[main] != filled[runner]:
        return f"main {record_id}: most complete ({filled[main]} of {records.total} fields)"
    last, other = contacted[main], contacted[runner]
    if not math.isnan(last) and (math.isnan(other) or last != other):
        return f"main {record_id}: as complete, most recently contacted ({_day(last)})"
    first, other = created[main], created[runner]
    if not math.isnan(first) and (math.isnan(other) or first != other):
        return f"main {record_id}: as complete, oldest (created {_day(first)})"
    return f"main {record_id}: as complete and as old, smallest id"


def group_pairs(
    left: npt.NDArray[np.int64],
    right: npt.NDArray[np.int64],
    pair_reasons: Sequence[tuple[str, ...]],
    *,
    ids: Sequence[str],
    id_rank: npt.NDArray[np.int64],
    filled: npt.NDArray[np.int64],
    contacted: npt.NDArray[np.float64],
    created: npt.NDArray[np.float64],
    total_fields: int,
    link_fraction: float,
    apart: Mapping[int, set[int]] | None = None,
) -> list[DuplicateGroup]:
    """Join matched pairs into groups and propose each group's main.

    Args:
        left: Positions of one side of each matched pair, pairs in report order (best first).
        right: Positions of the other side.
        pair_reasons: Each pair's reasons.
        ids: Record ids by position.
        id_rank: Rank of each id in sorted order.
        filled: Number of compared fields each record has.
        contacted: Last communication per record (POSIX seconds, NaN missing).
        created: Creation per record (POSIX seconds, NaN missing).
        total_fields: How many fields ``filled`` counts from.
        link_fraction: Share of matched pairs needed between two groups to join them.
        apart: Position -> positions that must never share a group (dismissed pairs).

    Returns:
        Groups of two or more records, sorted by main id.
    """
    lefts, rights = left.tolist(), right.tolist()
    group_of = _clusters(lefts, rights, len(ids), link_fraction, apart or {})
    labels: dict[int, set[str]] = {}
    for a, b, why in zip(lefts, rights, pair_reasons, strict=True):
        members = group_of.get(a)
        if members is not None and members is group_of.get(b):
            labels.setdefault(id(members), set()).update(_labels(why))
    groups = list({id(members): members for members in group_of.values()}.values())
    if not groups:
        return []
    mains, runners = _mains(
        groups, id_rank=id_rank, filled=filled, contacted=contacted, created=created
    )
    # Each group's main and runner-up are the records at 2k and 2k + 1 of these.
    both = np.array([mains, runners], np.int64).T.reshape(-1)
    records = _Records(
        filled[both].tolist(), contacted[both].tolist(), created[both].tolist(), total_fields
    )
    out = [
        DuplicateGroup(
            ids=tuple(sorted([ids[m] for m in members])),
            main_id=ids[main],
            reasons=(
                _why(2 * k, 2 * k + 1, ids[main], records),
                *sorted(labels.get(id(members), ())),
            ),
        )
        for k, (members, main) in enumerate(zip(groups, mains, strict=True))
    ]
    out.sort(key=lambda group: group.main_id)
    return out
