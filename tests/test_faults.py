"""T5: a storage failure at any point of a use-case leaves nothing half-written.

Every multi-write use-case (merges and unmerges of contacts and customers, ``delete_many``,
``create_many``, customer delete with and without history, source import and refresh, and the
two-write ones: update, add, delete, communication) runs once to count its injection points,
then once per point ``k`` with the storage failing at the k-th one. After each failure:

* the error that reaches the caller is the injected exception itself (nothing swallows,
  wraps or retries it);
* the book reads exactly as before the call: every customer, contact (tombstones included),
  history, merge record, uniqueness index, listing and search result, plus a raw dump of the
  backend (the memory store's tables; every SQL table);
* the book is usable: the same call then succeeds and leaves the same state as a clean run.

Injection points. Memory: before every repository write (add, update, remove, append, ...),
at the start of ``commit`` and at every search-index write made during commit. SQL
(``customerkit.backends.sqlalchemy.SqlStore``): before every ``INSERT``, ``UPDATE`` and ``DELETE``
the engine executes (``before_cursor_execute``) and at every ``commit`` event. Reads and
savepoints are not points of their own: failing there equals failing before the next write.

Ids are made deterministic here (a counter instead of ``uuid4``) so that two runs of one
scenario give identical books and a retry can be compared with a clean run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import pytest
from sqlalchemy.exc import OperationalError

import customerkit as ck
from customerkit.backends import memory
from customerkit.backends.sqlalchemy import SqlStore
from customerkit.backends.sqlalchemy._retry import is_transient
from customerkit.backends.sqlalchemy.store import MAX_ATTEMPTS
from customerkit.services._context import Context
from customerkit.testing import FakeClock

# Among the slowest files: `-m "not slow"` leaves them out of a quick loop; CI runs them.
pytestmark = pytest.mark.slow

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
STAFF = ck.Actor(user_id="staff", role=ck.Role.STAFF, location_id="loc-1")
FAR = ck.Actor(user_id="far", role=ck.Role.DEALER_ADMIN, location_id="loc-2")
LOCATIONS = ("loc-1", "loc-2")
#: Searches compared before and after: names, a city a merge fills, imported and new names.
QUERIES = ("john", "aurora", "hauling", "newco")
USERNAMES = ("jtires", "newbie", "other")


class InjectedFault(Exception):
    """The failure the tests inject into the storage."""


class Faults:
    """Counts injection points and raises at the armed one."""

    def __init__(self) -> None:
        self.points: list[str] = []
        self.fail_at: int | None = None
        self.raised: InjectedFault | None = None

    def point(self, label: str) -> None:
        self.points.append(label)
        if self.fail_at == len(self.points):
            self.raised = InjectedFault(f"injected at point {len(self.points)}: {label}")
            raise self.raised


class Ids:
    """Deterministic ids: a counter, rewindable to repeat a call with the same ids."""

    def __init__(self) -> None:
        self.next = 0

    def new(self) -> str:
        self.next += 1
        return f"{self.next:032x}"


#: The statements that are injection points on SQL (reads and savepoints are not: a failure there
#: is a failure before the next write, which is covered).
SQL_WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"}

_ACTIVE: list[Faults] = []  # the armed Faults of the memory patches (at most one)

MEMORY_WRITES: dict[type, tuple[str, ...]] = {
    memory._Customers: ("add", "update", "remove"),
    memory._Contacts: ("add", "update", "remove"),
    memory._Users: ("add",),
    memory._History: ("append", "remove_for_customer"),
    memory._Reference: ("add_company_type", "add_category"),
    memory._Settings: ("set_source_enabled",),
    memory._Merges: ("add", "update"),
    memory._Dismissals: ("add", "remove"),
    memory.MemoryUnitOfWork: ("commit",),
    memory.MemorySearchIndex: ("upsert", "remove", "bulk_load"),
}


def _faulty(label: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _ACTIVE:
            _ACTIVE[-1].point(label)
        return method(*args, **kwargs)

    return wrapper


@pytest.fixture
def ids(monkeypatch: pytest.MonkeyPatch) -> Ids:
    """Deterministic ids, and the memory store's write methods wrapped with injection points."""
    counter = Ids()
    monkeypatch.setattr(Context, "new_id", staticmethod(counter.new))
    for cls, names in MEMORY_WRITES.items():
        for name in names:
            monkeypatch.setattr(cls, name, _faulty(f"{cls.__name__}.{name}", getattr(cls, name)))
    return counter


def _sql_engine(store: object) -> Any:
    if type(store).__name__ != "SqlStore":
        return None
    return store.engine  # type: ignore[attr-defined]


@contextmanager
def armed(book: ck.Book, faults: Faults) -> Iterator[Faults]:
    """Route the store's injection points to ``faults`` for the duration of the block."""
    engine = _sql_engine(book.store)
    if isinstance(book.store, memory.MemoryStore):
        _ACTIVE.append(faults)
        try:
            yield faults
        finally:
            _ACTIVE.remove(faults)
        return
    assert engine is not None, f"no fault injection for {type(book.store).__name__}"
    from sqlalchemy import event

    def on_statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        if verb in SQL_WRITES:
            faults.point(verb)

    def on_commit(conn: Any) -> None:
        faults.point("COMMIT")

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        yield faults
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


def empty_book(make_book: Callable[[FakeClock], ck.Book], clock: FakeClock) -> ck.Book:
    """A book with no data, even when ``make_book`` hands every call of a test one database.

    On PostgreSQL ``make_book`` opens one database per test; tests here make many books per test
    (one per example), so every table but the schema version is emptied first. Close the previous
    book before making the next.
    """
    book = make_book(clock)
    engine = getattr(book.store, "engine", None)
    if engine is not None and engine.dialect.name == "postgresql":
        from sqlalchemy import MetaData, text

        key = str(engine.url)
        if key not in _REFLECTED:
            _REFLECTED[key] = MetaData()
            _REFLECTED[key].reflect(engine)
        metadata = _REFLECTED[key]
        tables = ", ".join(f'"{name}"' for name in metadata.tables if name != "schema_version")
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return book


# -- what "the book reads exactly as before" means ------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, ck.ChangeRecord):
        value = _unsequenced(value)
    if attrs.has(type(value)):
        return (type(value).__name__, _plain(attrs.asdict(value, recurse=False)))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not _empty(v)}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return value


def _empty(value: Any) -> bool:
    """Empty containers left behind by ``setdefault`` carry no data."""
    return isinstance(value, dict | list) and not value


def _unsequenced(record: ck.ChangeRecord) -> ck.ChangeRecord:
    """History without its sequence numbers: lists keep the order, and numbers a failed call
    drew from a PostgreSQL sequence are gone for good (sequences are not transactional)."""
    return attrs.evolve(record, seq=0)


_REFLECTED: dict[str, Any] = {}  # database URL -> reflected MetaData (the schema never changes)


def raw_dump(store: object) -> Any:
    """Every table of the backend, as plain sorted data (history ranked instead of numbered,
    the search vocabulary's words without their ids)."""
    if isinstance(store, memory.MemoryStore):
        skip = {"index", "history_seq"}
        return {
            name: _plain(value) for name, value in vars(store.state).items() if name not in skip
        }
    engine = _sql_engine(store)
    assert engine is not None, f"no raw dump for {type(store).__name__}"
    from sqlalchemy import MetaData, select

    key = str(engine.url)
    if key not in _REFLECTED:
        _REFLECTED[key] = MetaData()
        _REFLECTED[key].reflect(engine)
    metadata = _REFLECTED[key]
    dump = {}
    with engine.connect() as connection:
        for name, table in sorted(metadata.tables.items()):
            if name == "history":
                rows = connection.execute(select(table).order_by(table.c.seq))
                dump[name] = [(rank, *tuple(row)[1:]) for rank, row in enumerate(rows)]
            elif name == "search_vocab":
                # Its ids come from a sequence on PostgreSQL, which a rollback does not rewind;
                # the words are what search reads.
                dump[name] = sorted(connection.scalars(select(table.c.word)))
            else:
                rows = connection.execute(select(table))
                dump[name] = sorted((tuple(row) for row in rows), key=repr)
    return dump


def snapshot(book: ck.Book, id_count: int, merge_ids: list[str]) -> dict[str, Any]:
    """Everything a reader can see, through the repositories and the public API.

    ``id_count`` and ``merge_ids`` name every record a clean run of the scenario makes, so a
    record half-written by a failed call would show up here too.
    """
    known = [f"{n:032x}" for n in range(1, id_count + 1)]
    with book.store.unit_of_work() as uow:
        seen: dict[str, Any] = {
            "customers": {i: uow.customers.get(i) for i in known},
            "contacts": {i: uow.contacts.get(i) for i in known},
            "history": {i: list(map(_unsequenced, uow.history.for_customer(i))) for i in known},
            "merges": {i: uow.merges.get(i) for i in merge_ids},
            "live": {loc: [c.id for c in uow.customers.iter_location(loc)] for loc in LOCATIONS},
            "counts": {loc: uow.customers.count(loc) for loc in LOCATIONS},
            "usernames": {
                name: getattr(uow.customers.find_by_username(name), "id", None)
                for name in USERNAMES
            },
            "sources": {
                ext: getattr(uow.customers.find_by_source("dms", ext), "id", None)
                for ext in ("P-1", "P-2")
            },
        }
    seen["search"] = {
        q: [(h.customer, h.score, h.field) for h in book.customers.search(q, actor=STAFF)]
        for q in QUERIES
    }
    seen["recent"] = book.customers.recent(actor=STAFF)
    seen["raw"] = raw_dump(book.store)
    return seen


# -- scenarios ------------------------------------------------------------------------------------


@attrs.define
class World:
    """A book with customers, contacts and a source, made the same way every time."""

    book: ck.Book
    clock: FakeClock
    source: ck.InMemorySource
    c: dict[str, ck.Customer] = attrs.field(factory=dict)
    k: dict[str, ck.Contact] = attrs.field(factory=dict)
    merge_ids: list[str] = attrs.field(factory=list)

    def customer(
        self, key: str, name: str, number: str, actor: ck.Actor = ADMIN, **kw: Any
    ) -> ck.Customer:
        draft = ck.NewCustomer(company_name=name, customer_number=number, **kw)
        self.c[key] = self.book.customers.create(draft, actor=actor)
        return self.c[key]

    def contact(self, key: str, customer: str, first: str, last: str, **kw: Any) -> ck.Contact:
        draft = ck.NewContact(first_name=first, last_name=last, **kw)
        self.k[key] = self.book.contacts.add(self.c[customer].id, draft, actor=ADMIN)
        self.clock.advance(seconds=1)
        return self.k[key]

    def merged(self, result: ck.MergeResult) -> ck.MergeResult:
        assert result.merge_id is not None
        self.merge_ids.append(result.merge_id)
        return result


def build(make_book: Callable[[FakeClock], ck.Book]) -> World:
    clock = FakeClock()
    source = ck.InMemorySource(
        "dms",
        [
            ck.SourceRecord(
                external_id="P-1",
                data={"company_name": "Hauling Bros", "customer_number": "P-1", "city": "Denver"},
            ),
            ck.SourceRecord(
                external_id="P-2",
                data={"company_name": "Deere Hauling", "customer_number": "P-2"},
            ),
        ],
    )
    w = World(book=empty_book(make_book, clock), clock=clock, source=source)
    w.book.sources.register(source)
    w.book.sources.enable("dms", location_id="loc-1", actor=ADMIN)
    w.customer("jt", "Johnson Tires", "C-1", city="Denver", state="CO", username="jtires")
    w.customer("jd", "John Deere", "C-2")
    w.customer("far", "Johnson Far Away", "C-1", actor=FAR, city="Denver")
    w.contact("ann", "jt", "Ann", "Lee", email="ann@example.com")
    w.contact("anne", "jt", "Anne", "Lee", phone="303 555 0142")
    w.contact("bob", "jt", "Bob", "Lee", title="Owner")
    w.contact("deb", "jd", "Deb", "Ray", email="deb@example.com")
    w.book.contacts.record_communication(w.k["bob"].id, at=clock.now)
    w.clock.advance(minutes=1)
    return w


def _customers_to_merge(w: World) -> None:
    w.customer("jti", "Johnson Tires Inc", "N-1", city="Aurora", phone="303 555 0199")
    w.customer("jtc", "Johnson Tire Co", "N-2", state="CO", email="jtc@example.com")
    w.contact("ian", "jti", "Ian", "Ito")
    w.contact("ivy", "jti", "Ivy", "Ito")
    w.contact("tom", "jtc", "Tom", "Tu")


def s_contact_merge(w: World) -> Callable[[], Any]:
    ids = [w.k["anne"].id, w.k["bob"].id]
    return lambda: w.merged(w.book.contacts.merge(w.k["ann"].id, ids, actor=ADMIN))


def s_contact_unmerge(w: World) -> Callable[[], Any]:
    result = s_contact_merge(w)()
    w.clock.advance(minutes=1)
    return lambda: w.book.contacts.unmerge(result.merge_id, actor=ADMIN)


def s_customer_merge(w: World) -> Callable[[], Any]:
    _customers_to_merge(w)
    others = [w.c["jti"].id, w.c["jtc"].id]
    return lambda: w.merged(w.book.customers.merge(w.c["jd"].id, others, actor=ADMIN))


def s_customer_unmerge(w: World) -> Callable[[], Any]:
    result = s_customer_merge(w)()
    w.clock.advance(minutes=1)
    return lambda: w.book.customers.unmerge(result.merge_id, actor=ADMIN)


def s_delete_many(w: World) -> Callable[[], Any]:
    ids = [w.k["ann"].id, w.k["anne"].id, w.k["bob"].id]
    return lambda: w.book.contacts.delete_many(ids, actor=ADMIN)


def s_create_many(w: World) -> Callable[[], Any]:
    drafts = [
        ck.NewCustomer(company_name="Newco Tires", customer_number="N-1", username="newbie"),
        ck.NewCustomer(company_name="Newco Hauling", customer_number="N-2", city="Aurora"),
        ck.NewCustomer(company_name="Newco Fleet", kind=ck.CustomerKind.FLEET),
    ]
    return lambda: w.book.customers.create_many(drafts, actor=ADMIN)


def s_customer_delete(w: World) -> Callable[[], Any]:
    w.merged(w.book.contacts.merge(w.k["ann"].id, [w.k["anne"].id], actor=ADMIN))
    return lambda: w.book.customers.delete(w.c["jt"].id, actor=ADMIN)


def s_customer_delete_with_history(w: World) -> Callable[[], Any]:
    w.merged(w.book.contacts.merge(w.k["ann"].id, [w.k["anne"].id], actor=ADMIN))
    return lambda: w.book.customers.delete(w.c["jt"].id, actor=ADMIN, delete_history=True)


def s_contact_dismiss(w: World) -> Callable[[], Any]:
    return lambda: w.book.contacts.dismiss(w.k["ann"].id, w.k["anne"].id, actor=ADMIN)


def s_customer_undismiss(w: World) -> Callable[[], Any]:
    w.book.customers.dismiss(w.c["jt"].id, w.c["jd"].id, actor=ADMIN)
    w.clock.advance(minutes=1)
    return lambda: w.book.customers.undismiss(w.c["jd"].id, w.c["jt"].id, actor=ADMIN)


def s_customer_purge_with_dismissals(w: World) -> Callable[[], Any]:
    w.book.customers.dismiss(w.c["jt"].id, w.c["jd"].id, actor=ADMIN)
    w.book.contacts.dismiss(w.k["ann"].id, w.k["bob"].id, actor=ADMIN)
    return lambda: w.book.customers.delete(w.c["jt"].id, actor=ADMIN, delete_history=True)


def s_source_import(w: World) -> Callable[[], Any]:
    return lambda: w.book.sources.import_customer("dms", "P-1", actor=ADMIN)


def s_source_refresh(w: World) -> Callable[[], Any]:
    imported = w.book.sources.import_customer("dms", "P-1", actor=ADMIN)
    w.source.put(
        ck.SourceRecord(
            external_id="P-1",
            data={"company_name": "Hauling Brothers", "customer_number": "P-1", "state": "CO"},
        )
    )
    w.clock.advance(minutes=1)
    return lambda: w.book.sources.refresh_customer(imported.id, actor=ADMIN)


def s_customer_update(w: World) -> Callable[[], Any]:
    changes = {"customer_number": "C-9", "company_name": "Johnson Wheels", "city": "Aurora"}
    return lambda: w.book.customers.update(w.c["jt"].id, changes, actor=ADMIN)


def s_contact_add(w: World) -> Callable[[], Any]:
    draft = ck.NewContact(first_name="Cy", last_name="Lee", email="cy@example.com")
    return lambda: w.book.contacts.add(w.c["jt"].id, draft, actor=ADMIN)


def s_contact_update(w: World) -> Callable[[], Any]:
    return lambda: w.book.contacts.update(w.k["ann"].id, {"title": "Buyer"}, actor=ADMIN)


def s_contact_delete(w: World) -> Callable[[], Any]:
    return lambda: w.book.contacts.delete(w.k["ann"].id, actor=ADMIN)


def s_record_communication(w: World) -> Callable[[], Any]:
    return lambda: w.book.contacts.record_communication(w.k["ann"].id, at=w.clock.now)


SCENARIOS: dict[str, Callable[[World], Callable[[], Any]]] = {
    "contacts.merge": s_contact_merge,
    "contacts.unmerge": s_contact_unmerge,
    "customers.merge": s_customer_merge,
    "customers.unmerge": s_customer_unmerge,
    "contacts.delete_many": s_delete_many,
    "customers.create_many": s_create_many,
    "customers.delete": s_customer_delete,
    "customers.delete(delete_history=True)": s_customer_delete_with_history,
    "customers.delete(delete_history=True) with dismissals": s_customer_purge_with_dismissals,
    "contacts.dismiss": s_contact_dismiss,
    "customers.undismiss": s_customer_undismiss,
    "sources.import_customer": s_source_import,
    "sources.refresh_customer": s_source_refresh,
    "customers.update": s_customer_update,
    "contacts.add": s_contact_add,
    "contacts.update": s_contact_update,
    "contacts.delete": s_contact_delete,
    "contacts.record_communication": s_record_communication,
}


@attrs.frozen
class CleanRun:
    """What a run of a scenario without failures did: its ids, points and resulting book."""

    mark: int  # ids drawn before the call
    ids: int  # ids drawn after it
    merge_ids: list[str]
    after: dict[str, Any]
    points: list[str]


def clean_run(
    make_book: Callable[[FakeClock], ck.Book],
    ids: Ids,
    setup: Callable[[World], Callable[[], Any]],
) -> CleanRun:
    """Run a scenario once without failures: count its injection points, keep its state."""
    w = build(make_book)
    call = setup(w)
    mark = ids.next
    with armed(w.book, Faults()) as counted:
        call()
    after = snapshot(w.book, ids.next, w.merge_ids)
    w.book.close()
    return CleanRun(mark, ids.next, w.merge_ids, after, counted.points)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_failure_at_every_point_leaves_book_unchanged(
    make_book: Callable[[FakeClock], ck.Book], ids: Ids, scenario: str
) -> None:
    """T5: for every k, a failure at the k-th write (or commit) of the call changes nothing."""
    setup = SCENARIOS[scenario]
    clean = clean_run(make_book, ids, setup)
    mark, id_count, merge_ids, clean_after = clean.mark, clean.ids, clean.merge_ids, clean.after
    points = clean.points
    assert len(points) >= 2, f"{scenario} has too few injection points: {points}"

    for k in range(1, len(points) + 1):
        ids.next = 0
        w = build(make_book)
        call = setup(w)
        assert ids.next == mark
        before = snapshot(w.book, id_count, merge_ids)
        faults = Faults()
        faults.fail_at = k
        with armed(w.book, faults), pytest.raises(InjectedFault) as caught:
            call()
        # Unchanged, and not retried: a retry would have succeeded and raised nothing.
        assert caught.value is faults.raised, "the injected error reaches the caller unchanged"
        label = points[k - 1]
        assert snapshot(w.book, id_count, merge_ids) == before, (
            f"{scenario}: failing at point {k}/{len(points)} ({label}) changed the book"
        )
        # Usable afterwards: the same call with the same ids now succeeds as in a clean run.
        ids.next = mark
        call()
        assert snapshot(w.book, id_count, merge_ids) == clean_after, (
            f"{scenario}: after a failure at point {k} ({label}) the retry differs"
        )
        w.book.close()


def test_regression_memory_index_failure_during_commit(
    monkeypatch: pytest.MonkeyPatch, ids: Ids
) -> None:
    """A failure while the memory store updates its index at commit leaves search as it was."""
    book = ck.open_book(clock=FakeClock(), hasher=ck.PasswordHasher.for_tests())
    main = book.customers.create(
        ck.NewCustomer(company_name="John Deere", customer_number="C-2"), actor=ADMIN
    )
    other = book.customers.create(
        ck.NewCustomer(company_name="Deere Co", customer_number="C-3", city="Aurora"), actor=ADMIN
    )
    assert main.id < other.id  # commit indexes the main (upsert) before the other (remove)
    assert [h.customer.id for h in book.customers.search("aurora", actor=STAFF)] == [other.id]
    original, failed = memory.MemorySearchIndex.remove, []

    def remove_failing_once(self: Any, document_id: str) -> None:
        if not failed:
            failed.append(document_id)
            raise InjectedFault("index")
        original(self, document_id)

    monkeypatch.setattr(memory.MemorySearchIndex, "remove", remove_failing_once)
    with pytest.raises(InjectedFault):
        book.customers.merge(main.id, [other.id], actor=ADMIN)  # fills main's city "Aurora"
    assert book.customers.get(main.id, actor=STAFF).city == ""
    assert [h.customer.id for h in book.customers.search("aurora", actor=STAFF)] == [other.id]


def test_memory_bulk_index_failure_during_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large ``create_many`` indexes in bulk at commit; a failure there leaves search as it was."""
    book = ck.open_book(clock=FakeClock(), hasher=ck.PasswordHasher.for_tests())
    kept = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
    )

    original = memory.MemorySearchIndex.bulk_load

    def failing_bulk_load(self: Any, documents: Any) -> None:
        original(self, list(documents)[:150])  # half of them indexed, then the failure
        raise InjectedFault("bulk index")

    monkeypatch.setattr(memory.MemorySearchIndex, "bulk_load", failing_bulk_load)
    drafts = [
        ck.NewCustomer(company_name=f"Johnson {i}", customer_number=f"N-{i}") for i in range(300)
    ]
    with pytest.raises(InjectedFault):
        book.customers.create_many(drafts, actor=ADMIN)
    monkeypatch.undo()
    assert [c.id for c in book.customers.recent(actor=STAFF)] == [kept.id]
    # "Johnson 0" ... would rank before "Johnson Tires": a left-over entry would take the place.
    assert [h.customer.id for h in book.customers.search("johnson", actor=STAFF, limit=1)] == [
        kept.id
    ]
    assert len(book.customers.create_many(drafts, actor=ADMIN)) == 300  # usable afterwards
    assert len(book.customers.search("johnson", actor=STAFF, limit=500)) == 301


# -- T11: transient failures are retried, the whole use-case at a time ----------------------------


class TransientFaults(Faults):
    """Raises what the driver raises for a serialization failure at the armed points."""

    def __init__(self, fail_at: Callable[[int], bool]) -> None:
        super().__init__()
        self.fails = fail_at
        self.failures = 0

    def point(self, label: str) -> None:
        self.points.append(label)
        if self.fails(len(self.points)):
            self.failures += 1
            raise transient_error(label)


class _DriverError(Exception):
    sqlstate = "40001"  # serialization_failure; 40P01 (deadlock) is handled the same way


def transient_error(statement: str) -> OperationalError:
    return OperationalError(statement, None, _DriverError("could not serialize access"))


@contextmanager
def ids_rewound_per_attempt(monkeypatch: pytest.MonkeyPatch, ids: Ids, mark: int) -> Iterator[None]:
    """Every attempt of the store's ``run`` draws the ids a clean run drew, so books compare."""
    original = SqlStore.run

    def run(self: SqlStore, work: Callable[[], Any], **kwargs: Any) -> Any:
        def attempt() -> Any:
            ids.next = mark
            return work()

        return original(self, attempt, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SqlStore, "run", run)
        yield


SQL_BACKENDS = pytest.mark.parametrize("make_book", ["sqlite", "postgresql"], indirect=True)


@SQL_BACKENDS
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_transient_failure_at_every_point_is_retried(
    make_book: Callable[[FakeClock], ck.Book],
    ids: Ids,
    scenario: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T11: a serialization failure or deadlock at the k-th write (or commit) of a call, for
    every k, rolls the whole unit of work back and runs the call again: it succeeds, every
    write lands once, and the book equals a clean run's."""
    setup = SCENARIOS[scenario]
    clean = clean_run(make_book, ids, setup)
    mark, id_count, merge_ids, clean_after = clean.mark, clean.ids, clean.merge_ids, clean.after
    points = len(clean.points)

    for k in range(1, points + 1):
        ids.next = 0
        w = build(make_book)
        call = setup(w)
        faults = TransientFaults(fail_at=lambda n, k=k: n == k)
        caplog.clear()
        with ids_rewound_per_attempt(monkeypatch, ids, mark), armed(w.book, faults):
            call()
        assert faults.failures == 1
        assert len(faults.points) == k + points, "one failed attempt up to k, then a whole one"
        assert snapshot(w.book, id_count, merge_ids) == clean_after, (
            f"{scenario}: a retry after a transient failure at point {k} differs from a clean run"
        )
        assert "transient database error 40001; retry 1 of 5" in caplog.text
        w.book.close()


@SQL_BACKENDS
def test_retries_stop_after_five_attempts(
    make_book: Callable[[FakeClock], ck.Book], ids: Ids
) -> None:
    """T11: a conflict that persists reaches the caller after five attempts as the rule's error
    (``ConcurrentModification``, still known as transient), never the driver's; nothing lands."""
    w = build(make_book)
    call = s_contact_merge(w)
    before = snapshot(w.book, ids.next + 10, [])
    faults = TransientFaults(fail_at=lambda n: True)
    with armed(w.book, faults), pytest.raises(ck.ConcurrentModification) as caught:
        call()
    assert is_transient(caught.value)
    assert "version" in str(caught.value.field)
    assert faults.failures == MAX_ATTEMPTS == 5
    assert snapshot(w.book, ids.next + 10, []) == before


def test_a_use_case_inside_another_is_retried_as_part_of_it() -> None:
    """A use-case that another runs (``create`` runs ``create_many``) is one attempt of the
    outer: the store runs the outer once, never the inner on its own."""
    book = ck.open_book(clock=FakeClock(), hasher=ck.PasswordHasher.for_tests())
    runs: list[str] = []
    original = book.store.run

    def counting(work: Callable[[], Any]) -> Any:
        runs.append("run")
        return original(work)

    book.store.run = counting  # type: ignore[method-assign]
    book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
    )
    assert runs == ["run"]
    ctx = book.customers._ctx
    assert ctx.run(lambda: ctx.run(lambda: "inner")) == "inner"
    assert runs == ["run", "run"]


# -- driver errors reach the caller as library errors, without personal data (issue 14) ----------


def personal_values(w: World) -> set[str]:
    """The personal values a scenario's book holds (names, emails, phones, usernames)."""
    with w.book.store.unit_of_work(read_only=True) as uow:
        customers = [c for i in range(1, 200) if (c := uow.customers.get(f"{i:032x}"))]
        contacts = [c for i in range(1, 200) if (c := uow.contacts.get(f"{i:032x}"))]
    values = {
        *(getattr(c, name) for c in customers for name in ("company_name", "email", "phone")),
        *(c.username for c in customers if c.username),
        *(c.password_hash for c in customers if c.password_hash),
        *(getattr(k, name) for k in contacts for name in ("first_name", "last_name", "email")),
        *(k.phone for k in contacts),
    }
    return {value for value in values if value and len(value) >= 3}


def error_texts(error: BaseException) -> list[str]:
    """The text and repr of an error and of every error a traceback shows chained to it."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None and len(texts) < 20:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return texts


def assert_no_personal_data(error: BaseException, values: set[str]) -> None:
    """No personal value appears in the error's text, nor in any error chained to it."""
    leaks = {value for text in error_texts(error) for value in values if value in text}
    assert not leaks, f"{type(error).__name__} quotes personal data: {sorted(leaks)}"


class DriverFaults(Faults):
    """Raises what the database driver raises for a failed statement at the armed point."""

    def __init__(self, fail_at: int, driver_error: Callable[[], Exception]) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.driver_error = driver_error

    def point(self, label: str) -> None:
        self.points.append(label)
        if self.fail_at == len(self.points) and label != "COMMIT":
            raise self.driver_error()  # SQLAlchemy wraps it, quoting the statement


def _driver_error(book: ck.Book) -> Callable[[], Exception]:
    """A disk failure as the book's driver reports it."""
    if _sql_engine(book.store).dialect.name == "sqlite":
        import sqlite3

        def sqlite_error() -> Exception:
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
            error.sqlite_errorname = "SQLITE_IOERR"  # type: ignore[attr-defined]
            return error

        return sqlite_error
    import psycopg

    return lambda: psycopg.errors.DiskFull("could not extend file")


@SQL_BACKENDS
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_driver_failure_at_every_write_is_a_storage_error_without_personal_data(
    make_book: Callable[[FakeClock], ck.Book], ids: Ids, scenario: str
) -> None:
    """A driver error at any write of a call reaches the caller as ``StorageError``, with the
    driver's error chained, and neither quotes a name, email, phone, username or hash of the
    book (the statement's parameters are hidden); nothing is written."""
    setup = SCENARIOS[scenario]
    clean = clean_run(make_book, ids, setup)
    writes = [k for k, label in enumerate(clean.points, start=1) if label != "COMMIT"]
    for k in writes:
        ids.next = 0
        w = build(make_book)
        call = setup(w)
        values = personal_values(w) | {"jtc@example.com", "303 555 0199", "newbie", "Ian", "Ivy"}
        before = snapshot(w.book, clean.ids, clean.merge_ids)
        faults = DriverFaults(k, _driver_error(w.book))
        with armed(w.book, faults), pytest.raises(ck.StorageError) as caught:
            call()
        assert type(caught.value) is ck.StorageError
        assert caught.value.__cause__ is not None
        assert_no_personal_data(caught.value, values)
        assert snapshot(w.book, clean.ids, clean.merge_ids) == before
        w.book.close()


@SQL_BACKENDS
def test_retried_use_case_reads_a_generator_argument_once(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """T11 regression: ``create_many`` over a generator, and ``add_category`` with its required
    fields from a generator, survive one transient failure: the retry sees every item (before,
    the first attempt used the generator up and the retry stored nothing)."""
    book = empty_book(make_book, FakeClock())
    drafts = (ck.NewCustomer(company_name=f"Retry Co {n}", customer_number=f"R-{n}") for n in "123")
    faults = TransientFaults(fail_at=lambda n: n == 2)
    with armed(book, faults):
        created = book.customers.create_many(drafts, actor=ADMIN)
    assert faults.failures == 1
    assert sorted(c.customer_number for c in created) == ["R-1", "R-2", "R-3"]
    found = book.customers.search("retry", actor=ADMIN, limit=10)
    assert len(found) == 3

    faults = TransientFaults(fail_at=lambda n: n == 1)
    with armed(book, faults):
        category = book.reference.add_category(
            "Gold", required_fields=(name for name in ("email", "vat_id")), actor=ADMIN
        )
    assert faults.failures == 1
    assert category.required_fields == ("email", "vat_id")
    assert book.reference.categories() == [category]
    book.close()
