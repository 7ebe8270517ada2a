"""Benchmark: the Spark matcher (``local[2]``) against the in-process matcher, same records.

The parent generates labelled synthetic records (:mod:`customerkit.synth`, seeded) and writes
them to Parquet in id order; two freshly spawned processes then each read them and time only
the matching, up to the results written to Parquet:

* ``in-process``: :func:`customerkit.matching.find_duplicates` on the pandas DataFrame;
* ``spark``: :func:`customerkit.spark.find_duplicates_spark` on ``spark.read.parquet`` in a
  ``local[2]`` session (started before the clock), pairs and groups written with Spark.

Peak RSS is per process: the in-process run's own; for Spark the sum of the peaks of the
driver, its JVM and the Python workers (a sum of peaks, so an upper bound of the peak of the
sum). The parent then checks that both wrote the same pairs, scores (to 1e-9) and groups.
Results are appended to ``benchmarks/RESULTS.md`` and ``benchmarks/results.json``.

    python benchmarks/bench_spark.py --size 100000 --kind contact
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


def _tree_peak_mib(root: int) -> float:
    """The summed peak RSS (VmHWM) of ``root`` and every process below it, in MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


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
    return {"wall": wall, "peak": peak_rss_mib(), "compared": report.compared}


def _run_spark(source: Path, out: Path, kind: str) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    from customerkit.spark import find_duplicates_spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "4g")
        # Few partitions for two cores: each task costs a Python worker round trip.
        .config("spark.sql.shuffle.partitions", "8")
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
    peak = _tree_peak_mib(os.getpid())
    spark.stop()
    return {"wall": wall, "peak": peak, "compared": report.compared}


def _child(args: argparse.Namespace) -> None:
    run = _run_spark if args.child == "spark" else _run_in_process
    result = run(Path(args.source), Path(args.out), args.kind)
    report_child_result(result)


def _spawn(which: str, source: Path, out: Path, kind: str) -> dict[str, Any]:
    out.mkdir()
    command = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--kind",
        kind,
        "--source",
        str(source),
        "--out",
        str(out),
    ]
    return run_child(command, which)


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
    parser.add_argument("--child", choices=("spark", "in-process"), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    import pandas as pd

    from customerkit import synth

    make = synth.labelled_contacts if args.kind == "contact" else synth.labelled_customers
    data = make(args.size, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        folder = Path(tmp)
        source = folder / "records.parquet"
        # In id order: Spark draws estimation's random pairs over records in id order.
        pd.DataFrame(sorted(data.records, key=lambda r: r["id"])).to_parquet(source)
        del data
        load_before = load_average()
        results = {
            which: _spawn(which, source, folder / which, args.kind)
            for which in ("in-process", "spark")
        }
        verdict = _same_results(folder)
    ratio = results["spark"]["wall"] / results["in-process"]["wall"]
    lines = [
        f"Command: `python benchmarks/bench_spark.py --size {args.size} --kind {args.kind}`; "
        f"seed {args.seed}; load before the runs: {load_text(load_before)}.",
        "",
        "| run | wall s | peak RSS MiB | pairs compared |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {which} | {r['wall']:.1f} | {r['peak']:.0f} | {r['compared']:,} |"
            for which, r in results.items()
        ),
        "",
        f"Spark local[2] / in-process wall time: x{ratio:.2f}. Results: {verdict}.",
        "Spark's peak RSS sums the driver, its JVM and the Python workers.",
    ]
    panel = "contacts" if args.kind == "contact" else "customers"
    append_section(
        f"find_duplicates_spark vs find_duplicates, {args.size:,} {panel}",
        lines,
        figures=[
            figure("spark", panel, which, size=args.size, value=r["wall"], unit="s", peak=r["peak"])
            for which, r in results.items()
        ],
    )


if __name__ == "__main__":
    main()
