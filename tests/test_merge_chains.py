"""Chains of merges cost a constant number of statements per merge, however long the chain.

Merging B into C re-points every tombstone merged into B earlier at C (no id ever resolves
through a tombstone), and moves every contact B gathered. With one statement per tombstone and
per contact, a chain of 300 merges took over a minute on SQLite and undoing it longer. The
re-pointing and the moves are now one statement per merged record, so the statements a merge
or unmerge issues do not grow along the chain (but for PostgreSQL's history sequence blocks,
logarithmically); the rows they touch still do, at the database's speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

import customerkit as ck
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
CHAIN = 24


@contextmanager
def counted(book: ck.Book) -> Iterator[list[str]]:
    """The statements the book's engine runs inside the block."""
    engine = book.store.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("make_book", ["sqlite", "postgresql"], indirect=True)
def test_statements_per_merge_do_not_grow_along_a_chain(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """Merge c0 into c1, c1 into c2, ...: merge k re-points k-1 tombstones and moves k
    contacts; the k-th merge and its unmerge issue as many statements as the second."""
    book = make_book(FakeClock())
    drafts = [
        ck.NewCustomer(company_name=f"Co {i}", customer_number=f"N-{i}") for i in range(CHAIN)
    ]
    chain = book.customers.create_many(drafts, actor=ADMIN)
    for customer in chain:
        book.contacts.add(
            customer.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN
        )
    merges, costs = [], []
    for i in range(1, CHAIN):
        with counted(book) as statements:
            merges.append(book.customers.merge(chain[i].id, [chain[i - 1].id], actor=ADMIN))
        costs.append(len(statements))
    assert len(book.contacts.list(chain[-1].id, actor=ADMIN)) == CHAIN
    with book.store.unit_of_work(read_only=True) as uow:
        assert {c.merged_into for c in uow.customers.merged_into(chain[-1].id)} == {chain[-1].id}
        assert len(uow.customers.merged_into(chain[-1].id)) == CHAIN - 1
    undo_costs = []
    for result in reversed(merges):
        assert result.merge_id is not None
        with counted(book) as statements:
            book.customers.unmerge(result.merge_id, actor=ADMIN)
        undo_costs.append(len(statements))
    # PostgreSQL draws history sequence numbers in doubling blocks: a statement per doubling.
    slack = CHAIN.bit_length()
    assert costs[-1] - costs[1] <= slack, costs
    assert undo_costs[0] - undo_costs[-2] <= slack, undo_costs
    for customer in chain:
        assert len(book.contacts.list(customer.id, actor=ADMIN)) == 1
