"""Races (issue 7 item 3, RELIABILITY T6-T9): many writers at once, started by one barrier.

Every test runs 8 threads on each backend: the memory backend (one book shared by the threads),
an SQLite file and a real PostgreSQL database, each either shared by the threads as one book
(one engine, a pooled connection per unit of work) or opened by every thread on its own (one
engine per thread, as separate processes of an application would). Each test asserts how many
calls won, the exact error every loser got (a ``CustomerKitError``, never a driver error) and the
state the book is left in: records, tombstones and history.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from sqlalchemy import text

import customerkit as ck
from customerkit.backends.sqlalchemy import SqlStore
from customerkit.backends.sqlalchemy._retry import is_transient
from customerkit.services import merge as merging
from customerkit.testing import FakeClock

# Among the slowest files: `-m "not slow"` leaves them out of a quick loop; CI runs them.
pytestmark = pytest.mark.slow

T = TypeVar("T")

THREADS = 8
ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
MANAGER = ck.Actor(user_id="manager", role=ck.Role.SERVICE_MANAGER, location_id="loc-1")
HASHER = ck.PasswordHasher.for_tests()
#: (backend, whether every thread opens its own book on the same database)
SETUPS = [
    pytest.param(("memory", False), id="memory"),
    pytest.param(("sqlite", False), id="sqlite-shared"),
    pytest.param(("sqlite", True), id="sqlite-own"),
    pytest.param(("postgresql", False), id="postgresql-shared", marks=pytest.mark.postgres),
    pytest.param(("postgresql", True), id="postgresql-own", marks=pytest.mark.postgres),
]


@pytest.fixture(params=SETUPS)
def books(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ck.Book]]:
    """One book per thread: the same book ``THREADS`` times, or ``THREADS`` books on one DB."""
    backend, own = request.param
    url: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'book.db'}"
    elif backend == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    clock = FakeClock()
    opened = [ck.open_book(url, clock=clock, hasher=HASHER) for _ in range(THREADS if own else 1)]
    try:
        yield opened if own else opened * THREADS
    finally:
        for book in opened:
            book.close()


def race(calls: Sequence[Callable[[], T]]) -> list[T | BaseException]:
    """Run every call in its own thread, all released at once; each call's result or error."""
    barrier = threading.Barrier(len(calls), timeout=30)
    outcomes: list[T | BaseException] = [RuntimeError("never ran")] * len(calls)

    def run(position: int) -> None:
        try:
            barrier.wait()
            outcomes[position] = calls[position]()
        except BaseException as error:
            outcomes[position] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer hangs: deadlock?"
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert_no_personal_data(outcome)
    return outcomes


#: Every personal value the tests put in a book (names, emails, usernames): no error quotes one.
PERSONAL: set[str] = set()


def personal(*values: str | None) -> None:
    """Note values an error must never quote."""
    PERSONAL.update(value for value in values if value and len(value) >= 3)


def assert_no_personal_data(error: BaseException) -> None:
    """Neither the error nor any error chained to it quotes a personal value in play."""
    texts, seen = [], error
    while seen is not None and len(texts) < 20:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    leaks = {value for text in texts for value in PERSONAL if value in text}
    assert not leaks, f"{type(error).__name__} quotes personal data: {sorted(leaks)}"


def split(outcomes: Sequence[T | BaseException]) -> tuple[list[T], list[BaseException]]:
    """The results and the errors of a race."""
    wins = [o for o in outcomes if not isinstance(o, BaseException)]
    return wins, [o for o in outcomes if isinstance(o, BaseException)]


def assert_all(errors: Sequence[BaseException], *kinds: type[ck.CustomerKitError]) -> None:
    """Every error is exactly one of ``kinds`` (a driver error or a subclass surprise fails)."""
    assert all(type(error) in kinds for error in errors), [repr(e) for e in errors]


def actions(book: ck.Book, customer_id: str) -> list[tuple[str, str]]:
    """``(entity id, action)`` of the customer's history, oldest first."""
    return [(r.entity_id, r.action) for r in book.history.for_customer(customer_id, actor=ADMIN)]


def new_customer(book: ck.Book, name: str, number: str, **values: Any) -> ck.Customer:
    draft = ck.NewCustomer(company_name=name, customer_number=number, **values)
    personal(name, draft.username)
    return book.customers.create(draft, actor=ADMIN)


def new_contacts(book: ck.Book, customer_id: str, count: int) -> list[ck.Contact]:
    personal(*(f"ann{i}@example.com" for i in range(count)), *(f"Ann{i}" for i in range(count)))
    return [
        book.contacts.add(
            customer_id,
            ck.NewContact(first_name=f"Ann{i}", last_name="Lee", email=f"ann{i}@example.com"),
            actor=ADMIN,
        )
        for i in range(count)
    ]


# -- uniqueness (rules C2, U1) --------------------------------------------------------------------

#: One canonical number typed eight ways (rule C2: case and separators are ignored).
NUMBER_VARIANTS = ["C-700", "c700", "C 700", "c-700", "C.700", "C/700", " c 700 ", "C_700"]


def test_same_customer_number_created_at_once(books: list[ck.Book]) -> None:
    """Rule C2: eight creates of one number: one customer, seven ``DuplicateCustomerNumber``."""
    outcomes = race(
        [
            partial(new_customer, book, f"Racer {i}", NUMBER_VARIANTS[i])
            for i, book in enumerate(books)
        ]
    )
    (winner,), losers = split(outcomes)
    assert_all(losers, ck.DuplicateCustomerNumber)
    assert all(
        isinstance(error, ck.DuplicateCustomerNumber) and error.existing_id == winner.id
        for error in losers
    )
    book = books[0]
    assert [c.id for c in book.customers.recent(actor=ADMIN)] == [winner.id]
    assert actions(book, winner.id) == [(winner.id, "create")]


def test_same_customer_number_set_on_eight_customers_at_once(books: list[ck.Book]) -> None:
    """Rules C2, C3: eight customers renumbered to one number at once: one renumbered, 7 refused."""
    book = books[0]
    customers = [new_customer(book, f"Racer {i}", f"N-{i}") for i in range(THREADS)]
    outcomes = race(
        [
            partial(
                other.customers.update,
                customer.id,
                {"customer_number": NUMBER_VARIANTS[i]},
                actor=MANAGER,  # the lowest role allowed to change a number (rule C3)
                expected_version=customer.version,
            )
            for i, (other, customer) in enumerate(zip(books, customers, strict=True))
        ]
    )
    (winner,), losers = split(outcomes)
    assert_all(losers, ck.DuplicateCustomerNumber)
    assert all(
        isinstance(error, ck.DuplicateCustomerNumber) and error.existing_id == winner.id
        for error in losers
    )
    for i, customer in enumerate(customers):
        stored = book.customers.get(customer.id, actor=ADMIN)
        if customer.id == winner.id:
            assert stored == winner
            assert stored.version == customer.version + 1
            assert actions(book, customer.id) == [(customer.id, "create"), (customer.id, "update")]
        else:
            assert stored == customer  # untouched: number, version and all
            assert stored.customer_number == f"N-{i}"
            assert actions(book, customer.id) == [(customer.id, "create")]


def test_same_username_taken_at_once_by_creates_and_updates(books: list[ck.Book]) -> None:
    """Rule U1: four creates and four updates claim one canonical username at once: one gets it.

    ``test_sqlalchemy_backend`` races eight creates on one shared SQL book; this mixes the
    update path in, and runs on the memory backend and with a book per thread too.
    """
    book = books[0]
    existing = [new_customer(book, f"Holder {i}", f"H-{i}") for i in range(THREADS // 2)]
    spellings = ["Racer", "racer", "RACER", "\uff32acer"]  # fullwidth R: the same key
    creates = [
        partial(new_customer, other, f"Racer {i}", f"R-{i}", username=spellings[i])
        for i, other in enumerate(books[: THREADS // 2])
    ]
    updates = [
        partial(other.customers.update, customer.id, {"username": spellings[i]}, actor=ADMIN)
        for i, (other, customer) in enumerate(zip(books[THREADS // 2 :], existing, strict=True))
    ]
    (winner,), losers = split(race([*creates, *updates]))
    assert_all(losers, ck.DuplicateUsername)
    live = {c.id: c for c in book.customers.recent(actor=ADMIN)}
    assert set(live) == {c.id for c in existing} | {winner.id}
    assert [c.id for c in live.values() if c.username is not None] == [winner.id]
    assert live[winner.id] == winner


# -- no lost updates (rule C5) -------------------------------------------------------------------


def test_customer_updates_with_one_expected_version(books: list[ck.Book]) -> None:
    """Rule C5: eight updates expecting one version: one wins, seven ``ConcurrentModification``."""
    customer = new_customer(books[0], "Racer", "C-1")
    outcomes = race(
        [
            partial(
                book.customers.update,
                customer.id,
                {"city": f"City {i}"},
                actor=ADMIN,
                expected_version=customer.version,
            )
            for i, book in enumerate(books)
        ]
    )
    (winner,), losers = split(outcomes)
    assert_all(losers, ck.ConcurrentModification)
    stored = books[0].customers.get(customer.id, actor=ADMIN)
    assert stored == winner
    assert stored.version == customer.version + 1
    assert actions(books[0], customer.id) == [(customer.id, "create"), (customer.id, "update")]
    [update] = books[0].history.for_customer(customer.id, actor=ADMIN)[1:]
    assert update.changes == {"city": ("", winner.city)}


def test_read_modify_write_counter_loses_no_update(books: list[ck.Book]) -> None:
    """T7: 8 threads x 50 read-modify-write cycles of one customer through the book: the
    stored count equals the number of successful updates, every conflict is reported as
    ``ConcurrentModification``, and history holds one entry per success."""
    customer = new_customer(books[0], "Racer", "C-1", extra={"n": "0"})

    def bump_fifty(book: ck.Book) -> tuple[int, list[BaseException]]:
        done, conflicts = 0, []
        for _ in range(50):
            current = book.customers.get(customer.id, actor=ADMIN)
            count = str(int(current.extra["n"]) + 1)
            try:
                book.customers.update(
                    customer.id,
                    {"extra": {"n": count}},
                    actor=ADMIN,
                    expected_version=current.version,
                )
                done += 1
            except ck.CustomerKitError as error:
                conflicts.append(error)
        return done, conflicts

    outcomes = race([partial(bump_fifty, book) for book in books])
    results, errors = split(outcomes)
    assert errors == []
    successes = sum(done for done, _ in results)
    assert_all([e for _, conflicts in results for e in conflicts], ck.ConcurrentModification)
    stored = books[0].customers.get(customer.id, actor=ADMIN)
    assert stored.extra == {"n": str(successes)}
    assert stored.version == customer.version + successes
    updates = [a for a in actions(books[0], customer.id) if a[1] == "update"]
    assert len(updates) == successes > 0


def test_contact_updates_with_one_expected_version(books: list[ck.Book]) -> None:
    """Rule C5 for contacts: one of eight updates expecting the same version wins."""
    customer = new_customer(books[0], "Racer", "C-1")
    [contact] = new_contacts(books[0], customer.id, 1)
    outcomes = race(
        [
            partial(
                book.contacts.update,
                contact.id,
                {"title": f"Title {i}"},
                actor=ADMIN,
                expected_version=contact.version,
            )
            for i, book in enumerate(books)
        ]
    )
    (winner,), losers = split(outcomes)
    assert_all(losers, ck.ConcurrentModification)
    stored = books[0].contacts.get(contact.id, actor=ADMIN)
    assert stored == winner
    assert stored.version == contact.version + 1
    assert actions(books[0], customer.id) == [
        (customer.id, "create"),
        (contact.id, "add"),
        (contact.id, "update"),
    ]


# -- merges (rules M3, M4; RELIABILITY T8) --------------------------------------------------------

#: What a loser of a merge race may get: the record was merged already, or changed meanwhile.
MERGE_LOSS = (ck.MergeError, ck.ConcurrentModification)


def assert_merge_losses(errors: Sequence[BaseException]) -> None:
    """Clear errors only, and no deadlock victim: merges lock rows in id order (T8)."""
    assert_all(errors, *MERGE_LOSS)
    assert not any(is_transient(error) for error in errors), [repr(e) for e in errors]


def assert_no_contact_lost(
    book: ck.Book, customer_id: str, contacts: Sequence[ck.Contact], merged: dict[str, str]
) -> None:
    """Every contact is live, or merged into the live main ``merged`` names for it."""
    live = {c.id for c in book.contacts.list(customer_id, actor=ADMIN)}
    assert live == {c.id for c in contacts} - set(merged)
    for contact in contacts:
        resolved = book.contacts.get(contact.id, actor=ADMIN)
        assert resolved.id == merged.get(contact.id, contact.id)
        assert resolved.id in live


def test_overlapping_contact_merges_one_wins(books: list[ck.Book]) -> None:
    """Rule M3: merge i takes contact i+1 and a shared hub into contact i; exactly one of 8 wins."""
    book = books[0]
    customer = new_customer(book, "Racer", "C-1")
    contacts = new_contacts(book, customer.id, THREADS)
    hub = book.contacts.add(
        customer.id, ck.NewContact(first_name="Hub", last_name="Lee", title="Buyer"), actor=ADMIN
    )
    everyone = [*contacts, hub]
    outcomes = race(
        [
            partial(
                other.contacts.merge,
                everyone[i].id,
                list(dict.fromkeys([everyone[i + 1].id, hub.id])),
                actor=ADMIN,
            )
            for i, other in enumerate(books)
        ]
    )
    (result,), losers = split(outcomes)
    assert_merge_losses(losers)
    main = result.main
    assert main.title == "Buyer"  # filled from the hub
    assert book.contacts.get(main.id, actor=ADMIN) == main
    merged = dict.fromkeys(result.merged_ids, main.id)
    assert hub.id in merged
    assert_no_contact_lost(book, customer.id, everyone, merged)
    history = Counter(actions(book, customer.id))
    assert history == Counter(
        [(customer.id, "create")]
        + [(c.id, "add") for c in everyone]
        + [(main.id, "merge")]
        + [(other_id, "merged") for other_id in merged]
    )


def test_same_pair_dismissed_then_undismissed_by_all_at_once(books: list[ck.Book]) -> None:
    """A dismissal raced 8 ways is stored once and every caller gets it (a repeat, not an
    error); history says it once per contact. Racing undismisses take it back once."""
    book = books[0]
    customer = new_customer(book, "Racer", "C-1")
    a, b = new_contacts(book, customer.id, 2)
    pairs = [(a.id, b.id) if i % 2 else (b.id, a.id) for i in range(THREADS)]
    wins, errors = split(
        race(
            [
                partial(other.contacts.dismiss, *pairs[i], actor=ADMIN)
                for i, other in enumerate(books)
            ]
        )
    )
    assert errors == []
    assert len(wins) == THREADS
    assert len(set(wins)) == 1
    assert book.contacts.dismissed(actor=ADMIN) == wins[:1]
    undone, errors = split(
        race(
            [
                partial(other.contacts.undismiss, *pairs[i], actor=ADMIN)
                for i, other in enumerate(books)
            ]
        )
    )
    assert (errors, undone) == ([], [None] * THREADS)
    assert book.contacts.dismissed(actor=ADMIN) == []
    history = Counter(action for _, action in actions(book, customer.id))
    assert (history["dismiss"], history["undismiss"]) == (2, 2)


def test_opposite_and_cyclic_contact_merges(books: list[ck.Book]) -> None:
    """T8: A<-B, B<-C, C<-D, D<-A and the four opposite merges at once: no cycle, no loss.

    How many win depends on the interleaving (a main may itself be merged later, making a
    chain), so the test asserts what holds for every interleaving: of two opposite merges at
    most one wins, no contact is merged twice, every loser overlaps a winner, following
    ``merged_into`` from any contact ends at a live one, and history records exactly the
    winners.
    """
    book = books[0]
    customer = new_customer(book, "Racer", "C-1")
    ring = new_contacts(book, customer.id, 4)
    pairs = [(ring[i], ring[(i + 1) % 4]) for i in range(4)]
    pairs += [(other, main) for main, other in pairs]
    outcomes = race(
        [
            partial(other.contacts.merge, main.id, [merged.id], actor=ADMIN)
            for other, (main, merged) in zip(books, pairs, strict=True)
        ]
    )
    wins, losers = split(outcomes)
    assert_merge_losses(losers)
    assert 1 <= len(wins) <= 3  # someone wins; someone stays live
    won = [
        (main.id, merged.id)
        for (main, merged), outcome in zip(pairs, outcomes, strict=True)
        if not isinstance(outcome, BaseException)
    ]
    assert [(r.main.id, *r.merged_ids) for r in wins] == won
    assert all((other_id, main_id) not in won for main_id, other_id in won)  # A<-B or B<-A
    merged_into = {other_id: main_id for main_id, other_id in won}
    assert len(merged_into) == len(won)  # no contact merged twice
    for (main, merged), outcome in zip(pairs, outcomes, strict=True):
        if isinstance(outcome, BaseException):  # it lost to a winner it overlaps
            assert any({main.id, merged.id} & set(pair) for pair in won)

    def final(contact_id: str) -> str:
        for _ in ring:  # a chain longer than the ring is a cycle
            if contact_id not in merged_into:
                return contact_id
            contact_id = merged_into[contact_id]
        raise AssertionError("merged_into has a cycle")

    def hops(contact_id: str) -> int:
        return 0 if contact_id not in merged_into else 1 + hops(merged_into[contact_id])

    resolved = {contact_id: final(contact_id) for contact_id in merged_into}
    assert_no_contact_lost(book, customer.id, ring, resolved)
    with book.store.unit_of_work() as uow:  # d6: every tombstone points at the live end
        stored = {c.id: c.merged_into for c in uow.contacts.for_customer(customer.id)}
    assert {i: stored[i] for i in merged_into} == resolved
    history = Counter(actions(book, customer.id))
    assert history == Counter(
        [(customer.id, "create")]
        + [(c.id, "add") for c in ring]
        + [(main_id, "merge") for main_id, _ in won]
        + [(other_id, "merged") for other_id in merged_into]
        # A chain x -> o -> m forms as x merges into o, then o into m: x is re-pointed.
        + [(other_id, "repointed") for other_id in merged_into for _ in range(hops(other_id) - 1)]
    )


def test_overlapping_customer_merges_one_wins(books: list[ck.Book]) -> None:
    """Rule M3 for customers: one of eight overlapping merges wins; every contact moves or stays."""
    book = books[0]
    customers = [new_customer(book, f"Racer {i}", f"N-{i}") for i in range(THREADS + 1)]
    hub = customers[-1]
    contacts = {c.id: new_contacts(book, c.id, 1)[0] for c in customers}
    outcomes = race(
        [
            partial(
                other.customers.merge,
                customers[i].id,
                list(dict.fromkeys([customers[i + 1].id, hub.id])),
                actor=ADMIN,
            )
            for i, other in enumerate(books)
        ]
    )
    (result,), losers = split(outcomes)
    assert_merge_losses(losers)
    main = result.main
    assert hub.id in result.merged_ids
    live = {c.id for c in book.customers.recent(actor=ADMIN)}
    assert live == {c.id for c in customers} - set(result.merged_ids)
    for customer in customers:
        owner = main.id if customer.id in result.merged_ids else customer.id
        contact = book.contacts.get(contacts[customer.id].id, actor=ADMIN)
        assert contact.customer_id == owner
        assert contact.id in {c.id for c in book.contacts.list(owner, actor=ADMIN)}
    assert sum(len(book.contacts.list(c, actor=ADMIN)) for c in live) == len(customers)
    for customer in customers:  # history: the merge on the main, "merged" on each other
        mine = [(customer.id, "create"), (contacts[customer.id].id, "add")]
        if customer.id == main.id:
            mine.append((customer.id, "merge"))
        elif customer.id in result.merged_ids:
            mine.append((customer.id, "merged"))
        assert actions(book, customer.id) == mine


def test_unmerge_races_merges_on_the_same_main(books: list[ck.Book]) -> None:
    """Rule M4: four unmerges of A<-B race four merges of A<-C: the book ends as some serial order.

    The two changes do not exclude each other (serially both succeed), so the test asserts what
    can be asserted exactly: at most one unmerge and at most one distinct merge take effect,
    the losers get a clear error, and the contacts and history show exactly the winners.
    """
    book = books[0]
    customer = new_customer(book, "Racer", "C-1")
    main, merged, joining = new_contacts(book, customer.id, 3)
    first = book.contacts.merge(main.id, [merged.id], actor=ADMIN)
    assert first.merge_id is not None
    unmerges = [partial(other.contacts.unmerge, first.merge_id, actor=ADMIN) for other in books[:4]]
    merges = [
        partial(other.contacts.merge, main.id, [joining.id], actor=ADMIN) for other in books[4:]
    ]
    calls: list[Callable[[], Any]] = [*unmerges, *merges]  # results of two types
    outcomes = race(calls)
    unmerged, unmerge_losers = split(outcomes[:4])
    joined, merge_losers = split(outcomes[4:])
    assert len(unmerged) <= 1
    assert len({r.merge_id for r in joined}) <= 1  # repeats return the first result
    assert_merge_losses(unmerge_losers)
    assert_merge_losses(merge_losers)
    assert_all(merge_losers, ck.ConcurrentModification)
    assert unmerged or joined
    expected = {merged.id: main.id} if not unmerged else {}
    if joined:
        expected[joining.id] = main.id
    assert_no_contact_lost(book, customer.id, [main, merged, joining], expected)
    history = Counter(actions(book, customer.id))
    assert history == Counter(
        [(customer.id, "create")]
        + [(c.id, "add") for c in (main, merged, joining)]
        + [(main.id, "merge"), (merged.id, "merged")]
        + ([(main.id, "unmerge"), (merged.id, "unmerged")] if unmerged else [])
        + ([(main.id, "merge"), (joining.id, "merged")] if joined else [])
    )


# -- delete_many (rule K5; RELIABILITY T9) -------------------------------------------------------


def test_delete_many_races_updates_of_its_contacts(books: list[ck.Book]) -> None:
    """Rule K5: ``delete_many`` of seven contacts against an update of each: all or nothing."""
    book = books[0]
    customer = new_customer(book, "Racer", "C-1")
    contacts = new_contacts(book, customer.id, THREADS - 1)
    ids = [c.id for c in contacts]
    delete = partial(books[0].contacts.delete_many, ids, actor=ADMIN)
    updates = [
        partial(other.contacts.update, contact.id, {"title": "Buyer"}, actor=ADMIN)
        for other, contact in zip(books[1:], contacts, strict=True)
    ]
    calls: list[Callable[[], Any]] = [delete, *updates]  # results of two types
    outcomes = race(calls)
    deleted, delete_errors = split(outcomes[:1])
    updated, update_errors = split(outcomes[1:])
    assert_all(delete_errors, ck.ConcurrentModification)  # an update came between read and write
    # After the delete the contact is gone; during it, it changed under the update.
    assert_all(update_errors, ck.NotFound, ck.ConcurrentModification)
    live = {c.id: c for c in book.contacts.list(customer.id, actor=ADMIN)}
    if deleted:
        assert deleted == [ids]
        assert live == {}  # all of them
    else:
        assert set(live) == set(ids)  # or none of them
        assert update_errors == []
        assert {c.id: c for c in live.values() if c.title} == {c.id: c for c in updated}
    history = [a for a in actions(book, customer.id) if a[1] not in ("create", "add")]
    assert Counter(history) == Counter(
        [(c.id, "update") for c in updated] + [(i, "delete") for i in ids if deleted]
    )
    for contact_id in ids:  # an update that won came before the delete
        mine = [action for entity, action in history if entity == contact_id]
        assert mine in (["update"], ["delete"], ["update", "delete"])


def test_delete_many_races_merges_of_its_contacts(books: list[ck.Book]) -> None:
    """Rules K5, M3: ``delete_many`` (ids in descending order) against seven merges of its contacts.

    The delete locks rows in the opposite order of the merges, so on PostgreSQL one of them is
    often a deadlock victim: it runs again, and if it loses again it gets
    ``ConcurrentModification``, never the driver's error.
    Either the delete wins and every contact is deleted, or it loses and none is.
    """
    book = books[0]
    customer = new_customer(book, "Racer", "C-1")
    contacts = sorted(new_contacts(book, customer.id, 2 * (THREADS - 1)), key=lambda c: c.id)
    pairs = [(contacts[2 * i], contacts[2 * i + 1]) for i in range(THREADS - 1)]
    ids = [c.id for c in reversed(contacts)]
    delete = partial(books[0].contacts.delete_many, ids, actor=ADMIN)
    merges = [
        partial(other.contacts.merge, main.id, [merged.id], actor=ADMIN)
        for other, (main, merged) in zip(books[1:], pairs, strict=True)
    ]
    calls: list[Callable[[], Any]] = [delete, *merges]  # results of two types
    outcomes = race(calls)
    deleted, delete_errors = split(outcomes[:1])
    merged, merge_errors = split(outcomes[1:])
    live = {c.id for c in book.contacts.list(customer.id, actor=ADMIN)}
    if deleted:
        assert deleted == [ids]
        assert merged == []
        assert live == set()
        assert_all(merge_errors, ck.NotFound, ck.ConcurrentModification)
    else:
        assert_all(delete_errors, ck.NotFound, ck.ConcurrentModification)
        assert merged  # the delete lost to a merge
        assert_all(merge_errors, ck.ConcurrentModification)  # a victim that lost again
        merged_into = {other_id: r.main.id for r in merged for other_id in r.merged_ids}
        assert_no_contact_lost(book, customer.id, contacts, merged_into)
    history = Counter(a for a in actions(book, customer.id) if a[1] not in ("create", "add"))
    assert history == Counter(
        [(i, "delete") for i in ids if deleted]
        + [(r.main.id, "merge") for r in merged]
        + [(other_id, "merged") for r in merged for other_id in r.merged_ids]
    )


@pytest.mark.postgres
def test_deadlock_victim_gets_concurrent_modification(postgres_url: str) -> None:
    """Two units of work updating two contacts in opposite order: PostgreSQL kills one.

    The victim gets ``ConcurrentModification`` (which ``retry_transient`` still knows as
    transient), never the driver's ``DeadlockDetected``; the other commits.
    """
    book = ck.open_book(postgres_url, clock=FakeClock(), hasher=HASHER)
    try:
        customer = new_customer(book, "Racer", "C-1")
        first, second = new_contacts(book, customer.id, 2)
        store = book.store
        assert isinstance(store, SqlStore)
        barrier = threading.Barrier(2, timeout=30)

        def bump(order: tuple[ck.Contact, ck.Contact]) -> None:
            with store.unit_of_work() as uow:
                for position, contact in enumerate(order):
                    changed = attrs.evolve(contact, title=f"t{position}", version=2)
                    uow.contacts.update(changed, expected_version=1)
                    if position == 0:
                        barrier.wait()  # both hold their first row: the deadlock is certain
                uow.commit()

        outcomes = race([partial(bump, (first, second)), partial(bump, (second, first))])
        [_], [error] = split(outcomes)
        assert type(error) is ck.ConcurrentModification
        assert is_transient(error)
        stored = [book.contacts.get(c.id, actor=ADMIN) for c in (first, second)]
        assert [c.version for c in stored] == [2, 2]
    finally:
        book.close()


@pytest.mark.postgres
def test_repeat_racing_the_same_merge_returns_its_result(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY 7: a repeat of a merge that runs while the first one commits gets its result.

    On PostgreSQL each statement sees the latest commit, so a repeat could once look for a
    done merge before the first one committed, then find the other contact merged and say
    ``MergeError`` ("merged already") to a client whose merge had succeeded. The repeat now
    queues behind the first merge's lock on the customer and then finds the merge done.
    """
    book = ck.open_book(postgres_url, clock=FakeClock(), hasher=HASHER)
    try:
        store = book.store
        assert isinstance(store, SqlStore)
        customer = new_customer(book, "Racer", "C-1")
        main, other = new_contacts(book, customer.id, 2)
        looked = merging._existing_merge
        repeats: list[Any] = []

        def repeat_starts_meanwhile(*args: Any) -> Any:
            found = looked(*args)
            if not repeats:  # the repeat runs while the first merge is between look and write
                repeats.append(None)
                thread = threading.Thread(target=lambda: repeats.append(repeat()), daemon=True)
                thread.start()
                _wait_until_blocked(store, "customers")
            return found

        def repeat() -> Any:
            try:
                return book.contacts.merge(main.id, [other.id], actor=ADMIN)
            except BaseException as error:
                return error

        monkeypatch.setattr(merging, "_existing_merge", repeat_starts_meanwhile)
        first = book.contacts.merge(main.id, [other.id], actor=ADMIN)
        for _ in range(3000):
            if len(repeats) == 2:
                break
            time.sleep(0.01)
        assert first.merge_id is not None
        assert repeats[1] == first
        assert actions(book, customer.id).count((main.id, "merge")) == 1
    finally:
        book.close()


@pytest.mark.postgres
def test_deadlock_victim_use_case_is_retried_and_succeeds(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """T11 on a real server: a use-case PostgreSQL picks as deadlock victim runs again.

    Another session holds the second of two contacts, waits until ``delete_many`` holds the
    first and blocks on the second, then asks for the first: a certain deadlock. That session
    waits ten seconds before it checks for deadlocks, so the use-case's session (one second,
    the default) is the victim. The use-case retries after the rollback, waits for the other
    session's commit, reads the contacts again and deletes both: the caller never sees it.
    """
    book = ck.open_book(postgres_url, clock=FakeClock(), hasher=HASHER)
    try:
        customer = new_customer(book, "Racer", "C-1")
        first, second = sorted(new_contacts(book, customer.id, 2), key=lambda c: c.id)
        store = book.store
        assert isinstance(store, SqlStore)
        started = threading.Event()

        def other_session() -> None:
            with store.unit_of_work() as uow:
                uow.connection.exec_driver_sql("SET LOCAL deadlock_timeout = '10s'")
                changed = attrs.evolve(second, title="held", version=2)
                uow.contacts.update(changed, expected_version=1)
                started.set()
                _wait_until_blocked(store, "contacts")
                uow.contacts.update(
                    attrs.evolve(first, title="held", version=2), expected_version=1
                )
                uow.commit()

        def use_case() -> list[str]:
            assert started.wait(30)
            return book.contacts.delete_many([first.id, second.id], actor=ADMIN)

        with caplog.at_level("WARNING", logger="customerkit.sql"):
            held, deleted = race([other_session, use_case])
        assert held is None
        assert deleted == [first.id, second.id]
        assert "transient database error 40P01; retry 1 of 5" in caplog.text
        assert book.contacts.list(customer.id, actor=ADMIN) == []
        history = [a for a in actions(book, customer.id) if a[1] == "delete"]
        assert history == [(first.id, "delete"), (second.id, "delete")]  # written once
    finally:
        book.close()


def _wait_until_blocked(store: SqlStore, table: str) -> None:
    """Wait until another session waits for a row lock (of ``table``'s rows)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND query ILIKE :pattern"
    )
    with store.engine.connect() as watcher:
        for _ in range(3000):
            waiting = watcher.execute(text(query), {"pattern": f"%{table}%"}).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the use-case never blocked on the held row")


# -- child writes racing the parent customer (issue 14: every writer locks the customer) ------

#: Rounds of each parent-child race: the window is a few statements wide, so one round may miss.
ROUNDS = 4


def _adds(books: Sequence[ck.Book], customer_id: str, tag: str) -> list[Callable[[], Any]]:
    """Seven adds of external-user contacts to one customer, one per book after the first."""
    personal(*(f"{tag}{i}@example.com" for i in range(len(books))))
    return [
        partial(
            book.contacts.add,
            customer_id,
            ck.NewContact(
                first_name=f"Ann{i}",
                last_name="Lee",
                email=f"{tag}{i}@example.com",
                external_user=True,
            ),
            actor=ADMIN,
        )
        for i, book in enumerate(books[1:])
    ]


def _stored_contacts(book: ck.Book, customer_id: str) -> list[ck.Contact]:
    with book.store.unit_of_work(read_only=True) as uow:
        return uow.contacts.for_customer(customer_id)


def test_contact_adds_race_a_delete_of_their_customer(books: list[ck.Book]) -> None:
    """Rules K1, C6: an add racing the delete of its customer comes before it (and is deleted with
    it) or after it (``NotFound``): never a live contact on a deleted customer, whose external
    user email would stay taken for good."""
    book = books[0]
    for round_ in range(ROUNDS):
        customer = new_customer(book, f"Racer {round_}", f"D-{round_}")
        delete = partial(books[0].customers.delete, customer.id, actor=ADMIN)
        outcomes = race([delete, *_adds(books, customer.id, f"d{round_}-")])
        assert outcomes[0] is None
        added, errors = split(outcomes[1:])
        assert_all(errors, ck.NotFound)
        stored = _stored_contacts(book, customer.id)
        assert {c.id for c in stored} == {c.id for c in added}
        assert all(c.status is ck.RecordStatus.DELETED for c in stored), stored
        other = new_customer(book, f"Other {round_}", f"E-{round_}")
        again = _adds(books, other.id, f"d{round_}-")  # every email is free again
        assert all(isinstance(call(), ck.Contact) for call in again)


def test_contact_adds_race_a_purge_of_their_customer(books: list[ck.Book]) -> None:
    """Rule C6: an add racing a purge (``delete_history=True``) gets ``NotFound`` or is purged
    with the customer; never a driver error, and nothing of the customer is left."""
    book = books[0]
    for round_ in range(ROUNDS):
        customer = new_customer(book, f"Racer {round_}", f"P-{round_}")
        purge = partial(books[0].customers.delete, customer.id, actor=ADMIN, delete_history=True)
        outcomes = race([purge, *_adds(books, customer.id, f"p{round_}-")])
        assert outcomes[0] is None
        _, errors = split(outcomes[1:])
        assert_all(errors, ck.NotFound)
        assert _stored_contacts(book, customer.id) == []
        with book.store.unit_of_work(read_only=True) as uow:
            assert uow.history.for_customer(customer.id) == []


def test_contact_adds_race_a_merge_of_their_customer(books: list[ck.Book]) -> None:
    """Rule M3: a contact added to B while B merges into A ends on A (added before: moved along),
    or the add gets ``NotFound`` (after: B is merged); no live contact stays on B."""
    book = books[0]
    for round_ in range(ROUNDS):
        main = new_customer(book, f"Main {round_}", f"M-{round_}")
        other = new_customer(book, f"Other {round_}", f"O-{round_}")
        merge = partial(books[0].customers.merge, main.id, [other.id], actor=ADMIN)
        outcomes = race([merge, *_adds(books, other.id, f"m{round_}-")])
        assert isinstance(outcomes[0], ck.MergeResult), outcomes[0]
        added, errors = split(outcomes[1:])
        assert_all(errors, ck.NotFound)
        assert not [c for c in _stored_contacts(book, other.id) if c.is_live]
        on_main = {c.id for c in book.contacts.list(main.id, actor=ADMIN)}
        assert on_main == {c.id for c in added}


def test_contact_adds_race_an_unmerge_of_their_customer(books: list[ck.Book]) -> None:
    """Rule M4: contacts added to the main while its merge is undone stay on the main; the merged
    customer's own contact goes back to it."""
    book = books[0]
    for round_ in range(ROUNDS):
        main = new_customer(book, f"Main {round_}", f"U-{round_}")
        other = new_customer(book, f"Other {round_}", f"V-{round_}")
        [own] = new_contacts(book, other.id, 1)
        done = book.customers.merge(main.id, [other.id], actor=ADMIN)
        assert done.merge_id is not None
        unmerge = partial(books[0].customers.unmerge, done.merge_id, actor=ADMIN)
        outcomes = race([unmerge, *_adds(books, main.id, f"u{round_}-")])
        assert isinstance(outcomes[0], ck.Customer), outcomes[0]
        added, errors = split(outcomes[1:])
        assert errors == []
        assert {c.id for c in book.contacts.list(main.id, actor=ADMIN)} == {c.id for c in added}
        assert [c.id for c in book.contacts.list(other.id, actor=ADMIN)] == [own.id]


def test_customer_updates_race_a_merge_of_the_customer(books: list[ck.Book]) -> None:
    """Rules C5, M3: updates of B racing the merge of B into A come before the merge (their values
    reach the merge or the merge is refused as stale) or after it (``NotFound``); an update
    never lands on a merged tombstone."""
    book = books[0]
    for round_ in range(ROUNDS):
        main = new_customer(book, f"Main {round_}", f"M-{round_}")
        other = new_customer(book, f"Other {round_}", f"O-{round_}")
        merge = partial(books[0].customers.merge, main.id, [other.id], actor=ADMIN)
        updates = [
            partial(b.customers.update, other.id, {"address_line2": f"Suite {i}"}, actor=ADMIN)
            for i, b in enumerate(books[1:])
        ]
        outcomes = race([merge, *updates])
        updated, errors = split(outcomes[1:])
        assert_all(errors, ck.NotFound)
        with book.store.unit_of_work(read_only=True) as uow:
            stored = uow.customers.get(other.id)
        assert stored is not None
        if isinstance(outcomes[0], ck.MergeResult):
            assert stored.status is ck.RecordStatus.MERGED
            history = [a for a in actions(book, other.id) if a[1] == "update"]
            assert len(history) == len(updated)  # none after the tombstone
            assert all(u.version < stored.version for u in updated)
        else:
            assert isinstance(outcomes[0], ck.ConcurrentModification), outcomes[0]
            assert stored.is_live
