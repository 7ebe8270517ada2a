"""``find_duplicates_spark``: the batch matcher of ``customerkit.matching`` over a Spark DataFrame.

The steps are ``find_duplicates``' own, each done where the data is:

1. Records are read and normalised per partition (``mapInPandas``) by the in-process code;
   each record gets its position: its rank in id order.
2. Blocking keys are computed per record with the in-process rules. The members of every
   block of two or more are joined to their records and shuffled by block, a bucket of whole
   blocks to each Python call.
3. Each call pairs its blocks as in-process (a block within ``block_cap`` pairs all its
   members, a larger one each member with its ``window - 1`` followers in (order value, id)
   order), builds each member's features once and compares the pairs with the in-process
   vectorised scorer; each pair's level pattern is kept as one integer. A pair two buckets
   propose is kept once. (Joining both records to every candidate pair instead would build
   a record's features once per pair it is in.)
4. Estimation needs only counts per level pattern: Spark counts the candidates' patterns and
   the patterns of the random pairs (drawn over positions as in-process), and the driver runs
   the same EM on those counts.
5. A pair's weight under the estimated model depends on its pattern, whether the names agree
   and how common the left record's name is, and on nothing else: Spark counts the pairs of
   each such kind (the counts estimation reads), the driver weighs each kind once, and a
   broadcast join keeps the pairs of the kinds at the threshold. No record is joined to the
   pairs until then; only those kept are joined to their records and compared again for their
   reasons and evidence.
6. Groups: the kept pairs' connected components in Spark (``components``), then the
   in-process grouping per component, which never joins records of two components.

Only the counts of each kind of pair and a few sizes come back to the driver; pairs and groups
stay Spark DataFrames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from customerkit.errors import MatchingError
from customerkit.matching.comparisons import (
    Model,
    comparisons_of,
    level_sizes,
    starting_parameters,
)
from customerkit.matching.config import MatchConfig, Parameters
from customerkit.matching.estimate import (
    RANDOM_PAIRS,
    decode_patterns,
    estimate_parameters,
    frequencies,
    random_pairs,
)
from customerkit.matching.table import TIME_FIELDS, Kind, fields_of
from customerkit.spark import _batches
from customerkit.spark.components import connected_components

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkMatchReport", "find_duplicates_spark"]

PAIR_SCHEMA = (
    "left_pos long, right_pos long, left_id string, right_id string, score double, "
    "match_weight double, reasons array<string>, "
    "evidence array<struct<field: string, level: string, weight: double>>"
)
CODED_SCHEMA = "a long, b long, code long, a_count long, same_name boolean"
#: The columns a coded pair's weight depends on (``weigh_levels``).
_KIND = ("code", "same_name", "a_count")
GROUP_SCHEMA = "main_id string, ids array<string>, reasons array<string>"


@attrs.frozen(kw_only=True, eq=False)
class SparkMatchReport:
    """The duplicates ``find_duplicates_spark`` found: Spark DataFrames, nothing collected.

    Attributes:
        pairs: Pairs scoring at least the threshold, best first then by ids: ``left_id``
            (the smaller id), ``right_id``, ``score``, ``match_weight``, ``reasons`` (array of
            text) and ``evidence`` (array of ``field``, ``level``, ``weight``), as
            ``DuplicatePair``.
        groups: Groups of two or more records by main id: ``main_id``, ``ids`` (sorted) and
            ``reasons``, as ``DuplicateGroup``.
        compared: How many candidate pairs blocking proposed and the scorer compared.
        kind: ``"contact"`` or ``"customer"``.
        fields: The fields the records use (those the main's completeness counts).
        config: The settings used, with the estimated parameters and estimation switched off
            (score other records the same way with it, in-process or on Spark).
    """

    pairs: DataFrame
    groups: DataFrame
    compared: int
    kind: Kind
    fields: tuple[str, ...]
    config: MatchConfig

    @property
    def parameters(self) -> Parameters:
        """The model the pairs were scored with (estimated, when estimation ran)."""
        assert self.config.parameters is not None  # noqa: S101 - always set by the matcher
        return self.config.parameters


def _check_ids(frame: DataFrame) -> None:
    from pyspark.sql import functions as sf

    if "id" not in frame.columns:
        msg = "a Spark DataFrame of records needs an id column (rows have no position)"
        raise MatchingError(msg, field="id")
    blank = sf.col("id").isNull() | (sf.trim(sf.col("id").cast("string")) == "")
    if frame.filter(blank).limit(1).count():
        msg = "every record needs an id; some ids are missing or blank"
        raise MatchingError(msg, field="id")


def _normalised(frame: DataFrame, kind: Kind, config: MatchConfig, region: str) -> DataFrame:
    from functools import partial

    wanted = {*_batches.record_fields(kind, config), *TIME_FIELDS, "id"}
    schema = ", ".join(
        [
            "id string",
            *(f"k{at} string" for at in range(len(_batches.key_columns(kind, config)))),
            *(f"f{at} boolean" for at in range(len(_batches.record_fields(kind, config)))),
            "contacted double, created double, name string",
        ]
    )
    columns = [name for name in frame.columns if name in wanted]
    work = partial(_batches.normalised, kind=kind, config=config, region=region)
    return _over_every_core(frame.select(*columns)).mapInPandas(work, schema)


def _over_every_core(frame: DataFrame) -> DataFrame:
    """``frame`` in at least as many partitions as Spark has cores.

    Normalising is the heaviest Python step per record: a frame read from one file is one
    partition, and would be normalised on one core. Spark Connect tells neither the cores nor
    the partitions: there the frame is left as it is.
    """
    from pyspark.errors import PySparkNotImplementedError

    try:
        cores = frame.sparkSession.sparkContext.defaultParallelism
        partitions = frame.rdd.getNumPartitions()
    except (AttributeError, PySparkNotImplementedError):
        return frame
    return frame.repartition(cores) if partitions < cores else frame


def _positioned(normalised: DataFrame) -> DataFrame:
    """The records with ``pos``: the rank of their id (``id_rank`` in-process), computed in Spark.

    The records are sorted by id; each sorted partition's rows are numbered by
    ``monotonically_increasing_id`` and shifted by the rows of the partitions before it (one
    count per partition is all the driver reads).
    """
    from pyspark.sql import functions as sf

    spark = normalised.sparkSession
    # Sorting samples its input before sorting it: normalise once, not twice.
    ordered = (
        normalised.localCheckpoint()
        .orderBy("id")
        .withColumn("_part", sf.spark_partition_id())
        .withColumn("_row", sf.monotonically_increasing_id())
        .localCheckpoint()
    )
    sizes = sorted(
        (row["_part"], row["first"], row["rows"])
        for row in ordered.groupBy("_part")
        .agg(sf.min("_row").alias("first"), sf.count("*").alias("rows"))
        .collect()
    )
    shifts, before = [], 0
    for part, first, rows in sizes:
        shifts.append((part, before - first))
        before += rows
    shift = spark.createDataFrame(shifts, "_part int, _shift long")
    duplicate = ordered.groupBy("id").count().filter("count > 1").limit(1).count()
    if duplicate:
        msg = "records have duplicate ids; give each record a unique id"
        raise MatchingError(msg, field="id")
    return (
        ordered.join(sf.broadcast(shift), "_part")
        .withColumn("pos", sf.col("_row") + sf.col("_shift"))
        .drop("_part", "_row", "_shift")
    )


def _coded(records: DataFrame, stages: _batches.PairBatches) -> DataFrame:
    """Every candidate pair ``(a, b)``, ``a < b``, once, with its level code (``CODED_SCHEMA``).

    Each record's blocking keys are computed with the in-process rules, each key row carrying
    its record; the rows are sent, a bucket of whole blocks at a time, to
    ``PairBatches.blocks_compared``, which pairs and compares them as in-process. A pair
    proposed in two buckets is compared in both and kept once. Carrying the record costs one
    shuffle of wide rows, where counting the blocks first and joining the records of the shared
    keys cost three shuffles and a join (a quarter of the keys are blocks of one).
    """
    from functools import partial

    from pyspark.sql import functions as sf

    kind, config = stages.kind, stages.config
    key_names = [f"k{at}" for at in range(len(_batches.key_columns(kind, config)))]
    work = partial(_batches.block_keys, kind=kind, config=config)
    schema = ", ".join(
        ["key string, ord string, pos long, count long", *(f"{name} string" for name in key_names)]
    )
    members = records.select("pos", "count", *key_names).mapInPandas(work, schema)
    # Whole blocks per Python call, a bucket of them: a call per block would cost more than
    # comparing its pairs.
    buckets = max(int(records.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8), 1)
    return (
        members.withColumn("bucket", sf.pmod(sf.hash("key"), sf.lit(buckets)))
        .groupBy("bucket")
        .applyInPandas(_batches.blocks_comparer(stages), CODED_SCHEMA)
        .dropDuplicates(["a", "b"])
    )


def _with_records(
    pairs: DataFrame, records: DataFrame, names: int, *, few: bool = False
) -> DataFrame:
    """Each pair ``(a, b)`` with both records' id, keys and name count (``a_*``, ``b_*``).

    ``few``: the pairs are few whatever the records (estimation's random ones), so they are
    sent to every task of the records, which are then read in place instead of shuffled.
    """
    from pyspark.sql import functions as sf

    columns = ["pos", "id", "count", *(f"k{at}" for at in range(names))]
    sides = [
        records.select(*(sf.col(c).alias(f"{side}_{c}") for c in columns)) for side in ("a", "b")
    ]
    spread = sf.broadcast if few else (lambda frame: frame)
    with_a = spread(pairs).join(sides[0], pairs["a"] == sides[0]["a_pos"])
    return spread(with_a).join(sides[1], with_a["b"] == sides[1]["b_pos"])


def _kinds(coded: DataFrame) -> pd.DataFrame:
    """How many coded pairs share each ``(code, same_name, a_count)``: all a weight depends on.

    Their number is bounded by the level patterns and the distinct name frequencies, whatever
    the records; the driver reads them, not the pairs.
    """
    import pandas as pd

    rows = coded.groupBy(*_KIND).count().collect()
    frame = pd.DataFrame(rows, columns=[*_KIND, "count"])
    return frame.astype(
        {"code": np.int64, "same_name": np.bool_, "a_count": np.int64, "count": np.int64}
    )


def _pattern_counts(kinds: pd.DataFrame, sizes: list[int]) -> tuple[Any, Any]:
    """(patterns, counts) of coded pairs, as ``level_patterns`` gives them (by code)."""
    codes, at = np.unique(kinds["code"].to_numpy(np.int64), return_inverse=True)
    counts = np.bincount(at.reshape(-1), weights=kinds["count"].to_numpy(np.int64))
    return decode_patterns(codes, sizes), counts.astype(np.int64)


def find_duplicates_spark(
    frame: DataFrame,
    *,
    kind: Kind,
    config: MatchConfig | None = None,
    region: str = "US",
) -> SparkMatchReport:
    """Find the duplicates among contacts or customers held in a Spark DataFrame.

    Runs ``customerkit.matching.find_duplicates``' matcher in Spark and gives the same pairs,
    scores and groups (see the how-to for the one condition: estimation's random pairs are
    drawn over the records in id order).

    Args:
        frame: One row per record: an ``id`` column (unique, never blank) and columns named
            as the model's fields (those missing are blank), plus the columns of
            ``config.comparisons``.
        kind: ``"contact"`` or ``"customer"``.
        config: As ``find_duplicates``' (``workers`` and ``chunk_size`` apply per batch).
        region: Default phone region.

    Returns:
        The report; its pairs and groups are lazy DataFrames.

    Raises:
        MatchingError: ``kind`` is unknown, or ids are missing, blank or repeated.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as sf

    config = config or MatchConfig()
    fields_of(kind)  # an unknown kind is refused before any Spark work
    _check_ids(frame)
    spark: SparkSession = frame.sparkSession
    keys = len(_batches.key_columns(kind, config))
    fields = _batches.record_fields(kind, config)
    positioned = _positioned(_normalised(frame, kind, config, region))
    named_records = positioned.filter(sf.col("name") != "")
    counts = named_records.groupBy("name").agg(sf.count("*").alias("count"))
    records = (
        positioned.join(counts, "name", "left")
        .fillna(0, ["count"])
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    summary = records.agg(
        sf.count("*").alias("n"),
        sf.sum((sf.col("name") != "").cast("long")).alias("named"),
        *(sf.max(f"f{at}").alias(f"f{at}") for at in range(len(fields))),
    ).first()
    assert summary is not None  # noqa: S101 - an aggregate always has a row
    n, named = int(summary["n"]), int(summary["named"] or 0)
    # Completeness counts the fields these records use (as in-process).
    used = tuple(field for at, field in enumerate(fields) if summary[f"f{at}"])
    filled = sum(
        (sf.col(f"f{fields.index(field)}").cast("long") for field in used), sf.lit(0).cast("long")
    )
    records = records.withColumn("filled", filled)

    names = comparisons_of(kind, config)
    sizes = level_sizes(names, config)
    start = starting_parameters(kind, config)
    start_model = Model.of(start, names)
    stages = _batches.PairBatches(kind=kind, config=config, model=start_model, named=named)
    coded = _coded(records, stages).persist(StorageLevel.MEMORY_AND_DISK)
    kinds = _kinds(coded)
    compared = int(kinds["count"].sum())
    parameters = start
    if config.estimate and n >= config.min_records and compared:
        left, right = random_pairs(n, RANDOM_PAIRS, config.seed)
        drawn = spark.createDataFrame(np.stack((left, right), axis=1).tolist(), "a long, b long")
        chance = _with_records(drawn, records, keys, few=True).mapInPandas(
            stages.level_codes, CODED_SCHEMA
        )
        chance_patterns, chance_counts = _pattern_counts(_kinds(chance), sizes)
        u_values = frequencies(chance_patterns, sizes, chance_counts.astype(np.float64))
        u = {name: tuple(v.tolist()) for name, v in zip(names, u_values, strict=True)}
        patterns, pattern_counts = _pattern_counts(kinds, sizes)
        parameters = estimate_parameters(
            patterns, pattern_counts, names, start, u, records=n, kind=kind
        )
    stages = attrs.evolve(stages, model=Model.of(parameters, names))
    # Weighed once per kind of pair, on the driver; Spark keeps the pairs of the kinds kept.
    kept_kinds = stages.at_threshold(kinds)
    chosen = spark.createDataFrame(
        kept_kinds[list(_KIND)], "code long, same_name boolean, a_count long"
    )
    at_threshold = coded.join(sf.broadcast(chosen), list(_KIND)).select("a", "b")
    kept = (
        _with_records(at_threshold, records, keys)
        .mapInPandas(stages.scored, PAIR_SCHEMA)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    groups = _groups(kept, records, len(used), config)
    ordered_pairs = kept.orderBy(sf.desc("score"), "left_pos", "right_pos").drop(
        "left_pos", "right_pos"
    )
    return SparkMatchReport(
        pairs=ordered_pairs,
        groups=groups,
        compared=compared,
        kind=kind,
        fields=used,
        config=attrs.evolve(config, parameters=parameters, estimate=False),
    )


def _groups(
    kept: DataFrame, records: DataFrame, total_fields: int, config: MatchConfig
) -> DataFrame:
    """Groups of the kept pairs: connected components, then ``group_pairs`` per component."""
    from functools import partial

    from pyspark.sql import functions as sf

    components = connected_components(kept, "left_pos", "right_pos")
    # Fresh aliases: both sides of the cogroup read the components, and Spark must not take
    # them for one column.
    pairs = kept.join(
        components.select(
            sf.col("node").alias("left_pos"), sf.col("component").alias("pair_component")
        ),
        "left_pos",
    ).select(
        sf.col("pair_component").alias("component"), "left_pos", "right_pos", "score", "reasons"
    )
    members = components.select(
        sf.col("node").alias("pos"), sf.col("component").alias("member_component")
    ).join(records.select("pos", "id", "filled", "contacted", "created"), "pos")
    members = members.select(
        sf.col("member_component").alias("component"),
        "pos",
        "id",
        "filled",
        "contacted",
        "created",
    )
    work = partial(_batches.grouped, total_fields=total_fields, link_fraction=config.link_fraction)
    # Components are grouped independently, so one Python call groups a whole bucket of them:
    # a call per component would cost more than the grouping itself.
    buckets = max(int(kept.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8), 1)
    bucket = sf.pmod(sf.hash("component"), sf.lit(buckets))
    grouped = (
        pairs.withColumn("bucket", bucket)
        .groupBy("bucket")
        .cogroup(members.withColumn("bucket", bucket).groupBy("bucket"))
        .applyInPandas(work, GROUP_SCHEMA)
        .persist()  # sorting samples its input first: group once
    )
    return grouped.orderBy("main_id")
