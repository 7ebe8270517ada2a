"""Duplicate matching for contacts and customers: pure functions, no storage (rules M1-M6).

``find_duplicates`` compares records in one batch (blocking keeps the cost near-linear, M5),
scores each candidate pair with the reasons it matched (M1) and joins pairs into groups with a
proposed main record (M2). ``MatchIndex`` and ``find_similar`` match one new record against
indexed records with the same blocking and scoring (M6).
"""

from customerkit.matching.api import find_duplicates, find_similar
from customerkit.matching.config import ContactWeights, CustomerWeights, MatchConfig
from customerkit.matching.index import MatchIndex
from customerkit.matching.report import (
    DuplicateGroup,
    DuplicatePair,
    DuplicateReport,
    SimilarMatch,
)

__all__ = [
    "ContactWeights",
    "CustomerWeights",
    "DuplicateGroup",
    "DuplicatePair",
    "DuplicateReport",
    "MatchConfig",
    "MatchIndex",
    "SimilarMatch",
    "find_duplicates",
    "find_similar",
]
