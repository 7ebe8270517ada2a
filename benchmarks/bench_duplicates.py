"""Benchmark: find duplicates among labelled synthetic contacts or customers (SPEC §6, M1-M5).

Generates labelled data with :mod:`customerkit.synth`, times :func:`find_duplicates` (wall time,
peak RSS) and measures pairwise precision, recall and F1 against the truth, next to a baseline
run in the same process: a plain rapidfuzz blocking script (block on the first letter of the
last name plus the first initial, ``token_sort_ratio`` of full names over each block, keep pairs
at or above a threshold). Results are appended to ``benchmarks/RESULTS.md``.

    python benchmarks/bench_duplicates.py --size 100000 --kind contact
    python benchmarks/bench_duplicates.py --size 1000000 --kind contact --no-baseline
    python benchmarks/bench_duplicates.py --size 200000 --kind contact --calibrate

``--calibrate`` fits the comparison-level weights by logistic regression on the candidate pairs
(how the defaults of ``MatchConfig`` were first estimated) and prints them instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from customerkit import synth
from customerkit.matching import MatchConfig, find_duplicates

RESULTS = Path(__file__).with_name("RESULTS.md")
BASELINE_THRESHOLD = 90
_ROWS = 2048  # baseline: rows of a block compared at a time (bounds the score matrix)


def rss_mib() -> float:
    """Current resident set size in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {model}".strip()


def generate(kind: str, size: int, seed: int) -> synth.LabelledData:
    make = synth.labelled_contacts if kind == "contact" else synth.labelled_customers
    return make(size, seed=seed)


def baseline_name(record: dict[str, str], kind: str) -> str:
    if kind == "contact":
        return f"{record['first_name']} {record['last_name']}".strip()
    return record["company_name"].strip()


def baseline(data: synth.LabelledData, kind: str) -> tuple[list[tuple[str, str]], int]:
    """The plain rapidfuzz blocking script: returns (pairs, comparisons)."""
    blocks: dict[str, list[int]] = defaultdict(list)
    names = [baseline_name(r, kind) for r in data.records]
    for i, record in enumerate(data.records):
        if kind == "contact":
            key = record["last_name"].strip()[:1].lower() + record["first_name"].strip()[:1].lower()
        else:
            key = names[i][:2].lower()
        blocks[key].append(i)
    ids = [r["id"] for r in data.records]
    pairs: list[tuple[str, str]] = []
    compared = 0
    for members in blocks.values():
        if len(members) < 2:
            continue
        block_names = [names[i] for i in members]
        compared += len(members) * (len(members) - 1) // 2
        for start in range(0, len(members), _ROWS):
            scores = cdist(
                block_names[start : start + _ROWS],
                block_names,
                scorer=fuzz.token_sort_ratio,
                score_cutoff=BASELINE_THRESHOLD,
                dtype=np.uint8,
                workers=-1,
            )
            rows, cols = np.nonzero(scores)
            rows = rows + start
            keep = rows < cols
            pairs.extend(
                (ids[members[a]], ids[members[b]])
                for a, b in zip(rows[keep].tolist(), cols[keep].tolist(), strict=True)
            )
    return pairs, compared


def calibrate(data: synth.LabelledData, kind: str) -> None:
    """Fit comparison-level weights by logistic regression and print them."""
    from customerkit.matching.api import _id_rank
    from customerkit.matching.blocking import candidate_pairs, rules_for
    from customerkit.matching.normalize import normalize_columns
    from customerkit.matching.score import build_features, compare
    from customerkit.matching.table import read_records

    config = MatchConfig()
    table = read_records(data.records, kind=kind, scope=None)  # type: ignore[arg-type]
    norm = normalize_columns(kind, table.columns)
    left, right = candidate_pairs(
        rules_for(kind), norm, None, _id_rank(table.ids), cap=config.block_cap, window=config.window
    )
    comparison = compare(build_features(kind, norm), left, right, config)
    entity = np.array([data.truth[i] for i in table.ids])
    y = (entity[left] == entity[right]).astype(float)
    columns, names = [np.ones(left.size)], ["bias"]
    for field, levels in comparison.levels.items():
        if field == "swapped":
            continue
        for level in range(1, int(levels.max(initial=0)) + 1):
            columns.append((levels == level).astype(float))
            names.append(f"{field}[{level}]")
    if kind == "contact":
        columns.append(comparison.similarity["rarity"].astype(float))
        names.append("name_rarity")
    x = np.stack(columns, 1)
    w = np.zeros(x.shape[1])
    ridge = np.r_[0.0, np.ones(w.size - 1)]
    for _ in range(50):  # Newton steps with a small ridge penalty
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - y) + ridge * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(ridge)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    print(f"{left.size} candidate pairs, {int(y.sum())} true")
    for name, weight in zip(names, w, strict=True):
        print(f"  {name:14s} {weight:7.2f}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    data = generate(args.kind, args.size, args.seed)
    generated = time.perf_counter() - start
    print(f"generated {args.size} {args.kind}s in {generated:.1f}s")
    if args.calibrate:
        calibrate(data, args.kind)
        return {}
    before = rss_mib()
    load = os.getloadavg()[0]
    cpu = cpu_seconds()
    start = time.perf_counter()
    report = find_duplicates(data.records, kind=args.kind, scope=args.scope)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    peak = peak_rss_mib()
    score = data.evaluate(report.pairs)
    groups = data.evaluate_groups(group.ids for group in report.groups)
    ours = {
        "wall": wall,
        "cpu": cpu,
        "load": (load + os.getloadavg()[0]) / 2,
        "rss_before": before,
        "peak": peak,
        "compared": report.compared,
        "pairs": len(report.pairs),
        "groups": len(report.groups),
        "precision": score.precision,
        "recall": score.recall,
        "f1": score.f1,
        "group_precision": groups.precision,
        "group_recall": groups.recall,
    }
    print(
        f"customerkit: {wall:.1f}s (CPU {cpu:.1f}s), peak RSS {peak:.0f} MiB "
        f"(data {before:.0f} MiB), "
        f"{report.compared} compared, {len(report.pairs)} pairs, P {score.precision:.4f} "
        f"R {score.recall:.4f} F1 {score.f1:.4f}; groups P {groups.precision:.4f} "
        f"R {groups.recall:.4f}"
    )
    result: dict[str, Any] = {"ours": ours}
    if not args.no_baseline:
        del report
        cpu = cpu_seconds()
        start = time.perf_counter()
        pairs, compared = baseline(data, args.kind)
        base_wall = time.perf_counter() - start
        base_cpu = cpu_seconds() - cpu
        base = data.evaluate(pairs)
        result["baseline"] = {
            "wall": base_wall,
            "cpu": base_cpu,
            "peak": peak_rss_mib(),
            "compared": compared,
            "precision": base.precision,
            "recall": base.recall,
            "f1": base.f1,
        }
        print(
            f"baseline:    {base_wall:.1f}s, {compared} compared, {len(pairs)} pairs, "
            f"P {base.precision:.4f} R {base.recall:.4f} F1 {base.f1:.4f}; "
            f"speed-up x{base_wall / wall:.1f}"
        )
    return result


def append_results(args: argparse.Namespace, result: dict[str, Any]) -> None:
    ours = result["ours"]
    scope = f", scope={args.scope}" if args.scope else ", global"
    lines = [
        "",
        f"### find_duplicates, {args.size:,} {args.kind}s{scope} "
        f"({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}; Python {platform.python_version()}; seed {args.seed}; "
        f"load average during the run {ours['load']:.1f} (other work shares the cores).",
        "",
        "| run | wall s | CPU s | peak RSS MiB | pairs compared | precision | recall | F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| customerkit | {ours['wall']:.1f} | {ours['cpu']:.1f} "
        f"| {ours['peak']:.0f} (data {ours['rss_before']:.0f}) "
        f"| {ours['compared']:,} | {ours['precision']:.4f} | {ours['recall']:.4f} "
        f"| {ours['f1']:.4f} |",
    ]
    base = result.get("baseline")
    if base:
        lines.append(
            f"| rapidfuzz blocking baseline | {base['wall']:.1f} | {base['cpu']:.1f} "
            f"| {base['peak']:.0f} "
            f"| {base['compared']:,} | {base['precision']:.4f} | {base['recall']:.4f} "
            f"| {base['f1']:.4f} |"
        )
        lines += ["", f"Speed-up over the baseline: x{base['wall'] / ours['wall']:.1f}."]
    lines.append(
        f"Groups: precision {ours['group_precision']:.4f}, recall {ours['group_recall']:.4f}."
    )
    if not RESULTS.exists():
        lines.insert(0, "# Benchmark results")
    with RESULTS.open("a", encoding="utf-8") as out:  # append only: other benchmarks write here too
        out.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--kind", choices=("contact", "customer"), default="contact")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--scope", default=None, help="e.g. customer_id (default: global)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if result and not args.no_append:
        append_results(args, result)


if __name__ == "__main__":
    main()
