"""One table's duplicate report: scores over the threshold, dismissals, evidence and groups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.matching.comparisons import FIELD_OF, Compared, Model, levels_of
from customerkit.matching.config import MatchConfig
from customerkit.matching.groups import group_pairs
from customerkit.matching.prepare import IntArray, MatchProgress, parameters_for, prepare, quiet
from customerkit.matching.reasons import reasons
from customerkit.matching.report import DuplicatePair, DuplicateReport, Evidence
from customerkit.matching.score import compare, probability, weigh
from customerkit.matching.table import RecordTable


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


def evidence(
    compared: Compared, k: int, names: Sequence[str], model: Model, config: MatchConfig
) -> tuple[Evidence, ...]:
    """What each comparison of pair ``k`` said: its level, weight and values, in field order."""
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
    progress = progress or quiet
    progress("blocking", 0, 0)
    prepared = prepare(table, config, region)
    parameters, matrix = parameters_for(prepared, config, progress)
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
                comparisons=once(evidence(compared, k, prepared.names, model, config)),  # type: ignore[arg-type]
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
