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


def word_starts_disagree(book: ck.Book) -> list[tuple[str, int, int]]:
    """SQL books: the customers whose word rows do not carry how their own words start.

    Each row holds two masks of its customer's words (NAME's, every field's), which search
    filters on; any writer that changes a customer's words rewrites all of its rows. Returns
    (customer id, name mask, mask) of every customer whose rows differ from the masks of the
    words the table holds for it; an empty list on other books.
    """
    from customerkit.backends.sqlalchemy._words import word_masks

    engine = getattr(book.store, "engine", None)
    if engine is None:
        return []
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT customer_id, field, word, name_starts, starts FROM customer_words"
        ).all()
    words: dict[str, list[tuple[int, str]]] = {}
    stored: dict[str, set[tuple[int, int]]] = {}
    for customer_id, field, word, name_starts, starts in rows:
        words.setdefault(customer_id, []).append((field, word))
        stored.setdefault(customer_id, set()).add((name_starts, starts))
    wrong = []
    for customer_id, found in words.items():
        masks = word_masks(found)
        if stored[customer_id] != {masks}:
            wrong.append((customer_id, *masks))
    return wrong


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
