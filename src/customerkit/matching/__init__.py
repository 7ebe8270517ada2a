"""Duplicate matching for contacts and customers: pure functions, no storage.

``find_duplicates`` compares records in one batch (blocking keeps the cost near-linear), scores
each candidate pair with a Fellegi-Sunter match probability whose parameters are estimated from
the records themselves, says why it matched, and joins pairs into groups with a proposed main
record. ``MatchIndex`` and ``find_similar`` match one new record against indexed records with the
same blocking and scoring. ``fit`` learns the parameters from pairs a person labelled.
"""

from customerkit.matching.api import compared_pairs, find_duplicates, find_similar, fit
from customerkit.matching.config import (
    DEFAULT_PARAMETERS,
    ExtraComparison,
    MatchConfig,
    Parameters,
)
from customerkit.matching.index import BlockSource, MatchIndex
from customerkit.matching.report import (
    DuplicateGroup,
    DuplicatePair,
    DuplicateReport,
    Evaluation,
    Evidence,
    Quality,
    SimilarMatch,
)
from customerkit.matching.table import UnknownColumnsWarning

__all__ = [
    "DEFAULT_PARAMETERS",
    "BlockSource",
    "DuplicateGroup",
    "DuplicatePair",
    "DuplicateReport",
    "Evaluation",
    "Evidence",
    "ExtraComparison",
    "MatchConfig",
    "MatchIndex",
    "Parameters",
    "Quality",
    "SimilarMatch",
    "UnknownColumnsWarning",
    "compared_pairs",
    "find_duplicates",
    "find_similar",
    "fit",
]
