"""Which accelerators the services use: the shipped backends' own, the example store's none.

The search and duplicate benchmarks time the accelerated paths (a search index, stored blocks,
rows exported straight from storage); a backend losing one would fall back to reading the whole
location, correct but slow, so these tests pin the capability detection the services use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

import customerkit as ck
from customerkit.ports import ACCELERATORS
from customerkit.services import accelerators
from customerkit.testing import FakeClock

ALL = [protocol.__name__ for protocol in ACCELERATORS]
#: What the services find on each shipped backend's repositories.
EXPECTED = {
    "memory": {
        "customers": [
            "BulkReads",
            "LocationQueries",
            "CustomerSearch",
            "ExportRows",
            "KeptMatchIndex",
        ],
        "contacts": ["KeptMatchIndex"],
    },
    "sqlite": {
        "customers": [
            "BulkReads",
            "LocationQueries",
            "CustomerSearch",
            "ExportRows",
            "KeptMatchIndex",
            "BulkRepoint",
        ],
        "contacts": ["KeptMatchIndex", "BulkRepoint", "BulkMove"],
    },
    "example": {"customers": [], "contacts": []},
}
EXPECTED["postgresql"] = EXPECTED["sqlite"]


@pytest.mark.parametrize("make_book", list(EXPECTED), indirect=True)
def test_services_detect_each_backends_accelerators(
    make_book: Callable[[FakeClock], ck.Book], request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["make_book"]
    book = make_book(FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
    with book.store.unit_of_work(read_only=True) as uow:
        found = {
            "customers": accelerators.detected(uow.customers),
            "contacts": accelerators.detected(uow.contacts),
        }
    assert found == EXPECTED[backend]


def test_detection_names_every_accelerator_once() -> None:
    assert len(set(ALL)) == len(ALL)
    assert set(ALL) >= {"CustomerSearch", "KeptMatchIndex", "ExportRows"}
