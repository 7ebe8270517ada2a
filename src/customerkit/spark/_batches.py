"""What the Spark matcher runs inside its workers: the in-process matcher's own code, per batch.

Each function (and ``PairBatches`` method) takes and yields pandas DataFrames (Spark's
``mapInPandas`` and ``applyInPandas``; ``at_threshold`` runs on the driver, over the kinds of
pair Spark counted). Nothing here imports pyspark: the functions are plain
pandas and numpy, and call ``customerkit.matching``'s reading, normalisation, blocking keys,
scorer and grouping unchanged, so both matchers compute the very same values.

A batch of pairs carries both records of each pair side by side (columns ``a_*`` and ``b_*``);
the scorer sees them as a table of ``2k`` records whose pair ``j`` is ``(j, k + j)``. Name
frequencies are counted over all records by Spark and passed in, as ``MatchIndex`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.matching.batch import evidence as evidence_of
from customerkit.matching.blocking import (
    column_keys,
    distinct_codes,
    entry_pairs,
    rank_values,
    rules_for,
)
from customerkit.matching.comparisons import level_sizes
from customerkit.matching.config import MatchConfig
from customerkit.matching.estimate import decode_patterns, encode_patterns
from customerkit.matching.groups import group_pairs
from customerkit.matching.normalize import (
    CONTACT_KEYS,
    CUSTOMER_KEYS,
    extra_column,
    normalize_columns,
)
from customerkit.matching.score import (
    Features,
    Model,
    build_features,
    compare,
    comparisons_of,
    level_matrix,
    name_key_of,
    names_agree,
    probability,
    reasons,
    weigh_levels,
)
from customerkit.matching.table import Kind, fields_of, read_records

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PairBatches",
    "block_keys",
    "blocks_comparer",
    "grouped",
    "key_columns",
    "normalised",
    "record_fields",
]

IntArray = npt.NDArray[np.int64]


def key_columns(kind: str, config: MatchConfig) -> tuple[str, ...]:
    """The normalised columns of ``kind``, in the order of the Spark columns ``k0``, ``k1``, ..."""
    keys = CONTACT_KEYS if kind == "contact" else CUSTOMER_KEYS
    return (*keys, *(extra_column(extra.field) for extra in config.comparisons))


def record_fields(kind: str, config: MatchConfig) -> tuple[str, ...]:
    """The fields read from each record (``read_records``'s order): Spark columns ``f0``, ..."""
    own = fields_of(kind)
    return (*own, *(extra.field for extra in config.comparisons if extra.field not in own))


def _objects(values: Sequence[Any]) -> Any:
    """A pandas column of Python objects (texts, lists): even empty, never float like ``[]``."""
    import pandas as pd

    return pd.Series(values, dtype=object)


def normalised(
    batches: Iterator[pd.DataFrame], *, kind: Kind, config: MatchConfig, region: str
) -> Iterator[pd.DataFrame]:
    """Records -> id, normalised keys, filled flags, times and the name whose frequency counts."""
    import pandas as pd

    extras = [(extra.field, extra.method) for extra in config.comparisons]
    names = key_columns(kind, config)
    fields = record_fields(kind, config)
    for frame in batches:
        table = read_records(
            frame,
            kind=kind,
            scope=None,
            extras=[extra.field for extra in config.comparisons],
            unique_ids=False,  # a batch of the records: the ids are checked in Spark, over all
        )
        norm = normalize_columns(kind, table.columns, region=region, extras=extras)
        out: dict[str, Any] = {"id": _objects(table.ids)}
        for at, name in enumerate(names):
            out[f"k{at}"] = _objects(list(norm[name]))
        for at, field in enumerate(fields):
            out[f"f{at}"] = table.filled(field)
        out["contacted"] = table.last_contacted
        out["created"] = table.created
        columns = {name: list(norm[name]) for name in ("given", "last", "company") if name in norm}
        rows = (
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        )
        out["name"] = _objects([name_key_of(kind, row) for row in rows])
        yield pd.DataFrame(out)


def block_keys(
    batches: Iterator[pd.DataFrame], *, kind: Kind, config: MatchConfig
) -> Iterator[pd.DataFrame]:
    """Records -> one row per blocking key: ``key``, ``ord`` and the record's own columns.

    The record (``pos``, ``count``, ``k0``, ...) rides along with each of its keys, so the
    blocks can be compared where they are gathered, without joining the records back.
    """
    import pandas as pd

    names = key_columns(kind, config)
    extras = [(extra_column(extra.field), extra.method) for extra in config.comparisons]
    rules = rules_for(kind, extras)
    for frame in batches:
        norm = {name: frame[f"k{at}"].tolist() for at, name in enumerate(names)}
        at, keys, orders = column_keys(rules, norm)
        members = frame.iloc[at].reset_index(drop=True)
        yield pd.concat(
            [pd.DataFrame({"key": _objects(keys), "ord": _objects(orders)}), members], axis=1
        )


def _features(frame: pd.DataFrame, kind: Kind, config: MatchConfig, named: int) -> Features:
    """Both sides of a batch of pairs as one table: pair ``j`` is records ``j`` and ``k + j``."""
    names = key_columns(kind, config)
    norm = {
        name: frame[f"a_k{at}"].tolist() + frame[f"b_k{at}"].tolist()
        for at, name in enumerate(names)
    }
    counts = np.concatenate(
        (frame["a_count"].to_numpy(np.int64), frame["b_count"].to_numpy(np.int64))
    )
    return build_features(kind, norm, config=config, name_counts=counts, named=named)


def _sides(size: int) -> tuple[IntArray, IntArray]:
    return np.arange(size, dtype=np.int64), np.arange(size, 2 * size, dtype=np.int64)


@attrs.frozen(kw_only=True)
class PairBatches:
    """The two pair stages, with what both read: the kind, config, model and name count.

    ``named`` is how many records the name frequencies were counted over (as ``MatchIndex``).
    Its bound methods go to ``mapInPandas``; Spark pickles the instance along.
    """

    kind: Kind
    config: MatchConfig
    model: Model
    named: int

    def level_codes(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Pairs with both records -> ``a``, ``b`` and the level pattern as one integer.

        Also what weighing the pair needs besides its pattern: ``a_count`` and whether the
        names agree (``same_name``).
        """
        for frame in batches:
            left, right = _sides(len(frame))
            features = _features(frame, self.kind, self.config, self.named)
            yield self._coded(features, left, right).assign(
                a=frame["a_pos"].to_numpy(np.int64),
                b=frame["b_pos"].to_numpy(np.int64),
                a_count=frame["a_count"].to_numpy(np.int64),
            )

    def _coded(self, features: Features, left: IntArray, right: IntArray) -> pd.DataFrame:
        """``code`` and ``same_name`` of pairs; the caller adds ``a``, ``b`` and ``a_count``.

        Spark reads the columns by name, so their order does not matter.
        """
        import pandas as pd

        names = comparisons_of(self.kind, self.config)
        compared = compare(features, left, right, self.config, self.model)
        return pd.DataFrame(
            {
                "code": encode_patterns(
                    level_matrix(compared, names), level_sizes(names, self.config)
                ),
                "same_name": names_agree(features, left, right),
            }
        )

    def blocks_compared(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Whole blocks -> their candidate pairs, each once, coded as ``level_codes`` codes them.

        ``rows`` holds every member of some blocks: one row per ``(pos, key, ord)`` with the
        member's normalised keys ``k0``, ... and name count. The blocks are paired by
        ``blocking.entry_pairs``, as in-process (an oversized one by order value, then
        position), and each member's features are built once for all its pairs in these
        blocks. A pair two of these blocks propose is compared once; one that blocks of other
        calls propose too comes out of each (the caller keeps one: equal records compare equal).
        """
        import pandas as pd

        kind, config = self.kind, self.config
        blocks = pd.factorize(rows["key"].to_numpy(object))[0].astype(np.int64)
        # Most keys are a block of one (a record's own email): no pairs, no features needed.
        shared = np.flatnonzero(np.bincount(blocks)[blocks] >= 2)
        # Members by position: ``slot`` numbers each entry's record, ``first`` is an entry of each.
        members, first, slot = np.unique(
            rows["pos"].to_numpy(np.int64)[shared], return_index=True, return_inverse=True
        )
        m = max(members.size, 1)
        orders = rows["ord"].to_numpy(object)[shared]
        proposed = entry_pairs(
            slot.reshape(-1).astype(np.int64),
            blocks[shared],
            np.arange(m, dtype=np.int64),  # members are in position order, the ids' order
            lambda entries: rank_values(orders[entries].tolist()),
            cap=config.block_cap,
            window=config.window,
        )
        codes = distinct_codes(proposed)
        left, right = codes // m, codes % m
        records = rows.iloc[shared[first]]
        names = key_columns(kind, config)
        features = build_features(
            kind,
            {name: records[f"k{at}"].tolist() for at, name in enumerate(names)},
            config=config,
            name_counts=records["count"].to_numpy(np.int64),
            named=self.named,
        )
        return self._coded(features, left, right).assign(
            a=members[left],
            b=members[right],
            a_count=records["count"].to_numpy(np.int64)[left],
        )

    def at_threshold(self, kinds: pd.DataFrame) -> pd.DataFrame:
        """Kinds of coded pair (``code``, ``same_name``, ``a_count``) -> those at the threshold.

        As ``match_table``: every pair is weighed from its levels, whether its names agree and
        its left record's name count, and nothing else; so pairs of one kind weigh the same, and
        each kind is weighed once. Only the pairs kept are compared again (``scored``) for
        their reasons and evidence.
        """
        kind, config, model = self.kind, self.config, self.model
        names = comparisons_of(kind, config)
        matrix = decode_patterns(kinds["code"].to_numpy(np.int64), level_sizes(names, config))
        levels = {name: matrix[:, column] for column, name in enumerate(names)}
        weight = weigh_levels(
            levels,
            kinds["same_name"].to_numpy(np.bool_),
            kinds["a_count"].to_numpy(np.int64),
            model,
            kind=kind,
            named=self.named,
        )
        return kinds[probability(weight) >= config.threshold]

    def scored(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Pairs at the threshold with both records -> their scores, reasons and evidence."""
        import pandas as pd

        kind, config, model, named = self.kind, self.config, self.model, self.named
        names = comparisons_of(kind, config)
        for frame in batches:
            features = _features(frame, kind, config, named)
            left, right = _sides(len(frame))
            compared = compare(features, left, right, config, model)
            evidence = [
                [
                    {"field": e.field, "level": e.level, "weight": e.weight}
                    for e in evidence_of(compared, k, names, model, config)
                ]
                for k in range(left.size)
            ]
            yield pd.DataFrame(
                {
                    "left_pos": frame["a_pos"].to_numpy(np.int64),
                    "right_pos": frame["b_pos"].to_numpy(np.int64),
                    "left_id": frame["a_id"].to_numpy(object),
                    "right_id": frame["b_id"].to_numpy(object),
                    "score": compared.score,
                    "match_weight": compared.weight,
                    "reasons": _objects(
                        [
                            list(reasons(compared, k, features, model, config))
                            for k in range(left.size)
                        ]
                    ),
                    "evidence": _objects(evidence),
                }
            )


def blocks_comparer(stages: PairBatches) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``stages.blocks_compared`` as a function of the rows alone, for ``applyInPandas``.

    ``applyInPandas`` counts a bound method's ``self`` among its arguments (and would pass the
    group's key first) and cannot read a partial's type hints.
    """

    def compared(rows: pd.DataFrame) -> pd.DataFrame:
        return stages.blocks_compared(rows)

    return compared


def grouped(
    pairs: pd.DataFrame, members: pd.DataFrame, *, total_fields: int, link_fraction: float
) -> pd.DataFrame:
    """Whole connected components' pairs and records -> their groups, as ``group_pairs`` makes them.

    ``group_pairs`` joins pairs best first and only along pairs, so a component's groups do
    not depend on any other component: running it over some whole components, with their pairs
    in report order, gives the groups it gives over all pairs at once.
    """
    import pandas as pd

    members = members.sort_values("pos")
    local = {pos: at for at, pos in enumerate(members["pos"].tolist())}
    order = np.lexsort(
        (
            pairs["right_pos"].to_numpy(np.int64),
            pairs["left_pos"].to_numpy(np.int64),
            -pairs["score"].to_numpy(np.float64),
        )
    )
    left = np.array([local[p] for p in pairs["left_pos"].to_numpy(np.int64)[order]], np.int64)
    right = np.array([local[p] for p in pairs["right_pos"].to_numpy(np.int64)[order]], np.int64)
    why = [tuple(r) for r in pairs["reasons"].to_numpy(object)[order]]
    groups = group_pairs(
        left,
        right,
        why,
        ids=members["id"].tolist(),
        id_rank=np.arange(len(members), dtype=np.int64),
        filled=members["filled"].to_numpy(np.int64),
        contacted=members["contacted"].to_numpy(np.float64),
        created=members["created"].to_numpy(np.float64),
        total_fields=total_fields,
        link_fraction=link_fraction,
    )
    return pd.DataFrame(
        {
            "main_id": _objects([group.main_id for group in groups]),
            "ids": _objects([list(group.ids) for group in groups]),
            "reasons": _objects([list(group.reasons) for group in groups]),
        }
    )
