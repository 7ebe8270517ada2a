"""What duplicate matching returns: pairs, groups and similar records (rules M1, M2, M6).

A ``DuplicateReport`` is a value: its pairs are sorted by score (best first) then ids, its
groups by main id, so the same records always give the same report whatever their order. It
converts to records, to a pandas DataFrame (``customerkit[pandas]``) and shows itself in a
notebook as groups side by side with the differing fields highlighted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from customerkit.matching import review
from customerkit.matching.config import MatchConfig

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DuplicateGroup",
    "DuplicatePair",
    "DuplicateReport",
    "Evaluation",
    "Evidence",
    "Quality",
    "SimilarMatch",
    "describe",
    "evaluate",
]

_HTML_GROUPS = 200  # a notebook shows the least certain groups; to_html() shows them all


def _score(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{attribute.name} must be between 0 and 1, not {value!r}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class Evidence:
    """What one comparison of a pair found, and what it weighed.

    Attributes:
        field: The field compared (``"last_name"``, ``"postal_code"``, an extra column), or
            ``"name"`` for the adjustment by how common a shared name is.
        level: The level the pair landed in: ``"same"``, ``"close"``, ``"different"``, ...
        weight: Its weight in bits (log2 of the Bayes factor): positive for evidence of a
            duplicate, negative against.
    """

    field: str
    level: str
    weight: float


@attrs.frozen(kw_only=True)
class DuplicatePair:
    """Two records that are probably the same.

    Attributes:
        left_id: The smaller id of the two.
        right_id: The larger id.
        score: The match probability, in [0, 1].
        reasons: What made them match ("same email", "names similar 0.93", ...).
        match_weight: The evidence in bits: the prior's log-odds plus every comparison's
            weight (``score = 2^w / (1 + 2^w)``), unrounded.
        comparisons: Per field compared (blank fields are not), its level and weight.
    """

    left_id: str
    right_id: str
    score: float = attrs.field(validator=_score)
    reasons: tuple[str, ...] = ()
    match_weight: float = attrs.field(default=0.0, eq=False)
    comparisons: tuple[Evidence, ...] = attrs.field(default=(), eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.left_id < self.right_id:
            msg = "left_id must sort before right_id"
            raise ValueError(msg)


@attrs.frozen(kw_only=True)
class DuplicateGroup:  # rule M2
    """Records that are probably all the same, with the one proposed to keep.

    Attributes:
        ids: The members, sorted.
        main_id: The proposed main record (merge the others into it).
        reasons: Why this main was chosen, then the kinds of links that joined the group.
    """

    ids: tuple[str, ...]
    main_id: str
    reasons: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class SimilarMatch:  # rule M6
    """A record similar to a new one.

    Attributes:
        record: The existing record, as it was given to the index.
        score: How likely the two are the same, in [0, 1].
        reasons: What made them match.
    """

    record: Any
    score: float = attrs.field(validator=_score)
    reasons: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DuplicateReport:
    """The duplicates found among records.

    Attributes:
        pairs: Pairs scoring at least the threshold, best first (then by ids).
        groups: Groups of two or more records, by main id.
        compared: How many candidate pairs blocking proposed and the scorer compared.
        kind: ``"contact"`` or ``"customer"``.
        fields: The compared fields shown beside each pair.
        values: Record id -> field -> value, for the records in ``pairs`` (not compared).
    """

    pairs: tuple[DuplicatePair, ...] = attrs.field(repr=lambda pairs: f"<{len(pairs)} pairs>")
    groups: tuple[DuplicateGroup, ...] = attrs.field(repr=lambda groups: f"<{len(groups)} groups>")
    compared: int
    kind: str = "contact"
    fields: tuple[str, ...] = ()
    values: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, eq=False, repr=False)
    config: MatchConfig | None = attrs.field(default=None, eq=False, repr=False)
    originals: Mapping[str, object] | None = attrs.field(default=None, eq=False, repr=False)

    def _original(self, record_id: str) -> object:
        """A record's id as it was given (an int stays an int), for DataFrames."""
        return record_id if self.originals is None else self.originals.get(record_id, record_id)

    def explain(self, left_id: str, right_id: str) -> tuple[Evidence, ...]:
        """The per-field evidence of a reported pair (either order of ids).

        Raises:
            KeyError: The pair is not in the report.
        """
        wanted = (min(left_id, right_id), max(left_id, right_id))
        for pair in self.pairs:
            if (pair.left_id, pair.right_id) == wanted:
                return pair.comparisons
        raise KeyError(wanted)

    def evaluate(self, truth: Iterable[tuple[str, str]]) -> Evaluation:
        """Precision, recall and F1 against known duplicate pairs, and by threshold.

        Args:
            truth: The pairs of ids that are duplicates (either order). Ids are compared as
                the report's ids (text).

        Returns:
            Figures over pairs, over groups (pairs of records put in one group), and a
            precision-recall table by threshold.
        """
        return evaluate(self, truth)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per pair: ids, score, reasons, match weight, evidence, then each side's fields.

        The fields come as ``left_<field>`` and ``right_<field>``.

        Returns:
            The pairs as plain dicts, in report order.
        """
        empty: Mapping[str, str] = {}
        out = []
        for pair in self.pairs:
            row: dict[str, Any] = {
                "left_id": pair.left_id,
                "right_id": pair.right_id,
                "score": pair.score,
                "reasons": pair.reasons,
                "match_weight": pair.match_weight,
                "evidence": describe(pair.comparisons),
            }
            for side, record_id in (("left", pair.left_id), ("right", pair.right_id)):
                values = self.values.get(record_id, empty)
                for field in self.fields:
                    row[f"{side}_{field}"] = values.get(field, "")
            out.append(row)
        return out

    def to_pandas(self) -> pd.DataFrame:
        """The pairs as a DataFrame (columns as ``to_records``); needs ``customerkit[pandas]``.

        Ids keep the type they were given in (a DataFrame's index labels when it had no ``id``
        column); a blank value is ``pandas.NA``.

        Returns:
            One row per pair.

        Raises:
            ImportError: pandas is not installed.
        """
        pandas = _pandas("to_pandas")
        columns = ["left_id", "right_id", "score", "reasons", "match_weight", "evidence"]
        columns += [f"{side}_{field}" for side in ("left", "right") for field in self.fields]
        rows = self.to_records()
        for row in rows:
            row["left_id"] = self._original(row["left_id"])
            row["right_id"] = self._original(row["right_id"])
        frame: pd.DataFrame = pandas.DataFrame(rows, columns=columns)
        values = [f"{side}_{field}" for side in ("left", "right") for field in self.fields]
        frame[values] = frame[values].astype("string").replace("", pandas.NA)
        return frame

    def to_arrow(self) -> Any:
        """The pairs as a ``pyarrow.Table`` (columns as ``to_records``); needs pyarrow."""
        try:
            import pyarrow as pa
        except ImportError as error:
            msg = "DuplicateReport.to_arrow() needs pyarrow: pip install pyarrow"
            raise ImportError(msg) from error
        return pa.Table.from_pylist(self._plain_records())

    def to_polars(self) -> Any:
        """The pairs as a ``polars.DataFrame`` (columns as ``to_records``); needs polars."""
        try:
            import polars as pl
        except ImportError as error:
            msg = "DuplicateReport.to_polars() needs polars: pip install polars"
            raise ImportError(msg) from error
        return pl.DataFrame(self._plain_records())

    def _plain_records(self) -> list[dict[str, Any]]:
        """Records with reasons as one text and blanks as None, for columnar libraries."""
        rows = self.to_records()
        for row in rows:
            row["reasons"] = "; ".join(row["reasons"])
            for key, value in row.items():
                if value == "":
                    row[key] = None
        return rows

    def clusters_to_pandas(self) -> pd.DataFrame:
        """One row per grouped record: ``id``, ``cluster`` (its main's id), ``is_main``, ``size``.

        Join it to your records on ``id`` to label every duplicate with the record to keep.

        Raises:
            ImportError: pandas is not installed.
        """
        pandas = _pandas("clusters_to_pandas")
        rows = [
            {
                "id": self._original(record_id),
                "cluster": self._original(group.main_id),
                "is_main": record_id == group.main_id,
                "size": len(group.ids),
            }
            for group in self.groups
            for record_id in group.ids
        ]
        clusters: pd.DataFrame = pandas.DataFrame(
            rows, columns=["id", "cluster", "is_main", "size"]
        )
        return clusters

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as one self-contained HTML page a person can work through.

        Every group is a collapsible section, the least certain first, with its records side
        by side, each pair's score and per-field evidence, and the differences the matcher saw
        highlighted; it reads in light and dark themes and needs no server.

        Args:
            path: Also write the page to this file (UTF-8).

        Returns:
            The page.
        """
        page = review.render(self, document=True)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def _repr_html_(self) -> str:
        return review.render(self, limit=_HTML_GROUPS)


def _pandas(method: str) -> Any:
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - exercised only without pandas
        msg = f"DuplicateReport.{method}() needs pandas: pip install 'customerkit[pandas]'"
        raise ImportError(msg) from error
    return pd


def describe(evidence: Sequence[Evidence]) -> str:
    """Evidence in words: ``"last_name same +8.1, postal_code different -3.3"``."""
    return ", ".join(f"{e.field} {e.level} {e.weight:+.1f}" for e in evidence)


@attrs.frozen(kw_only=True)
class Quality:
    """Precision, recall and F1 of some found pairs against the true ones.

    Attributes:
        precision: Share of the found pairs that are true.
        recall: Share of the true pairs that were found.
        f1: Their harmonic mean.
        found: Pairs found.
        true: True pairs.
        correct: Pairs found that are true.
    """

    precision: float
    recall: float
    f1: float
    found: int
    true: int
    correct: int

    @classmethod
    def of(cls, found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> Quality:
        """The quality of ``found`` against ``truth``."""
        correct = len(found & truth)
        precision = correct / len(found) if found else 1.0
        recall = correct / len(truth) if truth else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(
            precision=precision,
            recall=recall,
            f1=f1,
            found=len(found),
            true=len(truth),
            correct=correct,
        )


@attrs.frozen(kw_only=True)
class Evaluation:
    """A report measured against known duplicates.

    Attributes:
        pairs: The reported pairs.
        groups: Every pair of records the groups put together.
        by_threshold: ``(threshold, quality of the pairs scoring at least it)``, for
            thresholds from the report's own upwards.
    """

    pairs: Quality
    groups: Quality
    by_threshold: tuple[tuple[float, Quality], ...]


def _ordered(pairs: Iterable[tuple[object, object]]) -> set[tuple[str, str]]:
    out = set()
    for a, b in pairs:
        left, right = str(a), str(b)
        out.add((left, right) if left < right else (right, left))
    return out


def evaluate(report: DuplicateReport, truth: Iterable[tuple[object, object]]) -> Evaluation:
    """Measure ``report`` against the true duplicate pairs (see ``DuplicateReport.evaluate``)."""
    true = _ordered(truth)
    found = {(pair.left_id, pair.right_id) for pair in report.pairs}
    grouped = _ordered(pair for group in report.groups for pair in combinations(group.ids, 2))
    lowest = report.config.threshold if report.config is not None else 0.0
    steps = sorted({lowest, *(t for t in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999) if t > lowest)})
    table = tuple(
        (
            step,
            Quality.of({(p.left_id, p.right_id) for p in report.pairs if p.score >= step}, true),
        )
        for step in steps
    )
    return Evaluation(
        pairs=Quality.of(found, true), groups=Quality.of(grouped, true), by_threshold=table
    )
