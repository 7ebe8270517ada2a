"""Which accelerators the services use: the shipped backends' own, the example store's none.

The search and duplicate benchmarks time the accelerated paths (a search index, stored blocks,
rows exported straight from storage); a backend losing one would fall back to reading the whole
location, correct but slow, so these tests pin the capability detection the services use.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

import customerkit as ck
from conftest import TEST_HASHER
from customerkit import synth
from customerkit.ports import ACCELERATORS, ContactRepository, CustomerRepository
from customerkit.search.query import parse_query
from customerkit.services import accelerators
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")

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
            "KeptBlockReads",
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
    with book.store.unit_of_work() as uow:
        # A SQL unit of work writes a bulk load's chunks in batches; memory adds one at a time.
        assert accelerators.detected(uow) == (
            [] if backend in {"memory", "example"} else ["BulkLoad"]
        )


def test_detection_names_every_accelerator_once() -> None:
    assert len(set(ALL)) == len(ALL)
    assert set(ALL) >= {"CustomerSearch", "KeptMatchIndex", "ExportRows"}


def required_only(repository: object, protocol: type) -> Any:
    """``repository`` seen through the methods of a required protocol only (no accelerator)."""
    names = [name for name in vars(protocol) if not name.startswith("_")]
    forward = {name: staticmethod(getattr(repository, name)) for name in names}
    return type(f"RequiredOnly{protocol.__name__}", (), forward)()


@pytest.fixture(scope="module")
def filled_books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ck.Book]]:
    """A memory and an SQLite book with the same few hundred customers and their contacts."""
    path = tmp_path_factory.mktemp("fallbacks") / "book.db"
    books: dict[str, ck.Book] = {}
    drafts = [draft for _, draft in synth.customers(300, seed=3, locations=("loc-1",))]
    for backend, url in (("memory", None), ("sqlite", f"sqlite:///{path}")):
        clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        book = books[backend] = ck.open_book(url, clock=clock, hasher=TEST_HASHER)
        created = book.customers.create_many(drafts[:150], actor=ADMIN)
        clock.advance(days=1)  # so created_since splits the location
        created += book.customers.create_many(drafts[150:], actor=ADMIN)
        ids = [c.id for c in created[:120]]
        for customer_id, contact in synth.contacts(ids, seed=4):
            book.contacts.add(customer_id, contact, actor=ADMIN)
        book.customers.delete(created[5].id, actor=ADMIN)  # a tombstone stays out of it all
    yield books
    for book in books.values():
        book.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_every_fallback_answers_as_the_accelerator(
    filled_books: dict[str, ck.Book], backend: str
) -> None:
    """The services' fallbacks, run on the same data, give exactly the accelerators' answers."""
    book = filled_books[backend]
    with book.store.unit_of_work(read_only=True) as uow:
        plain = SimpleNamespace(
            customers=required_only(uow.customers, CustomerRepository),
            contacts=required_only(uow.contacts, ContactRepository),
        )
        assert accelerators.detected(plain.customers) == []
        assert accelerators.detected(plain.contacts) == []
        live = list(uow.customers.iter_location("loc-1"))
        some = [c.id for c in live[::7]] + ["no-such-id"]
        hits = 0
        for query, fuzzy in (
            ("tire", False),
            ("denver", False),
            ("100", False),
            ("logstics", True),
        ):
            parsed = parse_query(query, fuzzy=fuzzy)
            found = accelerators.search(uow.customers, "loc-1", parsed, limit=50)
            assert accelerators.search(plain.customers, "loc-1", parsed, limit=50) == found
            hits += len(found)
        assert hits
        assert accelerators.get_many(plain.customers, some) == accelerators.get_many(
            uow.customers, some
        )
        assert accelerators.count(plain.customers, "loc-1") == accelerators.count(
            uow.customers, "loc-1"
        )
        since = datetime(2026, 1, 1, 12, tzinfo=UTC)
        recent = accelerators.created_since(plain.customers, "loc-1", since)
        assert 0 < len(recent) < len(live)
        by_id = operator.attrgetter("id")
        assert sorted(recent, key=by_id) == sorted(
            accelerators.created_since(uow.customers, "loc-1", since), key=by_id
        )
        for ids in (None, some):
            assert list(accelerators.export_records(plain, "loc-1", ids=ids)) == list(
                accelerators.export_records(uow, "loc-1", ids=ids)
            )
        kinds = [
            ("customer", live[::25]),
            ("contact", accelerators.live_contacts(uow, "loc-1")[::9]),
        ]
        for kind, probes in kinds:
            built = accelerators.match_index(plain, kind, "loc-1", region="US")
            kept = accelerators.match_index(uow, kind, "loc-1", region="US")
            assert probes
            for probe in probes:
                # As drafts, without ids: given a stored record, the SQL books' stored index
                # counts its name once more than an index holding it does (reported apart).
                draft = {k: v for k, v in attrs.asdict(probe).items() if k != "id"}
                assert built.find_similar(draft) == kept.find_similar(draft)
