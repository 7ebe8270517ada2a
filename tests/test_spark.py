"""The Spark matcher gives find_duplicates' pairs, scores and groups (issue 18, rules M1, M2).

Spark runs locally (``local[2]``, four shuffle partitions, no UI). With CI=true a missing Java
or pyspark fails these tests instead of skipping them (``.ci/run`` installs Java).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from customerkit import synth
from customerkit.errors import MatchingError
from customerkit.matching import DuplicateReport, MatchConfig, find_duplicates
from customerkit.testing.postgres import in_ci

# Starting Spark and its jobs takes minutes on two cores: out of the quick loop, in CI.
pytestmark = pytest.mark.slow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TOLERANCE = 1e-9


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI must run the Spark matcher: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole run (starting the JVM takes seconds)."""
    if shutil.which("java") is None:
        _unavailable("no Java here (CI installs default-jre-headless)")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        _unavailable("pyspark is not installed: pip install 'customerkit[spark]'")
    # The workers run this interpreter, whose environment has customerkit's dependencies.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("customerkit-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _frame(spark: SparkSession, records: list[dict[str, str]]) -> Any:
    import pandas as pd

    return spark.createDataFrame(pd.DataFrame(records))


def _in_process(
    records: list[dict[str, str]], kind: str, config: MatchConfig | None = None
) -> DuplicateReport:
    # Estimation draws its random pairs over record positions; on Spark positions are id order.
    ordered = sorted(records, key=lambda r: r["id"])
    return find_duplicates(ordered, kind=kind, config=config)  # type: ignore[arg-type]


#: Tiny blocks: most blocks are oversized and paired by sorted neighbourhood.
WINDOWED = MatchConfig(block_cap=3, window=3)


@pytest.mark.parametrize(
    ("kind", "size", "seed", "config"),
    [("contact", 800, 7, None), ("customer", 700, 11, None), ("contact", 600, 5, WINDOWED)],
)
def test_spark_gives_the_in_process_pairs_scores_and_groups(
    spark: SparkSession, kind: str, size: int, seed: int, config: MatchConfig | None
) -> None:
    from customerkit.spark import find_duplicates_spark

    make = synth.labelled_contacts if kind == "contact" else synth.labelled_customers
    data = make(size, seed=seed)
    expected = _in_process(data.records, kind, config)
    frame = _frame(spark, data.records)
    report = find_duplicates_spark(frame, kind=kind, config=config)  # type: ignore[arg-type]

    # Estimation ran on both sides and found the same model.
    assert expected.config is not None
    fitted, ours = expected.config.parameters, report.parameters
    assert fitted is not None
    assert ours.records == fitted.records == size
    assert ours.prior == pytest.approx(fitted.prior, abs=TOLERANCE)
    for name in fitted.m:
        assert ours.m[name] == pytest.approx(fitted.m[name], abs=TOLERANCE)
        assert ours.u[name] == pytest.approx(fitted.u[name], abs=TOLERANCE)
    assert report.compared == expected.compared
    assert report.fields == expected.fields

    pairs = report.pairs.toPandas()
    assert len(expected.pairs) > size // 10  # there are duplicates to find
    assert list(zip(pairs["left_id"], pairs["right_id"], strict=True)) == [
        (p.left_id, p.right_id) for p in expected.pairs
    ]
    assert pairs["score"].tolist() == pytest.approx(
        [p.score for p in expected.pairs], abs=TOLERANCE
    )
    assert pairs["match_weight"].tolist() == pytest.approx(
        [p.match_weight for p in expected.pairs], abs=TOLERANCE
    )
    assert [tuple(r) for r in pairs["reasons"]] == [p.reasons for p in expected.pairs]
    assert [[(e["field"], e["level"], e["weight"]) for e in row] for row in pairs["evidence"]] == [
        [(e.field, e.level, e.weight) for e in p.comparisons] for p in expected.pairs
    ]

    groups = report.groups.toPandas()
    assert len(expected.groups) > 0
    assert [
        (main, tuple(ids), tuple(why))
        for main, ids, why in zip(groups["main_id"], groups["ids"], groups["reasons"], strict=True)
    ] == [(g.main_id, g.ids, g.reasons) for g in expected.groups]


def test_spark_without_estimation_scores_with_the_given_parameters(spark: SparkSession) -> None:
    from customerkit.spark import find_duplicates_spark

    data = synth.labelled_contacts(200, seed=5)
    config = MatchConfig(estimate=False, threshold=0.3)
    expected = find_duplicates(data.records, kind="contact", config=config)
    report = find_duplicates_spark(_frame(spark, data.records), kind="contact", config=config)
    pairs = report.pairs.toPandas()
    assert report.parameters.records == 0
    assert list(zip(pairs["left_id"], pairs["right_id"], pairs["score"], strict=True)) == [
        (p.left_id, p.right_id, pytest.approx(p.score, abs=TOLERANCE)) for p in expected.pairs
    ]


def test_spark_components_label_each_node_with_its_smallest(spark: SparkSession) -> None:
    from customerkit.spark.components import connected_components

    # A long chain (several rounds), a pair, and a star whose centre is not the smallest.
    edges = [(k, k + 1) for k in range(10, 19)] + [(3, 4), (7, 30), (8, 30), (9, 30)]
    frame = spark.createDataFrame(edges, "a long, b long")
    found = {
        row["node"]: row["component"] for row in connected_components(frame, "a", "b").collect()
    }
    assert found == {
        **dict.fromkeys(range(10, 20), 10),
        3: 3,
        4: 3,
        **dict.fromkeys((7, 8, 9, 30), 7),
    }


def test_spark_records_need_unique_ids(spark: SparkSession) -> None:
    from customerkit.spark import find_duplicates_spark

    rows = [{"id": "1", "first_name": "Ann"}, {"id": "1", "first_name": "Bob"}]
    with pytest.raises(MatchingError) as repeated:
        find_duplicates_spark(_frame(spark, rows), kind="contact")
    assert repeated.value.field == "id"
    # Repeated within one batch of a Python worker too: the error is still ours, not Spark's.
    many = [{"id": "1", "first_name": name} for name in ("Ann", "Bob", "Cy", "Dee", "Eve")]
    with pytest.raises(MatchingError) as batched:
        find_duplicates_spark(_frame(spark, many).coalesce(1), kind="contact")
    assert batched.value.field == "id"
    without = spark.createDataFrame([("Ann",), ("Bob",)], "first_name string")
    with pytest.raises(MatchingError) as missing:
        find_duplicates_spark(without, kind="contact")
    assert missing.value.field == "id"


def test_importing_customerkit_spark_does_not_import_pyspark() -> None:
    code = (
        "import sys, customerkit, customerkit.spark\n"
        "assert 'pyspark' not in sys.modules, 'pyspark imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr


def test_spark_without_duplicates_gives_empty_frames(spark: SparkSession) -> None:
    from customerkit.spark import find_duplicates_spark

    rows = [
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"},
        {"id": "b", "first_name": "Bob", "last_name": "Stone", "email": "bob@y.com"},
        {"id": "c", "first_name": "Cy", "last_name": "Young", "email": "cy@z.com"},
    ]
    report = find_duplicates_spark(_frame(spark, rows), kind="contact")
    assert report.pairs.count() == 0
    assert report.groups.count() == 0
    assert report.parameters.records == 0  # too few records to estimate from


def test_spark_normalises_a_one_partition_frame_on_every_core(spark: SparkSession) -> None:
    from customerkit.spark.api import _over_every_core

    cores = spark.sparkContext.defaultParallelism
    assert _over_every_core(spark.range(100).coalesce(1)).rdd.getNumPartitions() == cores
    many = spark.range(100).repartition(cores + 1)
    assert _over_every_core(many).rdd.getNumPartitions() == cores + 1
