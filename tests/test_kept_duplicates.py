"""A location's duplicates on an SQL book, read from the kept blocking keys in chunks and scored
in worker processes, against the in-process matcher over the same customers (rules M1, M2).

The book reads its customers, kept keys and candidate pairs ``chunk_size`` at a time (small
here, so every step takes many chunks, and oversized blocks are windowed) in two worker
processes; ``find_duplicates`` over the location's customers in id order must give the very
same report: pairs, scores, reasons, evidence, groups, parameters, fields and values.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import customerkit as ck
from customerkit import synth
from customerkit.matching import ExtraComparison, MatchConfig, kept
from customerkit.matching.kept import find_kept_duplicates
from customerkit.services import dismissals
from customerkit.testing import FakeClock
from customerkit.testing.postgres import in_ci

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
OTHER = ck.Actor(user_id="admin2", role=ck.Role.DEALER_ADMIN, location_id="loc-2")
#: Small blocks and windows, so that common names make oversized, windowed blocks.
MATCH = MatchConfig(block_cap=4, window=3, min_records=100)


def _fill(book: ck.Book, n: int) -> None:
    data = synth.labelled_customers(n, seed=11, locations=("loc-1", "loc-2"), dup_rate=0.3)
    for actor in (ADMIN, OTHER):
        drafts = [
            synth.new_customer({k: v for k, v in row.items() if k not in {"id", "location_id"}})
            for row in data.records
            if row["location_id"] == actor.location_id
        ]
        book.customers.create_many(drafts, actor=actor)
    # A common company name, so that how many records share a name changes the scores.
    common = [
        ck.NewCustomer(
            company_name="Miller Trucking",
            customer_number=f"MT-{at}",
            city=("Denver", "Boulder", "Aurora")[at % 3],
            phone=f"303-555-{at // 2:04d}",
        )
        for at in range(30)
    ]
    book.customers.create_many(common, actor=ADMIN)


def _expected(book: ck.Book) -> ck.DuplicateReport:
    """The in-process matcher over the location's live customers, in id order."""
    with book.store.unit_of_work(read_only=True) as uow:
        customers = list(uow.customers.iter_location("loc-1"))
    assert [c.id for c in customers] == sorted(c.id for c in customers)
    with book.store.unit_of_work(read_only=True) as uow:
        apart = dismissals.pairs_in_force(
            uow, dismissals.CUSTOMER_DISMISSAL, "loc-1", {c.id for c in customers}
        )
    return ck.find_duplicates(customers, kind="customer", config=MATCH, dismissed=apart)


def _same(got: ck.DuplicateReport, expected: ck.DuplicateReport) -> None:
    assert got.compared == expected.compared
    assert got.config == expected.config
    assert got.fields == expected.fields
    assert got.pairs == expected.pairs
    # A pair's equality leaves out its evidence and unrounded weight; a name count one off
    # moves only those when the score rounds the same.
    assert [p.comparisons for p in got.pairs] == [p.comparisons for p in expected.pairs]
    assert [p.match_weight for p in got.pairs] == pytest.approx(
        [p.match_weight for p in expected.pairs], rel=1e-9, abs=1e-9
    )
    assert got.groups == expected.groups
    assert {k: dict(v) for k, v in got.values.items()} == {
        k: dict(v) for k, v in expected.values.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("make_book", ["sqlite", "postgresql"], indirect=True)
def test_chunked_workers_report_what_in_process_reports(
    make_book: Callable[[FakeClock], ck.Book], monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[int] = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, workers: int, **options: Any) -> None:
            pools.append(workers)
            super().__init__(workers, **options)

    monkeypatch.setattr(kept, "ProcessPoolExecutor", CountedPool)
    book = make_book(FakeClock())
    book = ck.Book(book.store, clock=FakeClock(), config=ck.BookConfig(customer_match=MATCH))
    _fill(book, 300)
    first = book.customers.find_duplicates(actor=ADMIN)
    assert first.pairs
    assert first.groups
    assert first.compared > len(first.pairs)
    # A dismissed pair is left out (and apart) on both paths.
    book.customers.dismiss(first.pairs[0].left_id, first.pairs[0].right_id, actor=ADMIN)
    expected = _expected(book)
    got = book.customers.find_duplicates(actor=ADMIN, workers=2, chunk_size=97)
    assert pools == [2]  # the report came from two worker processes
    # Pairs of the common name are reported: their scores depend on how many share it.
    assert any(got.values[p.left_id]["company_name"] == "Miller Trucking" for p in got.pairs)
    _same(got, expected)
    assert (first.pairs[0].left_id, first.pairs[0].right_id) not in {
        (p.left_id, p.right_id) for p in got.pairs
    }
    # One process, other chunks: the same again.
    _same(book.customers.find_duplicates(actor=ADMIN, workers=1, chunk_size=200), expected)
    assert pools == [2]
    # A location within one chunk is matched in memory at once: the same again.
    _same(book.customers.find_duplicates(actor=ADMIN, chunk_size=10_000), expected)
    assert pools == [2]
    # Without a chunk size nothing is chunked, workers or not: in memory is the default.
    _same(book.customers.find_duplicates(actor=ADMIN, workers=2), expected)
    assert pools == [2]


@pytest.mark.parametrize("make_book", ["sqlite"], indirect=True)
def test_bad_workers_and_chunk_sizes_are_refused(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    book = make_book(FakeClock())
    for options, field in (
        ({"workers": 0}, "workers"),
        ({"chunk_size": 1}, "chunk_size"),
        ({"workers": True}, "workers"),
    ):
        with pytest.raises(ck.ValidationError) as raised:
            book.customers.find_duplicates(actor=ADMIN, **options)  # type: ignore[arg-type]
        assert field in raised.value.errors


def test_extra_comparisons_and_tiny_chunks_are_refused() -> None:
    extra = MatchConfig(comparisons=(ExtraComparison(field="vin", method="exact"),))
    with pytest.raises(ck.MatchingError, match="standard rules"):
        find_kept_duplicates(None, kind="customer", config=extra)  # type: ignore[arg-type]
    with pytest.raises(ck.MatchingError, match="chunk_size"):
        find_kept_duplicates(None, kind="customer", chunk_size=1)  # type: ignore[arg-type]


class _SpreadBlocks:
    """40 customers in 10 kept blocks of 4, each block's members far apart in id order."""

    def __init__(self) -> None:
        records = synth.labelled_customers(40, seed=5, locations=("loc-1",)).records
        self.records_by_id = {row["id"]: row for row in records}
        ids = sorted(self.records_by_id)
        self.keys = sorted((f"spread:{at % 10}", "", record_id) for at, record_id in enumerate(ids))
        self.loads: list[int] = []

    def records(self, batch_size: int) -> Any:
        ids = sorted(self.records_by_id)
        for start in range(0, len(ids), batch_size):
            yield [self.records_by_id[i] for i in ids[start : start + batch_size]]

    def rows(self, batch_size: int) -> Any:
        for start in range(0, len(self.keys), batch_size):
            yield self.keys[start : start + batch_size]

    def load_rows(self, ids: Any) -> list[Any]:
        self.loads.append(len(ids))
        return [self.records_by_id[i] for i in ids]

    def count_named(self) -> int:
        return len(self.records_by_id)


def test_a_chunk_of_pairs_reads_the_records_of_its_blocks_only() -> None:
    # Pairs in id order would mix blocks: the first six, (0, 10), (0, 20), (0, 30), (1, 11),
    # ..., need eight records; a block's six pairs need its four.
    blocks = _SpreadBlocks()
    report = find_kept_duplicates(
        blocks, kind="customer", config=MatchConfig(estimate=False), workers=1, chunk_size=6
    )
    assert report.compared == 60
    assert blocks.loads[:10] == [4] * 10


_FINDER = """
import sys
import customerkit as ck

book = ck.open_book(sys.argv[1])
admin = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
print("finding", flush=True)
while True:  # until killed
    book.customers.find_duplicates(actor=admin, workers=2, chunk_size=50)
"""


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (read from Linux's ``/proc``)."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _running(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie waiting to be reaped has ended)."""
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.add(pid)
    return found


@pytest.mark.slow
def test_workers_end_when_their_process_is_killed(tmp_path: Any) -> None:
    """A process killed outright (SIGKILL) cannot stop its pool: its workers stop themselves
    within a second or so, instead of waiting for work forever."""
    if not Path("/proc/self/stat").exists():
        if in_ci():
            pytest.fail("CI must run the orphaned-worker test: it reads Linux's /proc")
        pytest.skip("reads Linux's /proc")
    url = f"sqlite:///{tmp_path / 'book.db'}"
    book = ck.open_book(url, clock=FakeClock(), config=ck.BookConfig(customer_match=MATCH))
    _fill(book, 300)
    book.close()
    finder = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _FINDER, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert finder.stdout is not None
        assert finder.stdout.readline().strip() == "finding"
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = _running(_children(finder.pid))
        assert len(workers) >= 2
        finder.send_signal(signal.SIGKILL)
        finder.wait()
        deadline = time.monotonic() + 10
        while _running(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(workers)
    finally:
        finder.kill()
        finder.wait()
        if finder.stdout is not None:
            finder.stdout.close()
