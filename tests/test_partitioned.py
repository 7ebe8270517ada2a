"""A PostgreSQL book whose location-keyed tables are partitioned by ``location_id``.

The contract's customer, search, duplicate and dismissal rules run on a book created with
``SqlStore(url, partitions=4)``, and the tables are checked to really be partitioned, with a
multi-location book's rows spread over several partitions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

import customerkit as ck
from customerkit.backends.sqlalchemy import SqlStore, schema
from customerkit.testing import FakeClock
from customerkit.testing.contract import (
    CustomersContract,
    DismissalsContract,
    DuplicatesContract,
    SearchContract,
)

TEST_HASHER = ck.PasswordHasher.for_tests()
PARTITIONS = 4


@pytest.fixture
def partitioned_books(postgres_url: str) -> Iterator[list[ck.Book]]:
    opened: list[ck.Book] = []
    yield opened
    for book in opened:
        book.close()


def _book(url: str, clock: FakeClock, opened: list[ck.Book]) -> ck.Book:
    book = ck.Book(SqlStore(url, partitions=PARTITIONS), clock=clock, hasher=TEST_HASHER)
    opened.append(book)
    return book


@pytest.mark.slow
class TestPartitionedContract(
    CustomersContract, SearchContract, DuplicatesContract, DismissalsContract
):
    """Creating, searching, merging and deduplicating customers on partitioned tables."""

    @pytest.fixture(autouse=True)
    def _partitioned(self, postgres_url: str, partitioned_books: list[ck.Book]) -> None:
        self._url = postgres_url
        self._opened = partitioned_books

    def make_book(self, clock: FakeClock) -> ck.Book:
        # Each book of a test gets the same database: the contract opens one book per test.
        return _book(self._url, clock, self._opened)


def _partitions_of(url: str, table: str) -> dict[str, int]:
    """Each partition of ``table`` and its row count."""
    store = SqlStore(url)
    try:
        with store.engine.connect() as connection:
            names = connection.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table"
                ),
                {"table": table},
            ).scalars()
            return {
                name: int(connection.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0)
                for name in names
            }
    finally:
        store.close()


def _staff(location: str) -> ck.Actor:
    return ck.Actor(user_id=f"u-{location}", role=ck.Role.DEALER_ADMIN, location_id=location)


def test_locations_spread_over_partitions_and_stay_apart(
    postgres_url: str, partitioned_books: list[ck.Book]
) -> None:
    book = _book(postgres_url, FakeClock(), partitioned_books)
    locations = [f"loc-{at}" for at in range(8)]
    for location in locations:
        for number, name in enumerate(("Acme Haulage", "ACME Haulage Inc", "Zenith Farms")):
            book.customers.create(
                ck.NewCustomer(
                    company_name=name,
                    customer_number=f"{location}-{number}",
                    city="Springfield",
                    phone="303-555-0100" if number < 2 else "",
                ),
                actor=_staff(location),
            )
        # Keeps the location's blocking keys in match_keys.
        book.customers.find_similar(ck.NewCustomer(company_name="Acme"), actor=_staff(location))
    for table in schema.PARTITIONED_TABLES:
        rows = _partitions_of(postgres_url, table)
        assert len(rows) == PARTITIONS, table
        assert sum(count > 0 for count in rows.values()) >= 2, (table, rows)
    for location in locations:
        staff = _staff(location)
        # Each location finds its own customers, and only them, whichever partition holds them.
        found = [hit.customer for hit in book.customers.search("acme", actor=staff)]
        assert {customer.location_id for customer in found} == {location}
        assert len(found) == 2
        report = book.customers.find_duplicates(actor=staff)
        assert len(report.pairs) == 1
        # Read from the partitioned blocking keys two customers at a time: the same report.
        chunked = book.customers.find_duplicates(actor=staff, workers=1, chunk_size=2)
        assert (chunked.pairs, chunked.groups) == (report.pairs, report.groups)
        pair = report.pairs[0]
        merged = book.customers.merge(pair.left_id, [pair.right_id], actor=staff)
        assert merged.main.id == pair.left_id
        assert len(book.customers.search("acme", actor=staff)) == 1
        assert book.customers.find_duplicates(actor=staff).pairs == ()


def test_partitions_are_refused_on_sqlite() -> None:
    with pytest.raises(ck.ValidationError) as raised:
        SqlStore("sqlite://", partitions=2)
    assert "partitions" in raised.value.errors
