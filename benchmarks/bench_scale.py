"""Benchmark: one location's customer duplicates on an SQL book, in memory and chunked in processes.

The parent loads ``--size`` labelled synthetic customers (:mod:`customerkit.synth`, seeded) of
one location into a new book (an SQLite file, or with ``--engine postgresql`` a throwaway
PostgreSQL server started from the local binaries) with ``book.customers.load``; with
``--book-size`` larger than ``--size``, the rest of the book's customers follow, spread evenly
over ``--other-locations`` other locations (each its own load), so the location searched is
the largest of a large book. With ``--search`` the parent then times 200 searches of the
location (``bench_load_export``'s, typed as users type them; a first pass right after the
loads, then a second), and with ``--search-only`` it stops there. Otherwise it keeps the
location's blocking keys (timed apart: the first ``find_duplicates`` or ``find_similar`` of a
location does it once).
Freshly spawned processes then each time one way of finding the location's duplicates:

* ``in memory``: the customers read with ``iter_location`` and ``customerkit.find_duplicates``
  over them (the book's path before it read kept keys, and the memory book's);
* ``chunked, N workers``: ``book.customers.find_duplicates(actor=..., workers=N)``, which reads
  customers, kept keys and candidate pairs ``--chunk-size`` at a time and scores them in N
  worker processes.

Peak RSS is per process: the main process's own high-water mark (VmHWM), and the largest of
its workers' (sampled every 50 ms while it runs). The parent checks that every run reported the
same pairs, scores and groups. Results are appended to ``benchmarks/RESULTS.md`` and
``benchmarks/results.json`` (``python benchmarks/plot.py`` draws ``scale.png``).

    python benchmarks/bench_scale.py --size 100000
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    append_section,
    figure,
    load_average,
    load_text,
    peak_rss_mib,
    percentile,
    report_child_result,
    run_child,
)


def _actor() -> Any:
    import customerkit as ck

    return ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")


class _WorkerPeaks:
    """The largest resident set of this process's children, sampled while it runs."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import os

        me = str(os.getpid())
        while not self._stop.wait(0.05):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
                    if fields[1] != me:
                        continue
                    for line in (entry / "status").read_text(encoding="ascii").splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) / 1024)

    def __enter__(self) -> _WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _digest(report: Any) -> str:
    """A fingerprint of a report's pairs, scores and groups."""
    text = json.dumps(
        [
            [(p.left_id, p.right_id, round(p.score, 12), list(p.reasons)) for p in report.pairs],
            [(g.main_id, list(g.ids)) for g in report.groups],
            report.compared,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _child(url: str, which: str, chunk_size: int) -> dict[str, Any]:
    import customerkit as ck

    book = ck.open_book(url)
    actor = _actor()
    start = time.perf_counter()
    with _WorkerPeaks() as workers:
        if which == "in memory":
            with book.store.unit_of_work(read_only=True) as uow:
                customers = list(uow.customers.iter_location("loc-1"))
            report = ck.find_duplicates(
                customers,
                kind="customer",
                config=book.config.match_for("customer"),
                region=book.config.phone_region,
            )
        else:
            count = int(which.split()[1])
            report = book.customers.find_duplicates(
                actor=actor, workers=count, chunk_size=chunk_size
            )
    wall = time.perf_counter() - start
    book.close()
    return {
        "wall": wall,
        "peak": peak_rss_mib(),
        "worker_peak": workers.peak,
        "compared": report.compared,
        "pairs": len(report.pairs),
        "digest": _digest(report),
    }


def _spawn(url: str, which: str, chunk_size: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", which, "--url", url]
    command += ["--chunk-size", str(chunk_size)]
    return run_child(command, which)


@contextlib.contextmanager
def _database(engine: str, folder: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{folder / 'book.db'}"
        return
    from customerkit.testing.postgres import create_database, postgres_server

    with postgres_server() as server:
        yield create_database(server)


def _fill(  # noqa: PLR0917 - the command line's settings
    url: str, size: int, seed: int, others: int, locations: int, search: bool, keep: bool
) -> dict[str, Any]:
    """Load the location, then ``others`` customers of other locations; time the location's
    searches (``search``) and keeping its blocking keys (``keep``). The seconds of each step,
    and each search's milliseconds."""
    from bench_load_export import search_passes, search_texts

    import customerkit as ck
    from customerkit import synth

    data = synth.labelled_customers(size, seed=seed, locations=("loc-1",))
    drafts = [
        synth.new_customer({k: v for k, v in row.items() if k not in {"id", "location_id"}})
        for row in data.records
    ]
    del data
    texts = search_texts(drafts) if search else []
    book = ck.open_book(url)
    found: dict[str, Any] = {}
    start = time.perf_counter()
    book.customers.load(drafts, actor=_actor())
    found["loaded"] = time.perf_counter() - start
    del drafts
    start = time.perf_counter()
    for at in range(locations if others else 0):
        location = f"loc-{at + 2}"
        share = others // locations + (at < others % locations)
        rows = synth.customers(share, seed=seed + 1 + at, locations=(location,))
        admin = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id=location)
        book.customers.load((draft for _, draft in rows), actor=admin)
    found["filled"] = time.perf_counter() - start
    if search:
        found["load_before_search"] = load_average()
        found["first"], found["second"] = search_passes(book, texts)
    if keep:
        start = time.perf_counter()
        with book.store.unit_of_work() as uow:
            uow.customers.keep_blocks("loc-1", region=book.config.phone_region)  # type: ignore[attr-defined]
            uow.commit()
        found["kept"] = time.perf_counter() - start
    book.close()
    return found


def _latency(times: list[float]) -> str:
    return f"p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 95):.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--book-size", type=int, help="customers in the whole book (default: --size, one location)"
    )
    parser.add_argument("--other-locations", type=int, default=9)
    parser.add_argument(
        "--workers", type=int, choices=(1, 2), default=2, help="chunked runs with 1 to N workers"
    )
    parser.add_argument("--search", action="store_true", help="time 200 searches after the loads")
    parser.add_argument(
        "--search-only", action="store_true", help="time the searches, not the duplicates"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _child(args.url, args.child, args.chunk_size)
        report_child_result(result)
        return
    runs = ("in memory", "chunked 1 worker", "chunked 2 workers")[: 1 + args.workers]
    book_size = max(args.book_size or args.size, args.size)
    others = book_size - args.size
    if others and args.other_locations < 1:
        parser.error("--other-locations must be at least 1 when the book holds others")
    book_text = (
        "one location"
        if not others
        else f"the largest of {args.other_locations + 1} locations, {book_size:,} customers in all"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp,
        _database(args.engine, Path(tmp)) as url,
    ):
        search = args.search or args.search_only
        steps = _fill(
            url, args.size, args.seed, others, args.other_locations, search, not args.search_only
        )
        load_before = load_average()
        results = {} if args.search_only else {w: _spawn(url, w, args.chunk_size) for w in runs}
    loaded, filled = steps["loaded"], steps["filled"]
    searched: list[str] = []
    if search:
        searched = [
            f"200 searches of the location right after the loads (load before them: "
            f"{load_text(steps['load_before_search'])}): first pass {_latency(steps['first'])}, "
            f"second pass {_latency(steps['second'])}."
        ]
    command = f"python benchmarks/bench_scale.py --size {args.size} --engine {args.engine}"
    if not args.search_only:
        command += f" --chunk-size {args.chunk_size} --workers {args.workers}"
    if others:
        command += f" --book-size {book_size} --other-locations {args.other_locations}"
    command += " --search-only" if args.search_only else " --search" if args.search else ""
    loading = f"Loading the location's customers (`load`): {loaded:.1f} s" + (
        f"; the other locations' {others:,} (one `load` each): {filled:.1f} s" if others else ""
    )
    in_book = f" in a book of {book_size:,}" if others else ""
    if args.search_only:
        append_section(
            f"searches of a location on {args.engine}, {args.size:,} customers{in_book}",
            [
                f"Command: `{command}`; seed {args.seed}; {book_text}.",
                "",
                f"{loading}.",
                "",
                *searched,
            ],
        )
        return
    kept = steps["kept"]
    digests = {r["digest"] for r in results.values()}
    verdict = "identical" if len(digests) == 1 else f"DIFFERENT ({len(digests)} reports)"
    base = results["in memory"]["wall"]
    lines = [
        f"Command: `{command}`; seed {args.seed}; {book_text}; load before the runs: "
        f"{load_text(load_before)}.",
        "",
        f"{loading}; keeping the location's blocking keys (once per location): {kept:.1f} s.",
        "",
        "| run | wall s | vs in memory | main peak MiB | worker peak MiB | pairs compared |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {which} | {r['wall']:.1f} | x{r['wall'] / base:.2f} | {r['peak']:.0f} | "
            f"{r['worker_peak']:.0f} | {r['compared']:,} |"
            for which, r in results.items()
        ),
        "",
        f"Reports (pairs, scores, groups): {verdict}; {results['in memory']['pairs']:,} pairs.",
        *(["", *searched] if searched else []),
    ]
    append_section(
        f"a location's customer duplicates on {args.engine}, {args.size:,} customers{in_book}",
        lines,
        figures=[
            figure(
                "scale",
                f"{args.engine}: duplicates of one location",
                (which if which == "in memory" else f"customerkit {which}") + in_book,
                size=args.size,
                value=r["wall"],
                unit="s",
                peak=r["peak"],
                worker_peak=r["worker_peak"],
                book_size=book_size,
            )
            for which, r in results.items()
        ],
    )


if __name__ == "__main__":
    main()
