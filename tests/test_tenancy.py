"""Rule P2 (T14): no call by an actor of one location returns or changes another location's data.

A "victim" location holds customers (local, fleet, imported, merged, deleted), contacts (merged,
external users, fleet-managed), history, merges and users. An "attacker" location holds look-alike
records (same names, emails and phones) so duplicate detection is tempted across the border.
Hypothesis then plays random sequences of calls by attacker actors of every role (fleet users
naming their own fleet or the victim's) with arguments drawn from both locations' ids. After every
call:

* nothing it returned (records, hits, reports, rows, exceptions' attributes) holds a victim id
  or a victim-only value; an error message may only echo ids the caller passed in;
* the victim location reads exactly as before (raw records with tombstones, contacts, history,
  merges, source links, searches, duplicates).
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import customerkit as ck
from customerkit.testing import FakeClock

# Among the slowest files: `-m "not slow"` leaves them out of a quick loop; CI runs them.
pytestmark = pytest.mark.slow

VICTIM = ck.Actor(user_id="vadmin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
ATTACKER_ADMIN = ck.Actor(user_id="aadmin", role=ck.Role.DEALER_ADMIN, location_id="loc-2")
#: Text only the victim's records hold: finding it anywhere in an answer is a leak.
VICTIM_MARK = "1 Victim Way"
#: The victim's external user's email: the attacker tries it (rule K3 is book-wide): no secret.
SECRET_EMAIL = "ann@victim.example"
#: An email only the victim knows.
VICTIM_EMAIL = "bob@victim.example"


@attrs.define
class World:
    book: ck.Book
    clock: FakeClock
    victim_customers: list[str] = attrs.field(factory=list)
    victim_contacts: list[str] = attrs.field(factory=list)
    victim_merges: list[str] = attrs.field(factory=list)
    victim_fleet: str = ""
    attacker_customers: list[str] = attrs.field(factory=list)
    attacker_contacts: list[str] = attrs.field(factory=list)
    attacker_fleet: str = ""

    def victim_ids(self) -> set[str]:
        return {*self.victim_customers, *self.victim_contacts, *self.victim_merges, "vstaff"}


def build(make_book: Callable[[FakeClock], ck.Book]) -> World:
    clock = FakeClock()
    book = empty_book(make_book, clock)
    w = World(book=book, clock=clock)
    source = ck.InMemorySource(
        "dms",
        [
            ck.SourceRecord(
                external_id="P-1",
                data={"company_name": "Zebulon Imports", "customer_number": "P-1"},
            ),
            ck.SourceRecord(
                external_id="P-2", data={"company_name": "Zebulon Parts", "customer_number": "P-2"}
            ),
        ],
    )
    book.sources.register(source)
    for actor in (VICTIM, ATTACKER_ADMIN):
        book.sources.enable("dms", location_id=actor.location_id, actor=actor)

    def customer(actor: ck.Actor, name: str, number: str, **kw: Any) -> ck.Customer:
        draft = ck.NewCustomer(company_name=name, customer_number=number, **kw)
        return book.customers.create(draft, actor=actor)

    def contact(actor: ck.Actor, customer_id: str, first: str, last: str, **kw: Any) -> str:
        draft = ck.NewContact(first_name=first, last_name=last, **kw)
        return book.contacts.add(customer_id, draft, actor=actor).id

    # The victim: loc-1.
    common = {"phone": "303 555 0142", "email": "ops@zebulon.example", "city": "Denver"}
    v1 = customer(VICTIM, "Zebulon Freight", "C-1", address_line1=VICTIM_MARK, **common)
    v2 = customer(VICTIM, "Zebulon Freight LLC", "C-2", address_line1=VICTIM_MARK, **common)
    v3 = customer(VICTIM, "Zebulon Freight Co", "C-3", address_line1=VICTIM_MARK)
    vf = customer(VICTIM, "Victim Fleet", "F-1", kind=ck.CustomerKind.FLEET)
    gone = customer(VICTIM, "Zebulon Gone", "C-4", address_line1=VICTIM_MARK)
    imported = book.sources.import_customer("dms", "P-1", actor=VICTIM)
    k1 = contact(VICTIM, v1.id, "Ann", "Lee", email=SECRET_EMAIL, external_user=True)
    k2 = contact(VICTIM, v1.id, "Anne", "Lee", phone="303 555 0142")
    k3 = contact(VICTIM, v1.id, "Bob", "Smith", email=VICTIM_EMAIL)
    kf = contact(VICTIM, vf.id, "Fay", "Fleet")
    kv3 = contact(VICTIM, v3.id, "Cy", "Cole")
    # Pairs of neighbouring ids, so the exhaustive test below names them together.
    book.customers.dismiss(v1.id, v2.id, actor=VICTIM)
    book.contacts.dismiss(k2, k3, actor=VICTIM)  # k2 is merged below: read through it
    w.victim_merges.append(str(book.contacts.merge(k1, [k2], actor=VICTIM).merge_id))
    w.victim_merges.append(str(book.customers.merge(v2.id, [v3.id], actor=VICTIM).merge_id))
    book.customers.delete(gone.id, actor=VICTIM)
    book.users.add(
        ck.User(id="vstaff", name="Vic Staff", email="vic@victim.example",
                role=ck.Role.STAFF, location_id="loc-1"),
        actor=VICTIM,
    )  # fmt: skip
    w.victim_customers = [v1.id, v2.id, v3.id, vf.id, gone.id, imported.id]
    w.victim_contacts = [k1, k2, k3, kf, kv3]
    w.victim_fleet = vf.id

    # The attacker: loc-2, with look-alikes of the victim's records.
    a1 = customer(ATTACKER_ADMIN, "Zebulon Freight", "C-1", **common)
    a2 = customer(ATTACKER_ADMIN, "Zebulon Freight Inc", "C-2", **common)
    af = customer(ATTACKER_ADMIN, "Attacker Fleet", "F-1", kind=ck.CustomerKind.FLEET)
    w.attacker_customers = [a1.id, a2.id, af.id]
    w.attacker_contacts = [
        contact(ATTACKER_ADMIN, a1.id, "Ann", "Lee", email="ann@attacker.example"),
        contact(ATTACKER_ADMIN, a1.id, "Anne", "Lee", phone="303 555 0142"),
        contact(ATTACKER_ADMIN, af.id, "Al", "Fleet"),
    ]
    w.attacker_fleet = af.id
    book.users.add(
        ck.User(id="astaff", name="Al Staff", email="al@attacker.example",
                role=ck.Role.STAFF, location_id="loc-2"),
        actor=ATTACKER_ADMIN,
    )  # fmt: skip
    return w


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

        metadata = MetaData()
        metadata.reflect(engine)
        tables = ", ".join(f'"{name}"' for name in metadata.tables if name != "schema_version")
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return book


def victim_state(w: World) -> Any:
    """Everything of the victim location, tombstones and history included."""
    book = w.book
    with book.store.unit_of_work() as uow:
        raw = {
            "customers": [uow.customers.get(i) for i in w.victim_customers],
            "contacts": [uow.contacts.get(i) for i in w.victim_contacts],
            "contacts_of": [uow.contacts.for_customer(i) for i in w.victim_customers],
            "history": [uow.history.for_customer(i) for i in w.victim_customers],
            "merges": [uow.merges.get(i) for i in w.victim_merges],
            "dismissals": [
                uow.dismissals.for_location("loc-1", k) for k in ("contact", "customer")
            ],
            "sources": [
                c if c is not None and c.location_id == "loc-1" else None
                for c in (uow.customers.find_by_source("dms", e) for e in ("P-1", "P-2"))
            ],
            "count": uow.customers.count("loc-1"),
            "users": uow.users.for_location("loc-1"),
        }
    raw["search"] = book.customers.search("zebulon", actor=VICTIM)
    raw["recent"] = book.customers.recent(actor=VICTIM, within=timedelta(days=3650))
    return raw


def victim_duplicates(w: World) -> Any:
    """The victim's duplicate reports (derived from its records: compared once per program)."""
    return (
        w.book.customers.find_duplicates(actor=VICTIM).pairs,
        w.book.contacts.find_duplicates(actor=VICTIM).pairs,
    )


# -- what an attacker can call --------------------------------------------------------------------


@attrs.define
class Args:
    """Arguments drawn for one call: picks into the pools of both locations' ids."""

    w: World
    picks: list[int]

    def _pick(self, pool: list[str], n: int) -> str:
        return pool[self.picks[n % len(self.picks)] % len(pool)]

    def customer(self, n: int = 0) -> str:
        return self._pick([*self.w.victim_customers, *self.w.attacker_customers], n)

    def contact(self, n: int = 0) -> str:
        return self._pick([*self.w.victim_contacts, *self.w.attacker_contacts], n)

    def merge(self) -> str:
        return self._pick(self.w.victim_merges, 0)

    def external_id(self) -> str:
        return self._pick(["P-1", "P-2"], 0)


LOOK_ALIKE = ck.NewCustomer(
    company_name="Zebulon Freight", customer_number="C-9", phone="303 555 0142",
    email="ops@zebulon.example", address_line1="1 Attacker Way",
)  # fmt: skip
LOOK_ALIKE_CONTACT = ck.NewContact(first_name="Ann", last_name="Lee", email=SECRET_EMAIL)
Call = Callable[[ck.Book, ck.Actor, Args], Any]


def _export(fmt: str) -> Call:
    def call(b: ck.Book, a: ck.Actor, x: Args) -> Any:
        out = io.StringIO()
        ids = None if x.picks[0] % 2 else [x.customer(), x.customer(1)]
        b.customers.export(out, actor=a, format=fmt, ids=ids)  # type: ignore[arg-type]
        return out.getvalue()

    return call


CALLS: dict[str, Call] = {
    "customers.get": lambda b, a, x: b.customers.get(x.customer(), actor=a),
    "customers.update": lambda b, a, x: b.customers.update(
        x.customer(), {"city": "Boulder"}, actor=a
    ),
    "customers.update_number": lambda b, a, x: b.customers.update(
        x.customer(), {"customer_number": "X-1"}, actor=a
    ),
    "customers.delete": lambda b, a, x: b.customers.delete(x.customer(), actor=a),
    "customers.purge": lambda b, a, x: b.customers.delete(
        x.customer(), actor=a, delete_history=True
    ),
    "customers.search": lambda b, a, x: b.customers.search("zebulon", actor=a),
    "customers.search_number": lambda b, a, x: b.customers.search(
        "C-1", actor=a, field=ck.SearchField.NUMBER
    ),
    "customers.recent": lambda b, a, x: b.customers.recent(actor=a, text="zebulon"),
    "customers.export_csv": _export("csv"),
    "customers.export_jsonl": _export("jsonl"),
    "customers.find_duplicates": lambda b, a, x: b.customers.find_duplicates(actor=a),
    "customers.find_similar": lambda b, a, x: b.customers.find_similar(LOOK_ALIKE, actor=a),
    "customers.create_look_alike": lambda b, a, x: b.customers.create(LOOK_ALIKE, actor=a),
    "customers.merge": lambda b, a, x: b.customers.merge(x.customer(), [x.customer(1)], actor=a),
    "customers.merge_dry_run": lambda b, a, x: b.customers.merge(
        x.customer(), [x.customer(1)], actor=a, dry_run=True
    ),
    "customers.unmerge": lambda b, a, x: b.customers.unmerge(x.merge(), actor=a),
    "customers.dismiss": lambda b, a, x: b.customers.dismiss(x.customer(), x.customer(1), actor=a),
    "customers.undismiss": lambda b, a, x: b.customers.undismiss(
        x.customer(), x.customer(1), actor=a
    ),
    "customers.dismissed": lambda b, a, x: b.customers.dismissed(actor=a),
    "customers.assign_staff": lambda b, a, x: b.customers.assign_staff(
        x.customer(), ["vstaff"] if x.picks[1] % 2 else ["astaff"], actor=a
    ),
    "contacts.add": lambda b, a, x: b.contacts.add(
        x.customer(), ck.NewContact(first_name="Eve", last_name="Ill"), actor=a
    ),
    "contacts.add_external_user": lambda b, a, x: b.contacts.add(
        x.customer(),
        ck.NewContact(first_name="Eve", last_name="Ill", email=SECRET_EMAIL, external_user=True),
        actor=a,
    ),
    "contacts.get": lambda b, a, x: b.contacts.get(x.contact(), actor=a),
    "contacts.list": lambda b, a, x: b.contacts.list(x.customer(), actor=a),
    "contacts.update": lambda b, a, x: b.contacts.update(x.contact(), {"title": "Pwned"}, actor=a),
    "contacts.delete": lambda b, a, x: b.contacts.delete(x.contact(), actor=a),
    "contacts.delete_many": lambda b, a, x: b.contacts.delete_many(
        [x.contact(), x.contact(1)], actor=a
    ),
    "contacts.merge": lambda b, a, x: b.contacts.merge(x.contact(), [x.contact(1)], actor=a),
    "contacts.unmerge": lambda b, a, x: b.contacts.unmerge(x.merge(), actor=a),
    "contacts.dismiss": lambda b, a, x: b.contacts.dismiss(x.contact(), x.contact(1), actor=a),
    "contacts.undismiss": lambda b, a, x: b.contacts.undismiss(x.contact(), x.contact(1), actor=a),
    "contacts.dismissed": lambda b, a, x: b.contacts.dismissed(actor=a),
    "contacts.dismissed_of": lambda b, a, x: b.contacts.dismissed(
        actor=a, customer_id=x.customer()
    ),
    "contacts.unused": lambda b, a, x: b.contacts.unused(x.customer(), actor=a),
    "contacts.recipients": lambda b, a, x: b.contacts.recipients(x.customer(), actor=a),
    "contacts.record_communication": lambda b, a, x: b.contacts.record_communication(
        x.contact(), actor=a
    ),
    "contacts.find_duplicates": lambda b, a, x: b.contacts.find_duplicates(actor=a),
    "contacts.find_duplicates_of": lambda b, a, x: b.contacts.find_duplicates(
        actor=a, customer_id=x.customer()
    ),
    "contacts.find_similar": lambda b, a, x: b.contacts.find_similar(LOOK_ALIKE_CONTACT, actor=a),
    "contacts.find_similar_of": lambda b, a, x: b.contacts.find_similar(
        LOOK_ALIKE_CONTACT, actor=a, customer_id=x.customer()
    ),
    "history.for_customer": lambda b, a, x: b.history.for_customer(x.customer(), actor=a),
    "sources.search": lambda b, a, x: b.sources.search("dms", "zebulon", actor=a),
    "sources.import_customer": lambda b, a, x: b.sources.import_customer(
        "dms", x.external_id(), actor=a
    ),
    "sources.refresh_customer": lambda b, a, x: b.sources.refresh_customer(x.customer(), actor=a),
    "users.get": lambda b, a, x: b.users.get("vstaff" if x.picks[0] % 2 else "astaff", actor=a),
    "users.list": lambda b, a, x: b.users.list(actor=a),
}

# -- finding victim data in an answer -------------------------------------------------------------


def leaks(value: Any, secrets: set[str], depth: int = 0) -> list[str]:  # noqa: PLR0911
    """The secrets found anywhere in ``value`` (records, containers, strings, attributes)."""
    if depth > 25:
        return []
    deeper = depth + 1
    if isinstance(value, str):
        return [s for s in secrets if s in value]
    if isinstance(value, bytes | int | float | bool | enum.Enum) or value is None:
        return []
    if attrs.has(type(value)):
        return leaks(attrs.asdict(value, recurse=False), secrets, deeper)
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in leaks((k, v), secrets, deeper)]
    if isinstance(value, list | tuple | set | frozenset):
        return [x for item in value for x in leaks(item, secrets, deeper)]
    if isinstance(value, BaseException):
        return leaks((str(value), vars(value)), secrets, deeper)
    if hasattr(value, "to_records"):  # DuplicateReport and friends
        return leaks(value.to_records(), secrets, deeper)
    if hasattr(value, "__dict__"):
        return leaks(vars(value), secrets, deeper)
    return leaks(repr(value), secrets, deeper)


def attacker(role: ck.Role, fleet: str, w: World) -> ck.Actor:
    fleet_id = None
    if role is ck.Role.FLEET_USER:
        fleet_id = w.victim_fleet if fleet == "victim" else w.attacker_fleet
    return ck.Actor(user_id="mallory", role=role, location_id="loc-2", fleet_customer_id=fleet_id)


calls = st.tuples(
    st.sampled_from(sorted(CALLS)),
    st.sampled_from(list(ck.Role)),
    st.sampled_from(["own", "victim"]),
    st.lists(st.integers(0, 10_000), min_size=2, max_size=2),
)


def run_attack(w: World, program: list[tuple[str, ck.Role, str, list[int]]]) -> None:
    before, duplicates = victim_state(w), victim_duplicates(w)
    secrets = w.victim_ids() | {VICTIM_MARK, VICTIM_EMAIL, "loc-1"}
    for name, role, fleet, picks in program:
        actor = attacker(role, fleet, w)
        args = Args(w, picks)
        passed = {args.customer(), args.customer(1), args.contact(), args.contact(1)}
        passed |= {args.merge(), w.victim_fleet, "vstaff", "astaff"}
        try:
            answer = CALLS[name](w.book, actor, args)
        except ck.CustomerKitError as error:
            found = set(leaks(error, secrets)) - passed
            assert not found, f"{name} by {role.name}: the error leaks {found}: {error}"  # noqa: PT017
        else:
            found = set(leaks(answer, secrets))
            assert not found, f"{name} by {role.name} returned victim data {found}"
        assert victim_state(w) == before, f"{name} by {role.name} changed the victim's data"
    assert victim_duplicates(w) == duplicates, "the victim's duplicates changed"


def _backend(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params.get("make_book", "memory")) if callspec else "memory"


#: Examples per backend: a fresh book per example costs a database on SQL backends.
EXAMPLES = {"memory": None, "sqlite": 50, "postgresql": 25}


def test_p2_no_call_crosses_locations(
    make_book: Callable[[FakeClock], ck.Book], request: pytest.FixtureRequest
) -> None:
    """Rule P2: random calls by another location's actors never read or change the victim's data."""
    examples = EXAMPLES.get(_backend(request))
    overrides: dict[str, Any] = {
        "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    }
    if examples is not None:
        overrides["max_examples"] = min(examples, settings.default.max_examples)

    @settings(**overrides)
    @given(program=st.lists(calls, min_size=1, max_size=12))
    def attack(program: list[tuple[str, ck.Role, str, list[int]]]) -> None:
        w = build(make_book)
        try:
            run_attack(w, program)
        finally:
            w.book.close()

    attack()


def test_p2_every_call_against_every_victim_record(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """Rule P2, exhaustively: every call, by an admin and by a fleet user naming the victim's fleet,
    on every victim customer and contact id (one world: the attacker's own changes pile up)."""
    w = build(make_book)
    picks = range(max(len(w.victim_customers), len(w.victim_contacts)))
    program = [
        (name, role, fleet, [pick, pick + 1])
        for name in sorted(CALLS)
        for role, fleet in ((ck.Role.DEALER_ADMIN, "own"), (ck.Role.FLEET_USER, "victim"))
        for pick in picks
    ]
    run_attack(w, program)
    w.book.close()


def test_regression_import_leaks_other_locations_customer(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """Rules D4, P2: a source record imported at one location does not exist for another one."""
    w = build(make_book)
    try:
        w.book.sources.import_customer("dms", "P-1", actor=ATTACKER_ADMIN)
    except ck.AlreadyImported as error:  # refusing is fine, naming the victim's record is not
        assert not leaks(error, w.victim_ids()), "names the victim's customer"  # noqa: PT017


def test_regression_external_user_leaks_other_locations_contact(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """Rules K3, P2: the external-user clash may be refused, but without naming the victim's id."""
    w = build(make_book)
    draft = ck.NewContact(first_name="Eve", last_name="Ill", email=SECRET_EMAIL, external_user=True)
    with pytest.raises(ck.DuplicateExternalUser) as caught:
        w.book.contacts.add(w.attacker_customers[0], draft, actor=ATTACKER_ADMIN)
    assert not leaks(caught.value, w.victim_ids())


@pytest.mark.parametrize("kind", ["contact", "customer"])
def test_regression_merge_error_leaks_where_a_record_was_merged(
    make_book: Callable[[FakeClock], ck.Book], kind: str
) -> None:
    """Rule P2: naming another location's merged record as "other" tells nothing about it."""
    w = build(make_book)
    if kind == "contact":
        merged, main, service = w.victim_contacts[1], w.attacker_contacts[0], w.book.contacts
    else:
        merged, main, service = w.victim_customers[2], w.attacker_customers[0], w.book.customers
    with pytest.raises(ck.CustomerKitError) as caught:
        service.merge(main, [merged], actor=ATTACKER_ADMIN)
    assert not (set(leaks(caught.value, w.victim_ids())) - {merged})
