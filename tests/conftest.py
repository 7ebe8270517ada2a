"""Shared fixtures: the contract suite's ``make_book`` over every backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest.register_assert_rewrite("customerkit.testing.contract")

import customerkit as ck  # noqa: E402 - after registering assertion rewriting
from customerkit.testing import FakeClock  # noqa: E402
from customerkit.testing.postgres import postgres_server_url, postgres_url  # noqa: E402, F401
from example_store import ExampleStore  # noqa: E402 - tests/ is on sys.path (rootdir conftest)

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TEST_HASHER = ck.PasswordHasher.for_tests()
BACKENDS = ["memory", "sqlite", "postgresql"]
#: The shipped backends and ``tests/example_store.py``, a store of only the required ports.
CONTRACT_BACKENDS = [*BACKENDS, "example"]


@pytest.fixture(params=BACKENDS)
def make_book(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[FakeClock], ck.Book]]:
    """A factory of empty books on each backend: memory, an SQLite file, a real PostgreSQL.

    ``"example"`` (parametrised explicitly, as the contract suite does) is the example
    third-party store.
    """
    backend = request.param
    opened: list[ck.Book] = []

    def url() -> str | None:
        if backend == "memory":
            return None
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'book{len(opened)}.db'}"
        return str(request.getfixturevalue("postgres_url"))

    def make(clock: FakeClock) -> ck.Book:
        if backend == "example":
            book = ck.Book(ExampleStore(), clock=clock, hasher=TEST_HASHER)
        else:
            book = ck.open_book(url(), clock=clock, hasher=TEST_HASHER)
        opened.append(book)
        return book

    yield make
    for book in opened:
        book.close()
