"""Finding duplicates among records, in one batch or one new record at a time.

Batch matching reads the records into columns, normalises each distinct value once, proposes
candidate pairs by blocking, compares them field by field, estimates the model's parameters
from the records themselves (when there are enough of them), scores every pair with its match
probability and joins the likely duplicates into groups.

>>> report = find_duplicates(
...     [
...         {"first_name": "Bob", "last_name": "Lee", "email": "BOB@x.com"},
...         {"first_name": "Robert", "last_name": "Lee", "email": "bob@x.com"},
...     ],
...     kind="contact",
... )
>>> report.pairs[0].reasons
('same email', 'nickname bob/robert', 'same last name')
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs
import numpy as np

from customerkit.errors import MatchingError
from customerkit.matching.batch import match_table
from customerkit.matching.comparisons import Model, level_sizes, starting_parameters
from customerkit.matching.config import MatchConfig
from customerkit.matching.estimate import em, fit_labelled, level_patterns
from customerkit.matching.index import MatchIndex
from customerkit.matching.prepare import (
    MatchProgress,
    levels_of_candidates,
    prepare,
    quiet,
    read_table,
)
from customerkit.matching.report import DuplicateReport, SimilarMatch
from customerkit.matching.score import compare, level_matrix
from customerkit.matching.table import Kind

__all__ = ["compared_pairs", "find_duplicates", "find_similar", "fit"]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector.

    Matching allocates millions of objects that hold no reference cycles; each automatic
    collection would walk all of them (and the caller's records) again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def find_duplicates(
    records: Iterable[object],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
    scope: str | None = None,
    dismissed: Iterable[tuple[str, str]] = (),
    progress: MatchProgress | None = None,
) -> DuplicateReport:
    """Find the duplicates among contacts or customers.

    Args:
        records: Mappings, attrs records (``Contact``, ``Customer``, ``NewContact``,
            ``NewCustomer``) or a pandas DataFrame whose columns are the model's field names
            (contacts may also have the customers' address fields). A record's id is its ``id``
            field as a string, else its position (``"0"``, ``"1"``, ...). None, NaN and
            ``pandas.NA`` mean missing. Columns the matcher does not know are named in an
            ``UnknownColumnsWarning``.
        kind: ``"contact"`` or ``"customer"``.
        config: Comparisons, parameters, threshold and blocking limits (defaults:
            ``MatchConfig``, which estimates the parameters from these records).
        region: Region assumed for phone numbers written without a country code.
        scope: A field that partitions the records, such as ``"customer_id"``: only records
            with the same value are compared (records without one are compared among
            themselves). None compares all records.
        dismissed: Pairs of ids marked "not a duplicate": never reported nor grouped.
        progress: Called as ``progress(stage, done, total)`` while the work goes on: stages
            "blocking", "comparing" (``done`` of ``total`` candidate pairs), "estimating",
            "scoring" and "grouping".

    Returns:
        Pairs whose match probability reaches the threshold, groups with a proposed main, the
        number of pairs compared, and the configuration (with the estimated parameters) that
        scores other records the same way.

    Raises:
        MatchingError: ``kind`` is unknown, two records have the same id, or ``records`` is
            not an iterable of records.
    """
    config = config or MatchConfig()
    with _collector_paused():
        table = read_table(records, kind, config, scope)
        return match_table(table, config, region, dismissed=dismissed, progress=progress)


def compared_pairs(
    records: Iterable[object],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
    scope: str | None = None,
) -> list[tuple[str, str]]:
    """The pairs of ids blocking proposes for comparison, smaller id first, sorted.

    For measuring blocking: a true duplicate pair missing here can never be found.
    """
    config = config or MatchConfig()
    table = read_table(records, kind, config, scope)
    prepared = prepare(table, config, region)
    ids = table.ids
    return sorted(
        (min(ids[a], ids[b]), max(ids[a], ids[b]))
        for a, b in zip(prepared.left.tolist(), prepared.right.tolist(), strict=True)
    )


def fit(
    records: Iterable[object],
    labelled: Iterable[tuple[str, str, bool]],
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
) -> MatchConfig:
    """A configuration whose parameters are fitted from pairs a person labelled.

    ``m`` comes from the pairs labelled duplicates, ``u`` from the others (label pairs the
    matcher compares, such as a report's, so that ``u`` describes compared pairs), and the share
    of duplicates among the records' compared pairs is estimated with both held.

    Args:
        records: The records the labelled pairs come from.
        labelled: ``(left_id, right_id, is_duplicate)`` triples; both kinds are needed.
        kind: ``"contact"`` or ``"customer"``.
        config: The settings to start from (comparisons, threshold, blocking).
        region: Default phone region.

    Returns:
        ``config`` with the fitted parameters and estimation switched off.

    Raises:
        MatchingError: An id is unknown, or the labels hold no duplicate or no non-duplicate.
    """
    config = config or MatchConfig()
    table = read_table(records, kind, config, None)
    position = {record_id: at for at, record_id in enumerate(table.ids)}
    triples = list(labelled)
    unknown = sorted({i for a, b, _ in triples for i in (a, b) if i not in position})
    if unknown:
        msg = f"labelled pairs name ids that are not among the records: {', '.join(unknown[:5])}"
        raise MatchingError(msg, field="labelled")
    is_match = np.array([bool(label) for _, _, label in triples], np.bool_)
    if is_match.all() or not is_match.any():
        msg = "label at least one pair as a duplicate and one as not a duplicate"
        raise MatchingError(msg, field="labelled")
    prepared = prepare(table, config, region)
    names = prepared.names
    model = Model.of(starting_parameters(kind, config), names)
    left = np.array([position[a] for a, _, _ in triples], np.int64)
    right = np.array([position[b] for _, b, _ in triples], np.int64)
    compared = compare(prepared.features, left, right, config, model)
    sizes = level_sizes(names, config)
    fitted = fit_labelled(level_matrix(compared, names), is_match, names, sizes, records=len(table))
    # The labelled share of duplicates says how the pairs were picked, not how many of the
    # compared pairs are duplicates: estimate that over the records' compared pairs.
    matrix = levels_of_candidates(prepared, config, model, quiet)
    if matrix.shape[0]:
        patterns, counts = level_patterns(matrix, sizes)
        fitted = em(
            patterns,
            counts,
            names,
            fitted,
            fitted.u,
            records=len(table),
            fixed_m=True,
            fixed_u=True,
        )
    return attrs.evolve(config, parameters=fitted, estimate=False)


def find_similar(
    candidate: object,
    index: MatchIndex,
    *,
    scope_value: str | None = None,
    limit: int | None = None,
) -> list[SimilarMatch]:
    """The indexed records similar to one new record, best first.

    Uses the index's blocking rules and scorer, so it finds every pair ``find_duplicates``
    would report for the candidate under the same parameters, with the same score.

    Args:
        candidate: A mapping or attrs record of the index's kind.
        index: The records to match against.
        scope_value: The candidate's scope (e.g. its customer id) when the index is scoped and
            the candidate does not carry it.
        limit: Return at most this many matches.

    Returns:
        Matches scoring at least the threshold, by score then id.
    """
    return index.find_similar(candidate, scope_value=scope_value, limit=limit)
