"""Connected components of a graph held as a Spark DataFrame of edges.

Min-label propagation: every node starts labelled with the smallest of itself and its
neighbours; each round, every node takes the smallest label among its own and its neighbours'.
A component's smallest node spreads one edge per round, so the labels settle after as many
rounds as the component's widest distance from its smallest node (duplicate groups are small:
a handful of rounds). A round that changes no label ends it. Each round's labels are
checkpointed locally so the query plan does not grow with the rounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["connected_components"]


def connected_components(edges: DataFrame, left: str, right: str) -> DataFrame:
    """Each node of the edges ``(left, right)`` with its component's smallest node.

    Args:
        edges: The edges; nodes are integers.
        left: The column of one end.
        right: The column of the other end.

    Returns:
        Columns ``node`` and ``component`` (the smallest node of its component), one row
        per node that has an edge.
    """
    from pyspark.sql import functions as sf

    both = (
        edges.select(sf.col(left).alias("src"), sf.col(right).alias("dst"))
        .unionByName(edges.select(sf.col(right).alias("src"), sf.col(left).alias("dst")))
        .localCheckpoint()
    )
    labels = (
        both.groupBy("src")
        .agg(sf.min("dst").alias("smallest"))
        .select(sf.col("src").alias("node"), sf.least("src", "smallest").alias("component"))
        .localCheckpoint()
    )
    while True:
        heard = (
            both.join(labels, both["dst"] == labels["node"])
            .groupBy("src")
            .agg(sf.min("component").alias("heard"))
        )
        updated = (
            labels.join(heard, labels["node"] == heard["src"])
            .select(
                "node",
                sf.least("component", "heard").alias("component"),
                (sf.col("heard") < sf.col("component")).alias("changed"),
            )
            .localCheckpoint()
        )
        labels = updated.select("node", "component")
        if updated.filter("changed").limit(1).count() == 0:
            return labels
