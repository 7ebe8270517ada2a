"""Benchmark the memory search index against the S5 bar (spec section 6).

Usage::

    python benchmarks/bench_search.py --size 100000
    python benchmarks/bench_search.py --size 1000000 --scan-sample 3

Generates N synthetic customers in one location (seeded, so runs compare), bulk-loads a
``MemorySearchIndex`` (build time; memory per record with tracemalloc), runs ranked top-20
queries of 3-12 characters and prints p50/p95. Baselines measured in the same run: a naive
Python scan with the same semantics (the oracle over pre-tokenised words; a sample of queries
when slow), and ``rapidfuzz.process.extract`` over all names. A section is appended to
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

from rapidfuzz import fuzz, process

from customerkit.model import SearchField
from customerkit.search.index import MemorySearchIndex
from customerkit.search.oracle import match_words, rank_key, score
from customerkit.search.query import (
    ALL_FIELDS,
    RankedMatch,
    SearchDocument,
    SearchQuery,
    parse_query,
)
from customerkit.text import words

LOCATION = "loc-1"
LIMIT = 20
RESULTS = Path(__file__).with_name("RESULTS.md")

# A tiny local generator; the shared synthetic-data module will replace it.
SURNAMES = (
    "Johnson Smith Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers "
    "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson "
    "Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Deere Johnston O'Brien O'Neil Müller Peña"
).split()
TRADES = (
    "Tires Trucking Auto Motors Freight Logistics Construction Farms Equipment Repair Transport "
    "Diesel Fleet Services Supply Rentals Towing Excavating Paving Landscaping Hauling Plumbing "
    "Electric Roofing Welding Machinery Implements Tractor Marine Aviation Contracting Concrete "
    "Lumber Feed Grain Dairy Cattle Produce Nursery Salvage Recycling Storage Moving Delivery "
    "Express Carriers Coaches Buses Limousine Ambulance"
).split()
ADJECTIVES = (
    "Rocky Mountain Great Plains Blue Ridge Golden State Lone Star Midwest Pacific Atlantic "
    "Northern Southern Eastern Western Central Valley Summit Pioneer Frontier Heritage Liberty "
    "Eagle Falcon Bison Cedar Pine Oak Maple River Lake Prairie Desert Coastal Highland"
).split()
SUFFIXES = ("Inc", "LLC", "Co", "Corp", "Ltd", "Company", "& Sons", "Group")
CITIES = (
    ("Denver", "CO"), ("Boulder", "CO"), ("Colorado Springs", "CO"), ("Chicago", "IL"),
    ("Springfield", "IL"), ("Dallas", "TX"), ("Houston", "TX"), ("Austin", "TX"),
    ("San Antonio", "TX"), ("Phoenix", "AZ"), ("Tucson", "AZ"), ("Los Angeles", "CA"),
    ("San Diego", "CA"), ("Fresno", "CA"), ("Sacramento", "CA"), ("Portland", "OR"),
    ("Seattle", "WA"), ("Spokane", "WA"), ("Boise", "ID"), ("Salt Lake City", "UT"),
    ("Las Vegas", "NV"), ("Reno", "NV"), ("Albuquerque", "NM"), ("Omaha", "NE"),
    ("Lincoln", "NE"), ("Wichita", "KS"), ("Kansas City", "MO"), ("St. Louis", "MO"),
    ("Minneapolis", "MN"), ("Des Moines", "IA"), ("Milwaukee", "WI"), ("Detroit", "MI"),
    ("Columbus", "OH"), ("Cleveland", "OH"), ("Indianapolis", "IN"), ("Louisville", "KY"),
    ("Nashville", "TN"), ("Memphis", "TN"), ("Atlanta", "GA"), ("Charlotte", "NC"),
    ("Raleigh", "NC"), ("Richmond", "VA"), ("Pittsburgh", "PA"), ("Philadelphia", "PA"),
    ("Buffalo", "NY"), ("Albany", "NY"), ("Boston", "MA"), ("Hartford", "CT"),
    ("Jacksonville", "FL"), ("Tampa", "FL"), ("Miami", "FL"), ("Birmingham", "AL"),
    ("New Orleans", "LA"), ("Little Rock", "AR"), ("Oklahoma City", "OK"), ("Tulsa", "OK"),
    ("Billings", "MT"), ("Fargo", "ND"), ("Sioux Falls", "SD"), ("Cheyenne", "WY"),
    ("Montréal", "QC"), ("Québec", "QC"),
)  # fmt: skip


def company_name(rng: random.Random, city: str) -> str:
    surname, trade = rng.choice(SURNAMES), rng.choice(TRADES)
    pattern = rng.random()
    if pattern < 0.30:
        return f"{surname} {trade}"
    if pattern < 0.50:
        return f"{surname} {trade} - {city}"
    if pattern < 0.62:
        return f"{surname} {trade} {rng.choice(SUFFIXES)}"
    if pattern < 0.72:
        return f"{surname}-{rng.choice(SURNAMES)} {trade} {rng.choice(SUFFIXES)}"
    if pattern < 0.87:
        return f"{rng.choice(ADJECTIVES)} {trade} {rng.choice(SUFFIXES)}"
    if pattern < 0.95:
        return f"{rng.choice(ADJECTIVES)} {rng.choice(ADJECTIVES)} {trade}"
    return f"{surname} & {rng.choice(SURNAMES)} {trade}"


def customers(size: int, seed: int) -> list[SearchDocument]:
    rng = random.Random(seed)
    numbers = rng.sample(range(10**6, 10**7), size)
    out = []
    for at, number in enumerate(numbers):
        city, state = rng.choice(CITIES)
        out.append(
            SearchDocument(
                id=f"{rng.getrandbits(128):032x}",
                location_id=LOCATION,
                name=company_name(rng, city),
                city=city,
                state=state,
                number=f"C-{number}" if at % 10 else str(number),
            )
        )
    return out


def queries(documents: Sequence[SearchDocument], count: int, seed: int) -> list[str]:
    """A mix of what people type: whole words, prefixes, two words, numbers, infixes."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        document = rng.choice(documents)
        name_words = [w for w in words(document.name) if len(w) >= 3]
        kind = rng.random()
        if kind < 0.25:
            text = rng.choice(name_words)
        elif kind < 0.45:
            word = rng.choice(name_words)
            text = word[: rng.randint(3, max(3, len(word) - 1))]
        elif kind < 0.55:
            city = words(document.city)[0]
            text = city[: rng.randint(3, len(city))] if len(city) >= 3 else document.city
        elif kind < 0.75:
            first = rng.choice(name_words)
            second = rng.choice([*name_words, *words(document.city)])
            text = f"{first[: rng.randint(3, 6)]} {second[: rng.randint(1, 4)]}"
        elif kind < 0.95:
            number = document.number
            digits = number.removeprefix("C-")
            text = rng.choice(
                (
                    number[: rng.randint(5, len(number))],
                    digits,
                    digits[rng.randint(0, 3) :][: rng.randint(4, 6)],
                )
            )
        else:
            word = max(name_words, key=len)
            text = word[1 : 1 + rng.randint(4, 6)] if len(word) >= 6 else word
        if 3 <= len(text) <= 12:
            out.append(text)
    return out


def naive_scan(
    tokenised: Sequence[tuple[SearchDocument, dict[SearchField, tuple[str, ...]]]],
    query: SearchQuery,
) -> list[RankedMatch]:
    """The oracle's semantics as a plain scan over pre-tokenised documents."""
    found = []
    for document, field_words in tokenised:
        match = match_words(field_words, query)
        if match is not None:
            tier, field = match
            hit = RankedMatch(customer_id=document.id, score=score(tier, field), field=field)
            found.append((rank_key(tier, field, document), hit))
    found.sort(key=lambda item: item[0])
    return [hit for _, hit in found[:LIMIT]]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def machine() -> str:
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 2**20:.1f} GiB"
    return (
        f"{os.cpu_count()} cores, {memory} RAM, {platform.machine()} {platform.system()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--scan-sample", type=int, default=10, help="queries for the naive scan")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc build")
    parser.add_argument("--no-results", action="store_true", help="do not append RESULTS.md")
    args = parser.parse_args()

    print(f"generating {args.size:,} customers ...", flush=True)
    documents = customers(args.size, args.seed)
    texts = queries(documents, args.queries, args.seed + 1)
    parsed = [parse_query(text) for text in texts]

    gc.collect()
    start = time.perf_counter()
    index = MemorySearchIndex()
    index.bulk_load(documents)
    build = time.perf_counter() - start
    print(f"build: {build:.2f} s for {len(index):,} documents", flush=True)

    for query in parsed[:20]:  # warm caches and code paths
        index.search(LOCATION, query, limit=LIMIT)
    times = [timed(lambda q=query: index.search(LOCATION, q, limit=LIMIT)) for query in parsed]
    p50, p95 = statistics.median(times), percentile(times, 0.95)
    print(f"index: p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {percentile(times, 0.99):.3f} ms  "
          f"max {max(times):.3f} ms over {len(times)} queries")  # fmt: skip
    slowest = sorted(zip(times, texts, strict=True), reverse=True)[:5]
    print("  slowest:", ", ".join(f"{text!r} {ms:.2f} ms" for ms, text in slowest))

    fuzzy = [parse_query(text, fuzzy=True) for text in texts[:20]]
    fuzzy_times = [timed(lambda q=query: index.search(LOCATION, q, limit=LIMIT)) for query in fuzzy]
    print(f"index, fuzzy=True: p50 {statistics.median(fuzzy_times):.1f} ms over {len(fuzzy)}")

    tokenised = [
        (document, {field: words(document.text(field)) for field in ALL_FIELDS})
        for document in documents
    ]
    sample = range(0, len(parsed), max(1, len(parsed) // args.scan_sample))[: args.scan_sample]
    scan_times = []
    for at in sample:
        expected: list[RankedMatch] = []
        scan_times.append(timed(lambda q=parsed[at]: expected.extend(naive_scan(tokenised, q))))
        if index.search(LOCATION, parsed[at], limit=LIMIT) != expected:
            sys.exit(f"index and naive scan disagree on {texts[at]!r}")
    scan_p50 = statistics.median(scan_times)
    print(f"naive scan: p50 {scan_p50:.0f} ms over {len(scan_times)} queries (results agree)")
    del tokenised

    names = [document.name for document in documents]
    rf_times = [
        timed(lambda t=text: process.extract(t, names, scorer=fuzz.WRatio, limit=LIMIT))
        for text in texts[:20]
    ]
    rf_p50 = statistics.median(rf_times)
    print(f"rapidfuzz.process.extract over names: p50 {rf_p50:.0f} ms over {len(rf_times)}")

    per_record = peak = float("nan")
    if not args.no_memory:
        del index
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        index = MemorySearchIndex()
        index.bulk_load(documents)
        gc.collect()
        current, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        per_record = (current - before) / args.size
        peak = (peak_bytes - before) / args.size
        print(f"memory: {per_record:.0f} bytes/record retained, {peak:.0f} bytes/record peak")

    if args.no_results:
        return
    section = f"""
## Search, memory backend, {args.size:,} customers in one location ({dt.date.today()})

Machine: {machine()}. Command: `python benchmarks/bench_search.py --size {args.size}`.

| measure | value |
| --- | --- |
| build (`bulk_load`) | {build:.1f} s |
| memory retained / peak during build | {per_record:.0f} / {peak:.0f} bytes per record |
| ranked top-20, p50 / p95 ({len(times)} queries) | {p50:.3f} / {p95:.3f} ms |
| same queries with `fuzzy=True`, p50 ({len(fuzzy_times)} queries) | {statistics.median(fuzzy_times):.1f} ms |
| naive Python scan, same semantics, p50 ({len(scan_times)} queries) | {scan_p50:.0f} ms ({scan_p50 / p50:,.0f}x slower) |
| `rapidfuzz.process.extract` over all names, p50 | {rf_p50:.0f} ms ({rf_p50 / p50:,.0f}x slower) |
"""  # noqa: E501
    with RESULTS.open("a", encoding="utf-8") as out:
        if RESULTS.stat().st_size == 0:
            out.write("# Benchmark results\n\nAppended by the scripts in `benchmarks/`.\n")
        out.write(section)
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
