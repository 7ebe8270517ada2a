"""The SQL unit of work builds its repositories and writers on first use.

A read-only unit of work that reads one customer (the commonest call) must not pay for the
seven repositories and two writers it never touches.
"""

from __future__ import annotations

from pathlib import Path

import customerkit as ck
from customerkit import synth
from customerkit.backends.sqlalchemy import SqlStore

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
#: Everything the unit of work builds on first use.
LAZY = {
    "customers",
    "contacts",
    "users",
    "history",
    "reference",
    "settings",
    "merges",
    "dismissals",
    "words",
    "match_keys",
    "_loader",
}


def test_a_read_builds_only_the_repository_it_uses(tmp_path: Path) -> None:
    book = ck.open_book(f"sqlite:///{tmp_path / 'book.db'}")
    drafts = [draft for _, draft in synth.customers(3, seed=1, locations=("loc-1",))]
    created = book.customers.create_many(drafts, actor=ADMIN)
    store = book.store
    assert isinstance(store, SqlStore)
    with store.unit_of_work(read_only=True) as uow:
        assert uow.customers.get(created[0].id) == created[0]
        assert LAZY & set(vars(uow)) == {"customers"}
