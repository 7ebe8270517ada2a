"""What ``find_kept_duplicates``' worker processes run: the in-process matcher's code, per chunk.

Each task takes plain records and arrays (picklable, for processes started with ``spawn``)
and calls ``customerkit.matching``'s reading, normalisation, scorer and explanations
unchanged, so a chunk's values are those ``find_duplicates`` computes for the same pairs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.matching.batch import evidence as evidence_of
from customerkit.matching.comparisons import Model, comparisons_of, level_sizes
from customerkit.matching.config import MatchConfig
from customerkit.matching.estimate import decode_patterns, encode_patterns
from customerkit.matching.features import Features, build_features
from customerkit.matching.normalize import normalize_columns
from customerkit.matching.reasons import reasons
from customerkit.matching.score import compare, level_matrix, names_agree, weigh_levels
from customerkit.matching.table import Kind, RecordTable, read_records

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


#: Seconds between a worker's checks that the process that started it is still there.
ORPHAN_CHECK = 0.5


def stop_when_orphaned(parent: int) -> None:
    """A worker's initializer: end this process once ``parent`` is no longer its parent.

    A parent killed outright (``SIGKILL``, out of memory) cannot shut its pool down, and its
    workers would wait for work forever.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK)
        os._exit(1)  # nothing to clean up: the work was the parent's, and it is gone

    threading.Thread(target=watch, name="customerkit-orphan-watch", daemon=True).start()


def stack(parts: Sequence[Any], dtype: Any) -> Any:
    """The arrays one after another (an empty array of ``dtype`` for none)."""
    return np.concatenate(parts) if parts else np.empty(0, dtype)


@attrs.frozen(kw_only=True)
class Setup:
    """What every task needs to read and score records as ``find_duplicates`` does."""

    kind: Kind
    config: MatchConfig
    region: str
    named: int = 0

    @property
    def extras(self) -> list[str]:
        return [extra.field for extra in self.config.comparisons]

    def table(self, records: Sequence[object]) -> RecordTable:
        return read_records(records, kind=self.kind, scope=None, extras=self.extras)

    def normalised(self, table: RecordTable) -> dict[str, Any]:
        extras = [(extra.field, extra.method) for extra in self.config.comparisons]
        return normalize_columns(self.kind, table.columns, region=self.region, extras=extras)


@attrs.frozen(kw_only=True)
class Summary:
    """Step 1's answer for a batch of records."""

    ids: list[str]
    fields: tuple[str, ...]
    filled: npt.NDArray[np.bool_]  # records x fields
    contacted: FloatArray
    created: FloatArray


def summarise(setup: Setup, records: Sequence[object]) -> Summary:
    """Ids, filled fields and dates of a batch of records (a task; nothing is normalised)."""
    table = setup.table(records)
    fields = tuple(table.columns)
    filled = np.zeros((len(table), len(fields)), np.bool_)
    for at, field in enumerate(fields):
        filled[:, at] = table.filled(field)
    return Summary(
        ids=list(table.ids),
        fields=fields,
        filled=filled,
        contacted=np.asarray(table.last_contacted, np.float64),
        created=np.asarray(table.created, np.float64),
    )


@attrs.frozen(kw_only=True)
class Pairs:
    """A chunk of pairs with their records: pair ``k`` is records ``left[k]`` and ``right[k]``."""

    records: list[object]
    counts: IntArray  # per record: how many records of the location share its name
    left: IntArray
    right: IntArray


def _features(setup: Setup, pairs: Pairs) -> Features:
    """The chunk's records as the scorer reads them, names counted over the whole location."""
    norm = setup.normalised(setup.table(pairs.records))
    return build_features(
        setup.kind, norm, config=setup.config, name_counts=pairs.counts, named=setup.named
    )


@attrs.frozen(kw_only=True)
class Coded:
    """What comparing a chunk of pairs tells about each: its level pattern, whether names agree."""

    codes: IntArray
    same_name: npt.NDArray[np.bool_]

    @classmethod
    def joined(cls, parts: Sequence[Coded]) -> Coded:
        """The chunks' pairs one after another."""
        return cls(
            codes=stack([p.codes for p in parts], np.int64),
            same_name=stack([p.same_name for p in parts], np.bool_),
        )


def codes(setup: Setup, pairs: Pairs, model: Model) -> Coded:
    """Each pair's level pattern as one integer, and whether its names agree (a task)."""
    names = comparisons_of(setup.kind, setup.config)
    features = _features(setup, pairs)
    compared = compare(features, pairs.left, pairs.right, setup.config, model)
    return Coded(
        codes=encode_patterns(level_matrix(compared, names), sizes(setup)),
        same_name=names_agree(features, pairs.left, pairs.right),
    )


def weights(setup: Setup, coded: Coded, left_counts: IntArray, model: Model) -> FloatArray:
    """The match weights of coded pairs, by the scorer's own ``weigh``, without their records."""
    names = comparisons_of(setup.kind, setup.config)
    matrix = decode_patterns(coded.codes, sizes(setup))
    levels = {name: matrix[:, column] for column, name in enumerate(names)}
    return weigh_levels(
        levels, coded.same_name, left_counts, model, kind=setup.kind, named=setup.named
    )


@attrs.frozen(kw_only=True)
class Kept:
    """What the pairs at the threshold scored, and why."""

    score: FloatArray
    weight: FloatArray
    reasons: list[tuple[str, ...]]
    evidence: list[tuple[Any, ...]]

    @classmethod
    def joined(cls, parts: Sequence[Kept]) -> Kept:
        """The chunks' pairs one after another."""
        return cls(
            score=stack([p.score for p in parts], np.float64),
            weight=stack([p.weight for p in parts], np.float64),
            reasons=[r for p in parts for r in p.reasons],
            evidence=[e for p in parts for e in p.evidence],
        )


def explained(setup: Setup, pairs: Pairs, model: Model) -> Kept:
    """Pairs at the threshold compared again for their scores, reasons and evidence (a task)."""
    config = setup.config
    names = comparisons_of(setup.kind, config)
    features = _features(setup, pairs)
    compared = compare(features, pairs.left, pairs.right, config, model)
    return Kept(
        score=np.asarray(compared.score, np.float64),
        weight=np.asarray(compared.weight, np.float64),
        reasons=[reasons(compared, k, features, model, config) for k in range(pairs.left.size)],
        evidence=[evidence_of(compared, k, names, model, config) for k in range(pairs.left.size)],
    )


def sizes(setup: Setup) -> list[int]:
    return level_sizes(comparisons_of(setup.kind, setup.config), setup.config)
