"""Duplicate detection on Apache Spark (``pip install 'customerkit[spark]'``).

``find_duplicates_spark`` runs ``customerkit.matching``'s batch matcher over a Spark
DataFrame: the same normalisation, blocking, scorer, parameter estimation and grouping, so it
gives the same pairs, scores and groups as ``find_duplicates``, with nothing but the level
pattern counts brought to the driver. Importing ``customerkit`` never imports pyspark; this
package imports it only when the matcher runs.
"""

from customerkit.spark.api import SparkMatchReport, find_duplicates_spark

__all__ = ["SparkMatchReport", "find_duplicates_spark"]
