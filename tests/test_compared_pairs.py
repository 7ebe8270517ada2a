"""Blocking's compared pairs as ids (rule M5): what ``find_duplicates`` scores, no more, no less."""

from __future__ import annotations

from customerkit import synth
from customerkit.matching import find_duplicates
from customerkit.matching.api import compared_pairs


def test_compared_pairs_are_the_pairs_find_duplicates_scores() -> None:
    data = synth.labelled_customers(400, seed=5)
    compared = compared_pairs(data.records, kind="customer")
    report = find_duplicates(data.records, kind="customer")

    assert len(compared) == report.compared
    assert len(set(compared)) == len(compared)
    assert all(left < right for left, right in compared)
    found = {tuple(sorted((pair.left_id, pair.right_id))) for pair in report.pairs}
    assert found
    assert found <= set(compared)


def test_records_sharing_nothing_are_not_compared() -> None:
    records = [
        {"id": "z", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"},
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"},
        {"id": "m", "first_name": "Omar", "last_name": "Quist", "email": "oq@y.org"},
    ]

    assert compared_pairs(records, kind="contact") == [("a", "z")]
