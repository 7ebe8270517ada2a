"""Benchmark: the Spark matcher (``local[2]``) against the in-process matcher, same records.

The parent generates labelled synthetic records (:mod:`customerkit.synth`, seeded) and writes
them to Parquet in id order; two freshly spawned processes then each read them and time only
the matching, up to the results written to Parquet:

* ``in-process``: :func:`customerkit.matching.find_duplicates` on the pandas DataFrame;
* ``spark``: :func:`customerkit.spark.find_duplicates_spark` on ``spark.read.parquet`` in a
  ``local[2]`` session (started before the clock), pairs and groups written with Spark.

Peak RSS is per process: the in-process run's own; for Spark the sum of the peaks of the
driver, its JVM and the Python workers (a sum of peaks, so an upper bound of the peak of the
sum), and the largest single one. The parent then checks that both wrote the same pairs, scores
(to 1e-9) and groups. Results are appended to ``benchmarks/RESULTS.md`` and
``benchmarks/results.json``.

Records are generated and written in parts of ``--part`` records (10^6 by default), so the
parent never holds more than one part: part ``i`` is its own seeded data set, its ids and
customer ids prefixed with ``i``. Duplicates therefore never span two parts, and two people of
different parts may share an email address or phone number, which one data set never has.
``--spark-only`` skips the in-process run (at 10^7 it would need about 17 GiB).

    python benchmarks/bench_spark.py --size 100000 --kind contact
    python benchmarks/bench_spark.py --size 10000000 --spark-only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    append_section,
    figure,
    load_average,
    load_text,
    peak_rss_mib,
    report_child_result,
    run_child,
)

_TOLERANCE = 1e-9


def _tree_peak_mib(root: int) -> tuple[float, float]:
    """The summed and the largest peak RSS (VmHWM) of ``root`` and every process below it, MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    peaks, todo = [0.0], [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sum(peaks), max(peaks)


def _run_in_process(source: Path, out: Path, kind: str) -> dict[str, Any]:
    import pandas as pd

    from customerkit.matching import find_duplicates

    frame = pd.read_parquet(source)
    start = time.perf_counter()
    report = find_duplicates(frame, kind=kind)  # type: ignore[arg-type]
    pd.DataFrame(
        {
            "left_id": [p.left_id for p in report.pairs],
            "right_id": [p.right_id for p in report.pairs],
            "score": [p.score for p in report.pairs],
        }
    ).to_parquet(out / "pairs.parquet")
    pd.DataFrame(
        {
            "main_id": [g.main_id for g in report.groups],
            "ids": [list(g.ids) for g in report.groups],
        }
    ).to_parquet(out / "groups.parquet")
    wall = time.perf_counter() - start
    peak = peak_rss_mib()
    return {"wall": wall, "peak": peak, "largest": peak, "compared": report.compared}


def _run_spark(source: Path, out: Path, kind: str, partitions: int) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    from customerkit.spark import find_duplicates_spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "4g")
        # Few partitions for two cores (each task costs a Python worker round trip), yet small
        # enough that a worker's pandas batch stays well below the memory bar.
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1).count()  # the JVM is up before the clock starts
    frame = spark.read.parquet(str(source))
    start = time.perf_counter()
    report = find_duplicates_spark(frame, kind=kind)  # type: ignore[arg-type]
    report.pairs.select("left_id", "right_id", "score").write.parquet(str(out / "pairs"))
    report.groups.select("main_id", "ids").write.parquet(str(out / "groups"))
    wall = time.perf_counter() - start
    peak, largest = _tree_peak_mib(os.getpid())
    spark.stop()
    return {"wall": wall, "peak": peak, "largest": largest, "compared": report.compared}


def _child(args: argparse.Namespace) -> None:
    source, out = Path(args.source), Path(args.out)
    if args.child == "spark":
        result = _run_spark(source, out, args.kind, _partitions(args.size))
    else:
        result = _run_in_process(source, out, args.kind)
    report_child_result(result)


def _partitions(size: int) -> int:
    """Shuffle partitions: 8 up to 10^6 records, then one per 62,500."""
    return max(8, size // 62_500)


def _spawn(which: str, source: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    out.mkdir()
    command = [sys.executable, __file__, "--child", which, "--kind", args.kind]
    command += ["--size", str(args.size), "--source", str(source), "--out", str(out)]
    return run_child(command, which)


def _write_records(args: argparse.Namespace, folder: Path) -> None:
    """Generate the records part by part into ``folder``, each part sorted by id."""
    import pandas as pd

    from customerkit import synth

    make = synth.labelled_contacts if args.kind == "contact" else synth.labelled_customers
    folder.mkdir()
    parts = -(-args.size // args.part)
    for i in range(parts):
        size = min(args.part, args.size - i * args.part)
        frame = pd.DataFrame(make(size, seed=args.seed + 7919 * i).records)
        if parts > 1:
            frame["id"] = f"p{i:03d}" + frame["id"]
            if "customer_id" in frame:
                frame["customer_id"] = f"p{i:03d}-" + frame["customer_id"]
        # In id order: Spark draws estimation's random pairs over records in id order.
        frame.sort_values("id", ignore_index=True).to_parquet(folder / f"part-{i:03d}.parquet")


def _same_results(folder: Path) -> str:
    """ "identical" or what differs between the two runs' pairs and groups."""
    import pandas as pd

    ours = pd.read_parquet(folder / "in-process" / "pairs.parquet")
    theirs = pd.read_parquet(folder / "spark" / "pairs")
    key = ["left_id", "right_id"]
    ours, theirs = (
        ours.sort_values(key, ignore_index=True),
        theirs.sort_values(key, ignore_index=True),
    )
    if not ours[key].equals(theirs[key]):
        return f"pairs differ ({len(ours)} in-process, {len(theirs)} on Spark)"
    worst = float((ours["score"] - theirs["score"]).abs().max()) if len(ours) else 0.0
    if worst > _TOLERANCE:
        return f"scores differ by up to {worst:.3g}"
    groups = [
        {(row.main_id, tuple(row.ids)) for row in pd.read_parquet(path).itertuples()}
        for path in (folder / "in-process" / "groups.parquet", folder / "spark" / "groups")
    ]
    if groups[0] != groups[1]:
        return f"groups differ ({len(groups[0] ^ groups[1])} not in both)"
    return f"identical ({len(ours):,} pairs, {len(groups[0]):,} groups)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--kind", choices=("contact", "customer"), default="contact")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--part", type=int, default=1_000_000, help="records generated at once")
    parser.add_argument("--spark-only", action="store_true", help="no in-process run")
    parser.add_argument("--child", choices=("spark", "in-process"), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    runs = ("spark",) if args.spark_only else ("in-process", "spark")
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        folder = Path(tmp)
        source = folder / "records"
        _write_records(args, source)
        load_before = load_average()
        results = {which: _spawn(which, source, folder / which, args) for which in runs}
        verdict = "" if args.spark_only else _same_results(folder)
    command = f"python benchmarks/bench_spark.py --size {args.size} --kind {args.kind}"
    command += " --spark-only" if args.spark_only else ""
    lines = [
        f"Command: `{command}`; seed {args.seed}, generated in parts of {args.part:,}; "
        f"{_partitions(args.size)} shuffle partitions; load before the runs: "
        f"{load_text(load_before)}.",
        "",
        "| run | wall s | peak RSS MiB (sum) | largest process MiB | pairs compared |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {which} | {r['wall']:.1f} | {r['peak']:.0f} | {r['largest']:.0f} "
            f"| {r['compared']:,} |"
            for which, r in results.items()
        ),
        "",
        "Spark's peak RSS sums the driver, its JVM and the Python workers.",
    ]
    if not args.spark_only:
        ratio = results["spark"]["wall"] / results["in-process"]["wall"]
        lines.append(f"Spark local[2] / in-process wall time: x{ratio:.2f}. Results: {verdict}.")
    panel = "contacts" if args.kind == "contact" else "customers"
    append_section(
        f"find_duplicates_spark vs find_duplicates, {args.size:,} {panel}",
        lines,
        figures=[
            figure(
                "spark",
                panel,
                which,
                size=args.size,
                value=r["wall"],
                unit="s",
                peak=r["peak"],
                largest=r["largest"],
            )
            for which, r in results.items()
        ],
    )


if __name__ == "__main__":
    main()
