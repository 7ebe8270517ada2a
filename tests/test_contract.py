"""Run the shipped contract suite against every backend, the way a third party runs it.

``BookContract`` is subclassed exactly as the testing guide shows; ``make_book`` hands out
books from conftest's ``make_book`` fixture, which runs each test on memory, an SQLite file
and a real PostgreSQL.
"""

from __future__ import annotations

import pytest

import customerkit as ck
from customerkit.testing import FakeClock
from customerkit.testing.contract import BookContract, MakeBook


class TestContract(BookContract):
    """Every rule, on every shipped backend."""

    @pytest.fixture(autouse=True)
    def _on_each_backend(self, make_book: MakeBook) -> None:
        self._make_book = make_book

    def make_book(self, clock: FakeClock) -> ck.Book:
        return self._make_book(clock)
