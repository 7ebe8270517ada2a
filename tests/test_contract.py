"""Run the shipped contract suite against every backend, the way a third party runs it.

``BookContract`` is subclassed exactly as the testing guide shows; ``make_book`` hands out
books from conftest's ``make_book`` fixture, parametrised here over memory, an SQLite file, a
real PostgreSQL and ``tests/example_store.py`` (a third-party store of only the required ports).
"""

from __future__ import annotations

import pytest

import customerkit as ck
from conftest import CONTRACT_BACKENDS
from customerkit.testing import FakeClock
from customerkit.testing.contract import BookContract, MakeBook

pytestmark = pytest.mark.parametrize("make_book", CONTRACT_BACKENDS, indirect=True)


class TestContract(BookContract):
    """Every rule, on every shipped backend and the example store."""

    @pytest.fixture(autouse=True)
    def _on_each_backend(self, make_book: MakeBook) -> None:
        self._make_book = make_book

    def make_book(self, clock: FakeClock) -> ck.Book:
        return self._make_book(clock)
