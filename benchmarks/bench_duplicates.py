"""Benchmark: find duplicates among labelled synthetic contacts or customers (SPEC §6, M1-M5).

Generates labelled data with :mod:`customerkit.synth` and measures, on exactly the same records,
the wall time, CPU time, peak RSS, pairs compared, pairs found and pairwise precision, recall
and F1 (against the truth) of three runs, each in its own freshly spawned process so that peak
memory is per run:

* ``customerkit``: :func:`find_duplicates` with its defaults;
* ``rapidfuzz``: a plain rapidfuzz blocking script (block on the first letters of the names,
  ``token_sort_ratio`` of full names over each block, keep pairs at or above 90);
* ``splink``: Splink 5 with the DuckDB backend (optional, ``pip install splink``): comparable
  comparisons on the same normalised keys customerkit uses (names with Jaro-Winkler levels,
  email, phone; company, address, postal code, city, customer number), blocking rules close to
  customerkit's (same email, same phone, same or same-sounding names, swapped names; company
  words, postal code and company prefix), u by random sampling, m by expectation
  maximisation, pairs predicted at match probability 0.5 (customerkit's threshold) and
  clustered at the same threshold.

Each process generates the data itself (seeded, so identical), then times only the matching.
Results are appended to ``benchmarks/RESULTS.md`` and ``benchmarks/results.json``.

    python benchmarks/bench_duplicates.py --size 100000 --kind contact
    python benchmarks/bench_duplicates.py --size 1000000 --kind customer --methods splink
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import multiprocessing as mp
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import jellyfish
import numpy as np
from _common import append_section, figure, load_average, load_text, peak_rss_mib, rss_mib
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from customerkit import synth
from customerkit.matching import find_duplicates

METHODS = ("customerkit", "rapidfuzz", "splink")
LABELS = {
    "customerkit": "customerkit",
    "rapidfuzz": "rapidfuzz blocking baseline",
    "splink": "Splink 5 (DuckDB)",
}
BASELINE_THRESHOLD = 90
SPLINK_THRESHOLD = 0.5  # customerkit's default threshold, as a match probability
SPLINK_SWEEP = (0.9, 0.99, 0.999)  # also reported, so Splink is judged at its best threshold
_ROWS = 2048  # baseline: rows of a block compared at a time (bounds the score matrix)

Result = dict[str, Any]


def cpu_seconds() -> float:
    """User plus system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


# --- Splink ------------------------------------------------------------------------------------


def splink_missing() -> str | None:
    """Why Splink cannot run here, or None."""
    if importlib.util.find_spec("splink") is None or importlib.util.find_spec("duckdb") is None:
        return "not installed: pip install splink"
    return None


def _metaphone(value: str) -> str:
    return str(jellyfish.metaphone(value.replace(" ", ""))) if value else ""


def splink_columns(data: synth.LabelledData, kind: str, scope: str | None) -> dict[str, list[Any]]:
    """The input table: customerkit's normalised keys (so both compare the same values)."""
    from customerkit.matching.normalize import normalize_columns
    from customerkit.matching.table import read_records

    table = read_records(data.records, kind=kind, scope=None)  # type: ignore[arg-type]
    norm = normalize_columns(kind, table.columns)
    columns: dict[str, list[Any]] = {"unique_id": list(table.ids)}
    if kind == "contact":
        columns |= {"given": norm["given"], "last": norm["last"]}
        # DuckDB has no phonetic function: Splink's docs derive such columns before loading.
        columns["given_meta"] = [_metaphone(v) for v in norm["given"]]
        columns["last_meta"] = [_metaphone(v) for v in norm["last"]]
        columns |= {"email": norm["email"], "phone": norm["phone"]}
    else:
        columns |= {key: norm[key] for key in ("company", "number", "address", "postal", "city")}
        columns["company_words"] = [" ".join(sorted(v.split())) for v in norm["company"]]
        columns |= {"email": norm["email"], "phone": norm["phone"]}
    if scope:
        columns["scope"] = [record.get(scope, "") for record in data.records]
    return {
        name: values if name == "unique_id" else [value or None for value in values]
        for name, values in columns.items()
    }


def splink_model(kind: str, scope: str | None) -> tuple[Any, list[Any], list[Any]]:
    """(settings, deterministic rules for the prior, EM training rules) for ``kind``."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    def rule(*columns: str) -> Any:
        return block_on(*(("scope",) if scope else ()), *columns)

    if kind == "contact":
        swapped = "l.given = r.last and l.last = r.given" + (" and l.scope = r.scope" * bool(scope))
        rules = [
            rule("email"),
            rule("phone"),
            rule("last", "given"),
            rule("last_meta", "given_meta"),
            swapped,
        ]
        # ExactMatch on emails: EmailComparison's username levels score namesakes' emails
        # (jane.doe@a, jane.doe2@b) as evidence, which cut its F1 to 0.49 at 10^5.
        comparisons: list[Any] = [
            cl.NameComparison("given"),
            cl.NameComparison("last"),
            cl.ExactMatch("email"),
            cl.ExactMatch("phone"),
        ]
        prior, training = rules[:2], [rule("last", "given"), rule("email")]
    else:
        rules = [
            rule("number"),
            rule("phone"),
            rule("email"),
            rule("company_words"),
            rule("postal", "substr(company, 1, 4)"),
        ]
        comparisons = [
            cl.JaroWinklerAtThresholds("company", [0.95, 0.88, 0.7]),
            cl.ExactMatch("number"),
            cl.JaroWinklerAtThresholds("address", [0.95, 0.88]),
            cl.ExactMatch("postal"),
            cl.ExactMatch("city"),
            cl.ExactMatch("email"),
            cl.ExactMatch("phone"),
        ]
        prior, training = rules[:3], [rule("company_words"), rules[4]]
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=rules,
        comparisons=comparisons,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    return settings, prior, training


def run_splink(data: synth.LabelledData, kind: str, scope: str | None) -> Result:
    """Train, predict and cluster with Splink; returns pairs, groups and step times."""
    import pyarrow as pa
    from splink import DuckDBAPI, Linker

    steps: dict[str, float] = {}
    start = time.perf_counter()
    columns = splink_columns(data, kind, scope)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    del columns
    db_api = DuckDBAPI()
    frame = db_api.register(table, dataset_display_name=f"{kind}s")
    steps["prepare"] = time.perf_counter() - start

    settings, prior, training = splink_model(kind, scope)
    linker = Linker(frame, settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(prior, recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    for rule in training:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    steps["train"] = time.perf_counter() - start - sum(steps.values())

    predictions = linker.inference.predict(threshold_match_probability=SPLINK_THRESHOLD)
    steps["predict"] = time.perf_counter() - start - sum(steps.values())
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=SPLINK_THRESHOLD
    )
    steps["cluster"] = time.perf_counter() - start - sum(steps.values())

    scored = predictions.as_duckdbpyrelation().select("unique_id_l, unique_id_r, match_probability")
    pairs = scored.fetchall()
    grouped = clusters.as_duckdbpyrelation().query(
        "clusters", "select list(unique_id) from clusters group by cluster_id having count(*) > 1"
    )
    assert grouped is not None  # a SELECT always gives a relation
    groups = grouped.fetchall()
    steps["fetch"] = time.perf_counter() - start - sum(steps.values())
    return {
        "pairs": [(left, right) for left, right, _ in pairs],
        "scored": pairs,
        "groups": [ids for (ids,) in groups],
        "steps": steps,
        "count": lambda: splink_compared(frame, settings),
    }


def splink_compared(frame: Any, settings: Any) -> int:
    """Pairs Splink scores: its exact count of the blocked pairs (run after the timing)."""
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    rules = settings.blocking_rules_to_generate_predictions
    counts = count_comparisons_from_blocking_rules(
        frame, blocking_rules=rules, link_type="dedupe_only", record_sample_proportion=1.0
    )
    return int(counts[-1]["cumulative_comparison_count"])


# --- one run per process -------------------------------------------------------------------


def measure(method: str, kind: str, size: int, seed: int, scope: str | None) -> Result:
    """Generate the data, run one method and measure it (called in a fresh process)."""
    data = generate(kind, size, seed)
    data_mib = rss_mib()
    load_before = load_average()
    cpu = cpu_seconds()
    start = time.perf_counter()
    extra: Result = {}
    count: Callable[[], int] | None = None
    if method == "customerkit":
        report = find_duplicates(data.records, kind=kind, scope=scope)  # type: ignore[arg-type]
        pairs: Sequence[tuple[str, str]] = [(p.left_id, p.right_id) for p in report.pairs]
        groups: Sequence[Sequence[str]] | None = [group.ids for group in report.groups]
        compared = report.compared
    elif method == "rapidfuzz":
        pairs, compared = baseline(data, kind)
        groups = None
    else:
        run = run_splink(data, kind, scope)
        pairs, groups, count = run["pairs"], run["groups"], run["count"]
        extra["steps"] = {step: round(seconds, 2) for step, seconds in run["steps"].items()}
        extra["sweep"] = {
            str(threshold): data.evaluate(
                [(a, b) for a, b, p in run["scored"] if p >= threshold]
            ).f1
            for threshold in SPLINK_SWEEP
        }
        compared = -1
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    peak = peak_rss_mib()
    load_after = load_average()
    if count is not None:
        compared = count()  # after the peak was read: counting is not part of the run
    score = data.evaluate(pairs)
    result: Result = {
        "method": method,
        "wall": wall,
        "cpu": cpu,
        "peak": peak,
        "data": data_mib,
        "load": [(a + b) / 2 for a, b in zip(load_before, load_after, strict=True)],
        "compared": compared,
        "pairs": len(pairs),
        "precision": score.precision,
        "recall": score.recall,
        "f1": score.f1,
        **extra,
    }
    if groups is not None:
        grouped = data.evaluate_groups(groups)
        result |= {
            "groups": len(groups),
            "group_precision": grouped.precision,
            "group_recall": grouped.recall,
        }
    return result


def _child(send: Any, *args: Any) -> None:
    try:
        send.send(measure(*args))
    except Exception as error:  # report it to the parent instead of a bare exit code
        send.send({"method": args[0], "failed": f"{type(error).__name__}: {error}"})


def isolated(method: str, args: argparse.Namespace) -> Result:
    """Run :func:`measure` in a spawned process: its own peak memory, killed after a timeout."""
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(send, method, args.kind, args.size, args.seed, args.scope)
    )
    start = time.perf_counter()
    child.start()
    send.close()
    result: Result | None = None
    try:
        if receive.poll(args.timeout):
            result = receive.recv()
    except EOFError:  # the child died without a word (out of memory?)
        pass
    if result is None and child.is_alive():
        child.kill()
        result = {"method": method, "failed": f"stopped after {args.timeout:.0f} s (--timeout)"}
    child.join()
    if result is None:
        code = child.exitcode or 0
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        elapsed = time.perf_counter() - start
        result = {"method": method, "failed": f"{why} after {elapsed:.0f} s (out of memory?)"}
    return result


def describe(result: Result) -> str:
    label = LABELS[result["method"]]
    if "failed" in result or "skipped" in result:
        return f"{label}: {result.get('failed') or result.get('skipped')}"
    compared = f"{result['compared']:,}" if result["compared"] >= 0 else "?"
    text = (
        f"{label}: {result['wall']:.1f} s (CPU {result['cpu']:.1f} s), peak RSS "
        f"{result['peak']:.0f} MiB (data {result['data']:.0f}), {compared} compared, "
        f"{result['pairs']:,} pairs, P {result['precision']:.4f} R {result['recall']:.4f} "
        f"F1 {result['f1']:.4f}; {load_text(result['load'])}"
    )
    if "steps" in result:
        text += "; steps " + ", ".join(f"{k} {v:.1f} s" for k, v in result["steps"].items())
    return text


def section(args: argparse.Namespace, results: list[Result]) -> tuple[str, list[str], list[Any]]:
    scope = f", scope={args.scope}" if args.scope else ", global"
    title = f"Duplicates, {args.size:,} {args.kind}s{scope}"
    lines = [
        f"Command: `python benchmarks/bench_duplicates.py --size {args.size} --kind {args.kind}"
        + (f" --scope {args.scope}" if args.scope else "")
        + f"` (seed {args.seed}); each run in its own process, which generates the same data;"
        " peak RSS includes that data (shown apart).",
        "",
        "| run | wall s | CPU s | peak RSS MiB (data) | pairs compared | pairs found "
        "| precision | recall | F1 | groups P / R | load avg |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    figures = []
    panel = f"{args.kind}s" + (f", scope={args.scope}" if args.scope else "")
    ours = next((r for r in results if r["method"] == "customerkit" and "wall" in r), None)
    notes = []
    for result in results:
        label = LABELS[result["method"]]
        if "wall" not in result:
            lines.append(
                f"| {label} | {result.get('failed') or result.get('skipped')} | | | | | | | | | |"
            )
            continue
        groups = (
            f"{result['group_precision']:.4f} / {result['group_recall']:.4f}"
            if "groups" in result
            else "-"
        )
        compared = f"{result['compared']:,}" if result["compared"] >= 0 else "?"
        lines.append(
            f"| {label} | {result['wall']:.1f} | {result['cpu']:.1f} "
            f"| {result['peak']:,.0f} ({result['data']:,.0f}) | {compared} "
            f"| {result['pairs']:,} | {result['precision']:.4f} | {result['recall']:.4f} "
            f"| {result['f1']:.4f} | {groups} | {result['load'][0]:.1f} |"
        )
        measures = {
            key: result[key]
            for key in ("cpu", "peak", "data", "compared", "pairs", "precision", "recall", "f1")
        }
        figures.append(
            figure(
                "duplicates",
                panel,
                label,
                size=args.size,
                value=result["wall"],
                unit="s",
                **measures,
                **{k: result[k] for k in ("steps", "sweep") if k in result},
            )
        )
        if "steps" in result:
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in result["steps"].items())
            sweep = ", ".join(f"{float(k):g}: {v:.4f}" for k, v in result["sweep"].items())
            notes.append(
                f"Splink steps: {steps}; its F1 at other match-probability thresholds: {sweep}."
            )
        if ours and result is not ours:
            notes.append(
                f"{label} vs customerkit: {result['wall'] / ours['wall']:.1f}x the wall time, "
                f"{result['peak'] / ours['peak']:.2f}x the peak RSS, "
                f"F1 {result['f1'] - ours['f1']:+.4f}."
            )
    return title, [*lines, "", *notes], figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--kind", choices=("contact", "customer", "both"), default="both")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--scope", default=None, help="e.g. customer_id (default: global)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--no-baseline", action="store_true", help="customerkit only")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--no-append", action="store_true", help="do not write the results")
    args = parser.parse_args()
    methods = ["customerkit"] if args.no_baseline else args.methods.split(",")
    kinds = ("contact", "customer") if args.kind == "both" else (args.kind,)
    for kind in kinds:
        args.kind = kind
        results = []
        for method in methods:
            missing = splink_missing() if method == "splink" else None
            print(f"{kind}s, {args.size:,}: {method} ({load_text()}) ...", flush=True)
            result = {"method": method, "skipped": missing} if missing else isolated(method, args)
            print("  " + describe(result), flush=True)
            results.append(result)
        if not args.no_append:
            title, lines, figures = section(args, results)
            append_section(title, lines, figures=figures)


if __name__ == "__main__":
    main()
