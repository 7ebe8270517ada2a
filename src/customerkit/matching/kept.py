"""A location's duplicates from the blocking keys a backend keeps: chunked, in processes.

``find_duplicates`` reads every record into memory, normalises them all and blocks them
there. A backend that keeps each record's blocking keys (an SQL book's ``match_keys``) can
instead hand the matcher a ``KeptBlocks``: the records in id order, the kept keys in block
order, and the records of some ids on demand. ``find_kept_duplicates`` then works a chunk at
a time, as ``find_duplicates`` would over the whole location, and gives the same report:

1. The records stream past once, a chunk at a time, for what the report needs of every one:
   its id, which fields it fills and its dates.
2. The kept keys stream past in block order; each block's pairs are proposed as
   ``customerkit.matching.blocking.candidate_pairs`` proposes them (every pair within the cap,
   else each member with its ``window - 1`` followers in (sort key, id) order).
3. The candidate pairs are compared a chunk at a time, each chunk's records loaded by id and
   normalised by the worker that compares them; estimation needs only the counts of the
   pairs' level patterns, as on Spark.
4. Every pair is weighed under the estimated model from its level pattern alone (with the
   scorer's own ``weigh``: no record is read); only the pairs at the threshold are read and
   compared again for their reasons. The kept pairs are grouped as in-process.

Chunks of steps 1, 3 and 4 run in worker processes (``workers``, all cores by default); each
worker runs ``customerkit.matching``'s own reading, normalisation and scorer, so the values
are the very same. The main process holds, per record, its id and a few numbers (about 150
bytes), and per candidate pair its two positions, its level pattern and whether its names
agree (25 bytes): not the records' fields, their normalised values or their features.
"""

from __future__ import annotations

import bisect
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from itertools import chain
from multiprocessing import get_context
from typing import Any, Protocol, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.errors import MatchingError
from customerkit.matching import _kept_tasks as _tasks
from customerkit.matching.blocking import name_block, pairs_by_block
from customerkit.matching.comparisons import Model, comparisons_of, starting_parameters
from customerkit.matching.config import MatchConfig, Parameters
from customerkit.matching.estimate import (
    RANDOM_PAIRS,
    decode_patterns,
    estimate_parameters,
    frequencies,
    random_pairs,
)
from customerkit.matching.groups import group_pairs
from customerkit.matching.report import DuplicatePair, DuplicateReport
from customerkit.matching.score import probability
from customerkit.matching.table import Kind, RecordTable

__all__ = ["KeptBlocks", "find_kept_duplicates"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")
R = TypeVar("R")

#: Records, kept-key rows or candidate pairs handled at a time by default.
CHUNK_SIZE = 50_000


class KeptBlocks(Protocol):
    """A location's live records and their kept blocking keys (one kind, unscoped).

    The keys are those ``customerkit.matching.index.blocking_keys`` gives the records, kept by
    the backend; ids sort by code point (as Python sorts strings).
    """

    def records(self, batch_size: int) -> Iterator[Sequence[Mapping[str, Any]]]:
        """Every record, in batches of at most ``batch_size``, in id order.

        As mappings of the fields the matcher reads (``id``, ``table.fields_of(kind)`` and
        ``table.TIME_FIELDS``, those the records have).
        """
        ...

    def rows(self, batch_size: int) -> Iterator[Sequence[tuple[str, str, str]]]:
        """Every kept key as ``(block, sort key, id)``, in that order, in batches."""
        ...

    def load_rows(self, ids: Sequence[str]) -> Sequence[Mapping[str, Any]]:
        """The records with these ids (as ``records`` gives them), in any order."""
        ...

    def count_named(self) -> int:
        """How many records have a name at all."""
        ...


def _in_order(
    executor: Executor | None, work: Callable[[T], R], tasks: Iterable[T], ahead: int
) -> Iterator[R]:
    """``work`` of each task, in order, at most ``ahead`` tasks in flight (bounded memory)."""
    if executor is None:
        yield from map(work, tasks)
        return
    pending: deque[Future[R]] = deque()
    for task in tasks:
        pending.append(executor.submit(work, task))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _Call:
    """A picklable ``function(setup, task, *rest)``: what a worker process runs."""

    def __init__(self, function: Callable[..., Any], setup: _tasks.Setup, *rest: Any) -> None:
        self.function, self.setup, self.rest = function, setup, rest

    def __call__(self, task: Any) -> Any:
        return self.function(self.setup, task, *self.rest)


def _candidates(
    blocks: KeptBlocks,
    position: Mapping[str, int],
    config: MatchConfig,
    chunk_size: int,
    names: tuple[str, IntArray],
) -> tuple[IntArray, IntArray]:
    """Every pair of positions some kept block proposes, each once, block by block.

    Each pair goes with the first block that proposes it, and the pairs come in their blocks'
    order: a chunk of consecutive pairs then needs the records of a few blocks, where pairs in
    position order spread over the whole location (a chunk of pairs read nearly as many
    records). Fills ``names``' counts on the way (see ``_count_names``; its text is the name
    blocks' prefix).
    """
    n = max(len(position), 1)
    parts: list[IntArray] = []
    carried: list[tuple[str, str, str]] = []  # the last block of a batch may go on in the next
    for batch in blocks.rows(chunk_size):
        rows = [*carried, *batch]
        last = rows[-1][0]
        cut = len(rows)
        while cut and rows[cut - 1][0] == last:
            cut -= 1
        whole, carried = rows[:cut], rows[cut:]
        parts.append(_pairs_of_rows(whole, position, config, names))
    parts.append(_pairs_of_rows(carried, position, config, names))
    codes = np.concatenate(parts) if parts else np.empty(0, np.int64)
    del parts
    # The pairs are in their blocks' order: keep each where it first comes.
    first = np.unique(codes, return_index=True)[1]
    first.sort()
    codes = codes[first]
    return codes // n, codes % n


def _pairs_of_rows(
    rows: Sequence[tuple[str, str, str]],
    position: Mapping[str, int],
    config: MatchConfig,
    names: tuple[str, IntArray],
) -> IntArray:
    """The pairs of whole blocks, block by block, given as their sorted kept-key rows.

    Counts names on the way.
    """
    if not rows:
        return np.empty(0, np.int64)
    n = max(len(position), 1)
    starts = np.flatnonzero(
        np.fromiter(
            (at == 0 or rows[at][0] != rows[at - 1][0] for at in range(len(rows))),
            np.bool_,
            len(rows),
        )
    )
    positions = np.fromiter((position[row[2]] for row in rows), np.int64, len(rows))
    _count_names(rows, starts, positions, names)
    return pairs_by_block(positions, starts, n, cap=config.block_cap, window=config.window)


def _count_names(
    rows: Sequence[tuple[str, str, str]],
    starts: IntArray,
    positions: IntArray,
    names: tuple[str, IntArray],
) -> None:
    """Each member of a whole name block gets the block's size as its name count.

    A record's name block (``blocking.name_block``, whose keys start with ``names[0]``) holds
    every record of its name, so its size is how many records share the name: what
    ``MatchIndex`` counts too. Records without a name are in no such block and count 0.
    """
    prefix, counts = names
    lengths = np.diff(np.r_[starts, positions.size])
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        if rows[start][0].startswith(prefix):
            counts[positions[start : start + length]] = length


@attrs.define
class _Location:
    """What step 1 keeps of every record: by position, its records in id order."""

    ids: list[str] = attrs.Factory(list)
    filled: list[npt.NDArray[np.bool_]] = attrs.Factory(list)
    contacted: list[FloatArray] = attrs.Factory(list)
    created: list[FloatArray] = attrs.Factory(list)
    fields: tuple[str, ...] = ()

    def add(self, summary: _tasks.Summary) -> None:
        if self.ids and summary.ids and summary.ids[0] <= self.ids[-1]:
            msg = "the kept blocks' records must come in id order"
            raise RuntimeError(msg)
        self.ids.extend(summary.ids)
        self.filled.append(summary.filled)
        self.contacted.append(summary.contacted)
        self.created.append(summary.created)
        self.fields = summary.fields


class _Chunker:
    """Chunks of pairs with their records, loaded from the blocks by id."""

    def __init__(self, blocks: KeptBlocks, ids: Sequence[str], counts: IntArray) -> None:
        self.blocks, self.ids, self.counts = blocks, ids, counts

    def chunk(self, left: IntArray, right: IntArray) -> _tasks.Pairs:
        involved = np.unique(np.concatenate((left, right)))
        wanted = [self.ids[p] for p in involved.tolist()]
        found = {str(row["id"]): row for row in self.blocks.load_rows(wanted)}
        missing = [record_id for record_id in wanted if record_id not in found]
        if missing:
            msg = f"records changed while their duplicates were found: {missing[:3]}"
            raise RuntimeError(msg)
        return _tasks.Pairs(
            records=[found[record_id] for record_id in wanted],
            counts=self.counts[involved],
            left=np.searchsorted(involved, left).astype(np.int64),
            right=np.searchsorted(involved, right).astype(np.int64),
        )

    def chunks(self, left: IntArray, right: IntArray, size: int) -> Iterator[_tasks.Pairs]:
        for start in range(0, left.size, size):
            yield self.chunk(left[start : start + size], right[start : start + size])


def find_kept_duplicates(
    blocks: KeptBlocks,
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
    dismissed: Iterable[tuple[str, str]] = (),
    workers: int | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> DuplicateReport:
    """Find the duplicates among a location's records from the blocking keys a backend keeps.

    Gives the report ``find_duplicates(records, kind=kind, ...)`` gives for the same records
    in id order, without holding them all in memory (see the module's description).

    Args:
        blocks: The location's records and kept keys (of ``kind``, unscoped, made with no
            extra comparisons: ``config.comparisons`` must be empty).
        kind: ``"contact"`` or ``"customer"``.
        config: As ``find_duplicates``' (default ``MatchConfig()``).
        region: Default phone region (the one the keys were made in).
        dismissed: Pairs of ids never reported nor grouped together.
        workers: Worker processes; None uses every core (``os.cpu_count()``), 1 works in this
            process. Processes start only when there is more than one chunk of records.
        chunk_size: Records, kept keys or candidate pairs handled at a time (bounds memory).

    Returns:
        The report.

    Raises:
        MatchingError: ``config`` has extra comparisons, or ``chunk_size`` is below 2.
    """
    config = config or MatchConfig()
    if config.comparisons:
        msg = "kept blocks hold the standard rules' keys only; use find_duplicates"
        raise MatchingError(msg, field="config")
    if chunk_size < 2:
        msg = "chunk_size must be at least 2"
        raise MatchingError(msg, field="chunk_size")
    workers = (os.cpu_count() or 1) if workers is None else max(workers, 1)
    # Each process compares on one thread: the processes already use every core.
    task_config = attrs.evolve(config, workers=1) if workers > 1 else config
    setup = _tasks.Setup(kind=kind, config=task_config, region=region)
    batches = iter(blocks.records(chunk_size))
    first = next(batches, None)
    second = next(batches, None)
    executor: ProcessPoolExecutor | None = None
    if second is not None and workers > 1:
        # Processes cost a second or so to start: only for more than one chunk of records.
        executor = ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_tasks.stop_when_orphaned,
            initargs=(os.getpid(),),
        )
    try:
        run = _Run(blocks, setup, config, executor, chunk_size, 2 * workers)
        read = chain([] if first is None else [first], [] if second is None else [second], batches)
        for summary in run.map(_Call(_tasks.summarise, setup), read):
            run.location.add(summary)
        return run.report(dismissed)
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)


class _Run:
    """One call's state: where the records come from, how tasks run, what step 1 kept."""

    def __init__(  # noqa: PLR0917 - the call's settings, kept together
        self,
        blocks: KeptBlocks,
        setup: _tasks.Setup,
        config: MatchConfig,
        executor: Executor | None,
        chunk_size: int,
        ahead: int,
    ) -> None:
        self.blocks, self.setup, self.config = blocks, setup, config
        self.executor, self.chunk_size, self.ahead = executor, chunk_size, ahead
        self.location = _Location()

    def map(self, work: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """``work`` of each task, in order, in the workers when there are any."""
        return _in_order(self.executor, work, tasks, self.ahead)

    def codes(
        self, chunker: _Chunker, left: IntArray, right: IntArray, model: Model
    ) -> _tasks.Coded:
        """The level patterns of pairs (and whether their names agree), a chunk at a time."""
        coding = _Call(_tasks.codes, self.setup, model)
        return _tasks.Coded.joined(
            list(self.map(coding, chunker.chunks(left, right, self.chunk_size)))
        )

    def estimated(
        self, chunker: _Chunker, codes: IntArray, start: Parameters, model: Model
    ) -> Parameters:
        """``u`` from random pairs' patterns, then EM over the candidates' pattern counts."""
        setup = self.setup
        names = comparisons_of(setup.kind, setup.config)
        sizes = _tasks.sizes(setup)
        n = len(self.location.ids)
        chance = self.codes(chunker, *random_pairs(n, RANDOM_PAIRS, setup.config.seed), model)
        chance_codes, chance_counts = np.unique(chance.codes, return_counts=True)
        u_values = frequencies(
            decode_patterns(chance_codes, sizes), sizes, chance_counts.astype(np.float64)
        )
        u = {name: tuple(v.tolist()) for name, v in zip(names, u_values, strict=True)}
        pattern_codes, pattern_counts = np.unique(codes, return_counts=True)
        return estimate_parameters(
            decode_patterns(pattern_codes, sizes),
            pattern_counts.astype(np.int64),
            names,
            start,
            u,
            records=n,
            kind=setup.kind,
        )

    def kept(
        self,
        chunker: _Chunker,
        pairs: tuple[IntArray, IntArray, _tasks.Coded],
        model: Model,
        apart: Mapping[int, set[int]],
    ) -> tuple[IntArray, IntArray, _tasks.Kept]:
        """The pairs at the threshold and not dismissed: positions and what they scored.

        As ``match_table``: every pair is weighed from its levels (here, with no record
        read), and only those at the threshold are compared again for their explanations.
        """
        left, right, coded = pairs
        at: list[IntArray] = []
        for start in range(0, left.size, self.chunk_size):
            part = slice(start, start + self.chunk_size)
            chunk = _tasks.Coded(codes=coded.codes[part], same_name=coded.same_name[part])
            weight = _tasks.weights(self.setup, chunk, chunker.counts[left[part]], model)
            at.append(start + np.flatnonzero(probability(weight) >= self.config.threshold))
        kept = _tasks.stack(at, np.int64)
        a, b = left[kept], right[kept]
        keep = [y not in apart.get(x, ()) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
        mask = np.array(keep, np.bool_)
        a, b = a[mask], b[mask]
        explaining = _Call(_tasks.explained, self.setup, model)
        found = list(self.map(explaining, chunker.chunks(a, b, self.chunk_size)))
        return a, b, _tasks.Kept.joined(found)

    def report(self, dismissed: Iterable[tuple[str, str]]) -> DuplicateReport:
        """Steps 2 to 4 and the report, once every record is summarised."""
        config, location = self.config, self.location
        kind, ids = self.setup.kind, location.ids
        n = len(ids)
        self.setup = attrs.evolve(self.setup, named=self.blocks.count_named())
        position = {record_id: at for at, record_id in enumerate(ids)}
        counts = np.zeros(n, np.int64)
        name_counts = (name_block(kind, ""), counts)
        left, right = _candidates(self.blocks, position, config, self.chunk_size, name_counts)
        del position
        chunker = _Chunker(self.blocks, ids, counts)
        names = comparisons_of(kind, config)
        start = starting_parameters(kind, config)
        start_model = Model.of(start, names)
        coded = self.codes(chunker, left, right, start_model)
        parameters = start
        if config.estimate and n >= config.min_records and coded.codes.size:
            parameters = self.estimated(chunker, coded.codes, start, start_model)
        apart = _apart(ids, dismissed)
        a, b, kept = self.kept(chunker, (left, right, coded), Model.of(parameters, names), apart)
        # Positions are id ranks: the left of each pair is its smaller id already.
        order = np.lexsort((b, a, -kept.score))
        interned: dict[object, Any] = {}
        pairs = [
            DuplicatePair(
                left_id=ids[a[k]],
                right_id=ids[b[k]],
                score=float(kept.score[k]),
                match_weight=float(kept.weight[k]),
                reasons=interned.setdefault(kept.reasons[k], kept.reasons[k]),
                comparisons=interned.setdefault(kept.evidence[k], kept.evidence[k]),
            )
            for k in order.tolist()
        ]
        a, b = a[order], b[order]
        filled = _tasks.stack(location.filled, np.bool_).reshape(n, len(location.fields))
        used = [at for at in range(len(location.fields)) if filled[:, at].any()]
        fields = tuple(location.fields[at] for at in used)
        involved = np.unique(np.concatenate((a, b)))
        at_of = {p: at for at, p in enumerate(involved.tolist())}
        groups = group_pairs(
            np.searchsorted(involved, a).astype(np.int64),
            np.searchsorted(involved, b).astype(np.int64),
            [pair.reasons for pair in pairs],
            ids=[ids[p] for p in involved.tolist()],
            id_rank=np.arange(involved.size, dtype=np.int64),
            filled=filled[involved][:, used].sum(axis=1).astype(np.int64),
            contacted=_tasks.stack(location.contacted, np.float64)[involved],
            created=_tasks.stack(location.created, np.float64)[involved],
            total_fields=len(fields),
            link_fraction=config.link_fraction,
            apart={
                at_of[p]: {at_of[q] for q in others if q in at_of}
                for p, others in apart.items()
                if p in at_of
            },
        )
        table = self.setup.table(chunker.chunk(involved, involved).records if involved.size else [])
        given = table.originals
        return DuplicateReport(
            pairs=tuple(pairs),
            groups=tuple(groups),
            compared=int(left.size),
            kind=kind,
            fields=fields,
            values={record_id: _values(table, at) for at, record_id in enumerate(table.ids)},
            config=attrs.evolve(config, parameters=parameters, estimate=False),
            originals=None if given is None else dict(zip(table.ids, given, strict=True)),
        )


def _values(table: RecordTable, at: int) -> Mapping[str, str]:
    return {field: column[at] for field, column in table.columns.items()}


def _apart(ids: Sequence[str], dismissed: Iterable[tuple[str, str]]) -> dict[int, set[int]]:
    """Position -> the positions it must never share a group with (``batch._apart``)."""
    apart: dict[int, set[int]] = {}
    for x, y in dismissed:
        if x == y:
            continue
        a, b = _find(ids, x), _find(ids, y)
        if a is not None and b is not None:
            apart.setdefault(a, set()).add(b)
            apart.setdefault(b, set()).add(a)
    return apart


def _find(ids: Sequence[str], record_id: str) -> int | None:
    """The position of ``record_id`` among sorted ``ids``, or None."""
    at = bisect.bisect_left(ids, record_id)
    return at if at < len(ids) and ids[at] == record_id else None
