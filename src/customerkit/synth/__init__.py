"""Synthetic dealer data: customers, contacts, staff, and labelled duplicates.

Everything is deterministic for a seed (each generator draws from its own
``random.Random`` seeded by a string, which is stable across platforms and Python versions) and
streams, so millions of records need little memory::

    from customerkit import synth

    for location_id, draft in synth.customers(5_000, seed=1):
        ...  # ("loc-2", NewCustomer(company_name="Miller Trucking LLC", ...))
    for customer_id, contact in synth.contacts(["c1", "c2"], seed=1):
        ...
    staff = synth.users(["loc-1", "loc-2"])
    data = synth.labelled_contacts(100_000, seed=7, dup_rate=0.2)
    score = data.evaluate(report.pairs)  # precision / recall of a matcher

Names repeat the way real ones do (thousands of "Smith"s at scale); emails and phone numbers of
distinct customers or people never repeat within one call. Near-duplicates are made the way
dealer data gets them: typos, nicknames, swapped names, blanks, reformatted phones, changed
email case, abbreviations, legal suffixes added or dropped, stray whitespace
(see `Corruption`).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

from customerkit.model import NewContact, NewCustomer, Role, User
from customerkit.synth._corrupt import Corruption, corrupt_person
from customerkit.synth._customers import (
    CustomerDraft,
    CustomerFactory,
    corrupt_customer,
    new_customer,
)
from customerkit.synth._labelled import (
    LabelledData,
    MatchScore,
    PairLike,
    _locations,
    labelled_contacts,
    labelled_customers,
)
from customerkit.synth._pieces import (
    FIRST_NAMES,
    SURNAMES,
    EmailBook,
    PersonFactory,
    PhoneBook,
    company_domain,
    derive_rng,
    letters,
)

__all__ = [
    "DEFAULT_LOCATIONS",
    "Corruption",
    "LabelledData",
    "MatchScore",
    "PairLike",
    "contacts",
    "customers",
    "labelled_contacts",
    "labelled_customers",
    "users",
]

#: Locations used when none are given.
DEFAULT_LOCATIONS: tuple[str, ...] = ("loc-1", "loc-2", "loc-3")

_RECENT = 256  # near-duplicates copy one of the last this many customers


def _share(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        msg = f"{name} must be between 0 and 1, got {value!r}"
        raise ValueError(msg)
    return value


def _new_contact(fields: dict[str, str], *, external: bool) -> NewContact:
    """A contact draft of a person's fields as typed (``Person.record``, ``corrupt_person``)."""
    return NewContact(**fields, external_user=external)


def customers(
    n: int,
    *,
    seed: int = 0,
    locations: Sequence[str] = DEFAULT_LOCATIONS,
    fleet_share: float = 0.1,
    duplicate_share: float = 0.05,
    corruption: Corruption | None = None,
) -> Iterator[tuple[str, NewCustomer]]:
    """Stream ``n`` customer drafts spread over ``locations``.

    Company names look like dealer customers' ("Johnson Tires - Denver", "Miller Trucking LLC",
    "Rocky Mountain Logistics"); each location is anchored in a home state where most of its
    customers are, with city, state, ZIP and phone area code consistent. Phones come in the
    formats people type ("(303) 555-0142", "303.555.0142", "+1 303 555 0142"), some with an
    extension. Customer numbers are unique per location, also after normalising (each location
    has its own style: "C-100042", "100042", "CU0100042", ...). FLEET customers make up
    ``fleet_share``, about a third of them with a blank number. A ``duplicate_share`` of the
    drafts are near-duplicates of a recent customer of the same location (same company typed
    differently, see `Corruption`) with a number of their own. Emails and phones of
    distinct customers never repeat (near-duplicates share them on purpose).

    Args:
        n: Number of drafts to yield.
        seed: Same seed and arguments, same drafts in the same order.
        locations: Location ids; earlier ones get a few more customers.
        fleet_share: Share of FLEET customers.
        duplicate_share: Share of drafts that are near-duplicates.
        corruption: How near-duplicates differ (default `Corruption`; email typos are
            not made here).

    Returns:
        An iterator of ``(location_id, NewCustomer)`` pairs.

    Raises:
        ValueError: A count or share is out of range, or ``locations`` is empty.
    """
    _count(n)
    _share("duplicate_share", duplicate_share)
    locs = _locations(locations)
    rng = derive_rng(seed, "customers")
    factory = CustomerFactory(rng, locs, fleet_share=_share("fleet_share", fleet_share))
    return _customers(n, rng, factory, corruption or Corruption(), duplicate_share)


def _customers(
    n: int,
    rng: random.Random,
    factory: CustomerFactory,
    c: Corruption,
    duplicate_share: float,
) -> Iterator[tuple[str, NewCustomer]]:
    r = rng.random
    locs = factory.locations
    recent: deque[CustomerDraft] = deque(maxlen=_RECENT)
    for _ in range(n):
        if recent and r() < duplicate_share:
            original = recent[int(r() * len(recent))]
            _, fields = corrupt_customer(original, r, c, None)
            if original.number:
                fields["customer_number"] = factory.number(original.location)
            yield locs[original.location], new_customer(fields)
        else:
            draft = factory.new()
            recent.append(draft)
            yield locs[draft.location], draft.new_customer()


def contacts(
    customers: int | Iterable[str],
    *,
    seed: int = 0,
    per_customer: tuple[int, int] = (2, 6),
    duplicate_share: float = 0.05,
    external_share: float = 0.05,
    corruption: Corruption | None = None,
) -> Iterator[tuple[str, NewContact]]:
    """Stream contacts for customers: a few people each, some entered twice.

    Each customer gets between ``per_customer[0]`` and ``per_customer[1]`` people, with emails
    at the customer's own domain or a free-mail one; some share the family name of the business.
    Each person is entered a second time, typed differently (nickname, typo, email case, phone
    format, ... see `Corruption`), with probability ``duplicate_share``; the copies come
    after the customer's other contacts. Emails and phones of distinct people never repeat, so
    the ``external_share`` of people marked external users keep unique emails (rule K3; copies
    are never external users).

    Args:
        customers: Customer ids, or a count ``n`` standing for the ids ``"0"`` … ``"n-1"``.
        seed: Same seed and arguments, same contacts in the same order.
        per_customer: Smallest and largest number of distinct people per customer.
        duplicate_share: Chance that a person also gets a near-duplicate contact.
        external_share: Share of people (with an email) marked as external users.
        corruption: How near-duplicates differ (default `Corruption`; email typos are
            not made here).

    Returns:
        An iterator of ``(customer_id, NewContact)`` pairs, grouped by customer.

    Raises:
        ValueError: A count or share is out of range.
    """
    low, high = per_customer
    if not 1 <= low <= high:
        msg = f"per_customer must be (low, high) with 1 <= low <= high, got {per_customer!r}"
        raise ValueError(msg)
    _share("duplicate_share", duplicate_share)
    _share("external_share", external_share)
    if isinstance(customers, int):
        _count(customers)
        ids: Iterable[str] = (str(i) for i in range(customers))
    else:
        ids = customers
    rng = derive_rng(seed, "contacts")
    return _contacts(
        ids,
        rng,
        per_customer=(low, high),
        duplicate_share=duplicate_share,
        external_share=external_share,
        c=corruption or Corruption(),
    )


def _contacts(
    ids: Iterable[str],
    rng: random.Random,
    *,
    per_customer: tuple[int, int],
    duplicate_share: float,
    external_share: float,
    c: Corruption,
) -> Iterator[tuple[str, NewContact]]:
    r = rng.random
    people = PersonFactory(rng, EmailBook(), PhoneBook(rng))
    low, high = per_customer
    span = high - low + 1
    for customer_id in ids:
        domain, family = company_domain(r)
        copies: list[NewContact] = []
        for _ in range(low + int(r() * span)):
            person = people.new(family, domain)
            external = bool(person.email) and r() < external_share
            yield customer_id, _new_contact(person.record(), external=external)
            if r() < duplicate_share:
                copies.append(_new_contact(corrupt_person(person, r, c, None), external=False))
        for copy in copies:
            yield customer_id, copy


_STAFF_ROLES = (Role.STAFF, Role.SERVICE_ADVISOR, Role.SERVICE_MANAGER, Role.DEALER_ADMIN)


def users(
    locations: Sequence[str] = DEFAULT_LOCATIONS,
    *,
    seed: int = 0,
    per_role: int = 2,
    fleet_customers: Iterable[tuple[str, str]] = (),
) -> list[User]:
    """Dealer staff for every location, and fleet users for the given fleet customers.

    Each location gets ``per_role`` users of each staff role (STAFF, SERVICE_ADVISOR,
    SERVICE_MANAGER, DEALER_ADMIN); when ``per_role`` is 2 or more, the last STAFF and the last
    SERVICE_ADVISOR of each location have no login. Ids are ``u-<location>-<k>`` (``k`` from 1
    per location, fleet users after staff); emails are unique.

    Args:
        locations: Location ids.
        seed: Same seed and arguments, same users.
        per_role: Staff users per role and location.
        fleet_customers: ``(location_id, fleet_customer_id)`` pairs; each fleet gets two
            FLEET_USERs with a login.

    Returns:
        The users, staff by location and role first, then fleet users.

    Raises:
        ValueError: ``per_role`` is below 1 or ``locations`` is empty.
    """
    if per_role < 1:
        msg = f"per_role must be at least 1, got {per_role!r}"
        raise ValueError(msg)
    locs = _locations(locations)
    rng = derive_rng(seed, "users")
    r = rng.random
    emails = EmailBook()
    dealer_domain = f"{letters(SURNAMES[int(r() * len(SURNAMES))])}trucks.com"
    counters: dict[str, int] = {}
    out: list[User] = []

    def add(location_id: str, role: Role, domain: str, *, login: bool, fleet: str | None) -> None:
        counters[location_id] = counters.get(location_id, 0) + 1
        first = FIRST_NAMES[int(r() * len(FIRST_NAMES))]
        last = SURNAMES[int(r() * len(SURNAMES))]
        out.append(
            User(
                id=f"u-{location_id}-{counters[location_id]}",
                name=f"{first} {last}",
                email=emails.person(first, last, domain, int(r() * 1000)),
                role=role,
                location_id=location_id,
                has_login=login,
                fleet_customer_id=fleet,
            )
        )

    for location_id in locs:
        for role in _STAFF_ROLES:
            for j in range(per_role):
                no_login = (
                    role in (Role.STAFF, Role.SERVICE_ADVISOR)
                    and per_role > 1
                    and j == per_role - 1
                )
                add(location_id, role, dealer_domain, login=not no_login, fleet=None)
    for location_id, fleet_id in fleet_customers:
        domain, _ = company_domain(r)
        for _ in range(2):
            add(location_id, Role.FLEET_USER, domain, login=True, fleet=fleet_id)
    return out


def _count(n: int) -> None:
    if n < 0:
        msg = f"n must not be negative, got {n!r}"
        raise ValueError(msg)
