"""Hostile input (RELIABILITY d1-d4, T12) at every text field and every search entry point.

Each value of the corpus goes into every text field of ``NewCustomer``, ``NewContact``,
``customers.update`` and ``contacts.update``, and into every search entry point
(``customers.search``, ``customers.recent(text=...)``, ``sources.search``). Each call must:

* either be refused with a specific ``CustomerKitError`` subclass whose ``field`` (or
  ``errors``) names the field, leaving the book exactly as it was (records, contacts, history);
* or store the value and read it back exactly (rule U4: surrounding whitespace trimmed, nothing else
  changed); searches return what the reference search (``oracle_search``) returns;
* never crash with anything else (``ValueError``, ``TypeError``, ``UnicodeError`` ... from deep
  inside).

On a backend other than memory, every outcome must also equal the memory backend's outcome for
the same input (accepted or refused with the same error type and fields, stored alike): no
backend behaves differently from another.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

import customerkit as ck
from customerkit.search.query import SearchDocument, parse_query
from customerkit.search.rules import oracle_search
from customerkit.testing import FakeClock
from customerkit.text import query_words, words

# Among the slowest files: `-m "not slow"` leaves them out of a quick loop; CI runs them.
pytestmark = pytest.mark.slow

MB = 1_000_000

#: name -> value. Whitespace, sizes, controls, Unicode edge cases, LIKE/regex metacharacters,
#: quotes, SQL fragments, spreadsheet formulas, line breaks, markup.
CORPUS: dict[str, str] = {
    "empty": "",
    "spaces": "   ",
    "tab_only": "\t",
    "whitespace_mix": " \t\r\n\u00a0\u3000 ",
    "1mb": "a" * MB,
    "1mb_spaces_around": " " * MB + "x" + " " * MB,
    "1mb_words": "tires " * (MB // 6),
    "nul": "bob\x00",
    "nul_only": "\x00",
    "lone_high_surrogate": "ab\ud800cd",
    "lone_low_surrogate": "\udc00",
    "zero_width_space": "bo\u200bb",
    "zero_width_joiner": "bob\u200d",
    "bom": "\ufeffbob",
    "rtl_override": "\u202eevil",
    "rtl_mark": "abc\u200f",
    "arabic": "شركة النور",
    "hebrew_mixed": "Johnson שלום Tires",
    "combining": "e\u0301cole",
    "combining_start": "\u0301abc",
    "zalgo": "Z\u0351\u0363\u036ba\u0310\u0352lgo",
    "emoji": "Tires 🚗",
    "emoji_zwj": "👩\u200d👩\u200d👧 family",
    "flag": "🇺🇸 Auto",
    "percent": "%",
    "underscore": "_",
    "backslash": "\\",
    "percent_word": "50%_off",
    "like_escape": "a\\%b_c",
    "regex": ".*[abc]|(^$)+",
    "single_quote": "O'Brien",
    "double_quote": 'He said "hi"',
    "sql_drop": "'; DROP TABLE customers;--",
    "sql_or": "' OR '1'='1",
    "sql_or_double": '" OR 1=1 --',
    "formula_eq": "=1+1",
    "formula_plus": "+1",
    "formula_minus": "-1",
    "formula_at": "@SUM(A1)",
    "formula_hyperlink": '=HYPERLINK("http://x?"&A1,"click")',
    "newline": "line1\nline2",
    "crlf": "a\r\nb",
    "cr": "a\rb",
    "tab_inside": "a\tb",
    "esc": "a\x1bb",
    "del": "a\x7fb",
    "c1_nel": "a\x85b",
    "nbsp_inside": "a\u00a0b",
    "fullwidth": "Ｊｏｈｎｓｏｎ",
    "dotted_i": "İstanbul",
    "kelvin": "\u212aevin",
    "ligature": "\ufb01le",
    "max_code_point": "x\U0010ffff",
    "private_use": "x\ue000",
    "unassigned": "x\u0378",
    "noncharacter": "x\ufffe",
    "html": "<script>alert(1)</script>",
    "format_string": "%s%n{0}${x}",
    "path": "../../etc/passwd",
    "long_201": "x" * 201,
}

WRONG_TYPES: dict[str, Any] = {"int": 5, "float": 1.5, "bytes": b"bob", "list": ["bob"]}

#: Text fields of NewCustomer (kind is an enum; extra is a mapping, tried by key and by value).
CUSTOMER_FIELDS = [f.name for f in attrs.fields(ck.NewCustomer) if f.name not in ("kind", "extra")]
CUSTOMER_UPDATE_FIELDS = [
    "company_name", "customer_number", "address_line1", "address_line2", "city", "state",
    "postal_code", "country", "email", "phone", "phone_extension", "fax", "company_type",
    "category", "username", "password",
]  # fmt: skip
CONTACT_FIELDS = [f.name for f in attrs.fields(ck.NewContact) if f.name != "external_user"]
CONTACT_UPDATE_FIELDS = ["first_name", "last_name", "phone", "title", "email"]


# -- the harness ----------------------------------------------------------------------------------


@attrs.define
class Env:
    """A book, and a fresh location per input so inputs never meet each other."""

    book: ck.Book
    source: ck.InMemorySource
    serial: int = 0
    searched: tuple[ck.Actor, list[ck.Customer]] | None = None
    #: Records reused from value to value by the update entry points (see _reused_customer).
    bases: dict[str, tuple[ck.Actor, ck.Customer]] = attrs.field(factory=dict)
    contacts: dict[str, tuple[ck.Actor, ck.Contact]] = attrs.field(factory=dict)
    histories: dict[str, list[ck.ChangeRecord]] = attrs.field(factory=dict)

    def search_location(self) -> tuple[ck.Actor, list[ck.Customer]]:
        """A location holding the customers every search runs against (made once)."""
        if self.searched is None:
            actor = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="searched")
            drafts = [
                ck.NewCustomer(company_name=n, customer_number=num, city=city, state=st)
                for n, num, city, st in SEARCHED
            ]
            self.searched = (actor, self.book.customers.create_many(drafts, actor=actor))
            self.book.sources.enable("dms", location_id="searched", actor=actor)
        return self.searched

    def actor(self) -> ck.Actor:
        self.serial += 1
        return ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id=f"h-{self.serial}")


def make_env(make_book: Callable[[FakeClock], ck.Book]) -> Env:
    book = make_book(FakeClock())
    source = ck.InMemorySource(
        "dms",
        [
            ck.SourceRecord(external_id="P-1", data={"company_name": "Johnson Tires"}),
            ck.SourceRecord(external_id="P-2", data={"company_name": "O'Brien Equipment"}),
            ck.SourceRecord(external_id="P-3", data={"company_name": "50%_off Tires"}),
        ],
    )
    book.sources.register(source)
    return Env(book=book, source=source)


def state(book: ck.Book, actor: ck.Actor) -> Any:
    """What the actor's location holds: customers, their contacts and history."""
    customers = book.customers.recent(actor=actor, within=timedelta(days=36_500))
    return [
        (
            c,
            book.contacts.list(c.id, actor=actor),
            book.history.for_customer(c.id, actor=actor),
        )
        for c in customers
    ]


def names_field(error: ck.CustomerKitError, field: str) -> bool:
    """Whether the error is about ``field`` (``field`` or a key of ``errors``)."""
    keys = set(getattr(error, "errors", {}) or {})
    return error.field == field or field in keys or any(k.endswith(f".{field}") for k in keys)


Outcome = tuple[Any, ...]
Attempt = Callable[[Env, ck.Actor, Any], Any]


def attempt(env: Env, field: str, call: Attempt, value: Any) -> Outcome:
    """Run one hostile call; return its outcome or raise AssertionError saying what broke."""
    actor = env.actor()
    before = state(env.book, actor)
    try:
        stored = call(env, actor, value)
    except ck.CustomerKitError as error:
        assert names_field(error, field), (  # noqa: PT017 - classifying outcomes, not expecting
            f"{type(error).__name__} does not name {field!r}: {error}"
        )
        assert state(env.book, actor) == before, "a refused call changed the book"
        return ("refused", type(error).__name__, tuple(sorted(getattr(error, "errors", {}))))
    except AssertionError:
        raise
    except Exception as error:  # the point of this file: nothing else may escape
        raise AssertionError(f"crashed with {type(error).__name__}: {error!r}"[:500]) from error
    return ("stored", stored)


def run_corpus(
    env: Env, reference: Env | None, field: str, call: Attempt, corpus: dict[str, Any]
) -> list[str]:
    """Every corpus value through one entry point; returns the failures."""
    failures = []
    for name, value in corpus.items():
        try:
            outcome = attempt(env, field, call, value)
            if reference is not None:
                expected = attempt(reference, field, call, value)
                assert outcome == expected, f"differs from the memory backend: {expected}"
        except AssertionError as error:
            failures.append(f"{name}: {str(error)[:400]}")
    return failures


def _memory_book(clock: FakeClock) -> ck.Book:
    return ck.open_book(clock=clock, hasher=ck.PasswordHasher.for_tests())


def _backend(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params.get("make_book", "memory")) if callspec else "memory"


def trimmed(value: Any) -> Any:
    """Rule U4: what a text field stores."""
    return value.strip() if isinstance(value, str) else value


def _digest(value: Any) -> Any:
    """Outcomes hold short digests, not megabyte strings."""
    if isinstance(value, str) and len(value) > 64:
        return (len(value), hash(value))
    return value


# -- NewCustomer and customers.update -------------------------------------------------------------


def _reference_value(env: Env, actor: ck.Actor, field: str, value: Any) -> None:
    """Company types and categories must exist (rule C4): add the hostile name first, if allowed."""
    adder = env.book.reference.add_company_type
    if field == "category":
        adder = env.book.reference.add_category
    try:
        adder(value, actor=actor)
    except ck.ValidationError as error:
        assert "name" in error.errors, error  # noqa: PT017 - either outcome is allowed
    except ck.CustomerKitError as error:
        raise AssertionError(f"reference data refused with {type(error).__name__}") from error


def _customer_values(field: str, value: Any, serial: int) -> dict[str, Any]:
    values: dict[str, Any] = {"company_name": "Base Co", "customer_number": f"B-{serial}"}
    if field == "password":
        values["username"] = f"user{serial}x"
    values[field] = value
    return values


def _check_customer_field(
    env: Env, actor: ck.Actor, customer: ck.Customer, field: str, value: Any
) -> Any:
    """The value reads back exactly as stored (rule U4), from ``get`` and from the history."""
    got = env.book.customers.get(customer.id, actor=actor)
    assert got == customer, "get() differs from what the call returned"
    if field == "password":
        assert env.book.customers.verify_password(got.username or "", value) is not None
        return "hashed"
    stored = getattr(got, field)
    expected = trimmed(value)
    if field in ("company_type", "category"):
        expected = expected or None
    assert stored == expected, f"stored {_digest(stored)!r}, expected {_digest(expected)!r}"
    last = env.book.history.for_customer(customer.id, actor=actor)[-1]
    if stored not in ("", None):
        assert last.changes[field][1] == stored, "history does not hold the stored value"
    return _digest(stored)


def create_customer(field: str) -> Attempt:
    def call(env: Env, actor: ck.Actor, value: Any) -> Any:
        if field in ("company_type", "category"):
            _reference_value(env, actor, field, value)
        draft = ck.NewCustomer(**_customer_values(field, value, env.serial))
        customer = env.book.customers.create(draft, actor=actor)
        return _check_customer_field(env, actor, customer, field, value)

    return call


def _reused_customer(env: Env, key: str, **kw: Any) -> tuple[ck.Actor, ck.Customer]:
    """One base customer per field, updated value after value (creating one per value is slow
    on SQL backends); a refused update must leave it exactly as it was."""
    if key not in env.bases:
        actor = env.actor()
        draft = ck.NewCustomer(company_name="Base Co", customer_number=f"B-{env.serial}", **kw)
        env.bases[key] = (actor, env.book.customers.create(draft, actor=actor))
    return env.bases[key]


def _update_refused_unchanged(env: Env, actor: ck.Actor, base: ck.Customer) -> None:
    history = env.book.history.for_customer(base.id, actor=actor)
    assert env.book.customers.get(base.id, actor=actor) == base, "a refused update changed it"
    assert history == env.histories.get(base.id, history), "a refused update wrote history"
    env.histories[base.id] = history


def update_customer(field: str) -> Attempt:
    def call(env: Env, actor: ck.Actor, value: Any) -> Any:
        if field == "username":  # set once, then immutable: a new customer for every value
            env.bases.pop(field, None)
        extra = {"username": f"pw{env.serial}x"} if field == "password" else {}
        actor, base = _reused_customer(env, field, **extra)
        _update_refused_unchanged(env, actor, base)
        if field in ("company_type", "category"):
            _reference_value(env, actor, field, value)
        try:
            updated = env.book.customers.update(base.id, {field: value}, actor=actor)
        except ck.CustomerKitError:
            _update_refused_unchanged(env, actor, base)
            raise
        env.bases[field] = (actor, updated)
        env.histories.pop(base.id, None)
        return _check_customer_field(env, actor, updated, field, value)

    return call


def extra_entry(part: str, *, update: bool) -> Attempt:
    """``extra`` as ``{value: "x"}`` (the key) or ``{"k": value}`` (the value)."""

    def call(env: Env, actor: ck.Actor, value: Any) -> Any:
        extra = {value: "x"} if part == "key" else {"k": value}
        if update:
            actor, base = _reused_customer(env, f"extra[{part}]")
            _update_refused_unchanged(env, actor, base)
            try:
                customer = env.book.customers.update(base.id, {"extra": extra}, actor=actor)
            except ck.CustomerKitError:
                _update_refused_unchanged(env, actor, base)
                raise
            env.bases[f"extra[{part}]"] = (actor, customer)
            env.histories.pop(base.id, None)
        else:
            draft = ck.NewCustomer(
                company_name="Base", customer_number=f"B-{env.serial}", extra=extra
            )
            customer = env.book.customers.create(draft, actor=actor)
        got = env.book.customers.get(customer.id, actor=actor)
        key, item = (trimmed(value), "x") if part == "key" else ("k", trimmed(value))
        expected = {key: item} if key else {}  # a blank key carries nothing
        assert dict(got.extra) == expected, "extra does not read back as stored"
        return _digest(str(sorted(got.extra.items())))

    return call


# -- NewContact and contacts.update ----------------------------------------------------------------


def _base_customer(env: Env, actor: ck.Actor) -> ck.Customer:
    return env.book.customers.create(
        ck.NewCustomer(company_name="Base Co", customer_number=f"B-{env.serial}"), actor=actor
    )


def _purge(env: Env, actor: ck.Actor, customer: ck.Customer) -> None:
    env.book.customers.delete(customer.id, actor=actor, delete_history=True)


def _check_contact_field(
    env: Env, actor: ck.Actor, contact: ck.Contact, field: str, value: Any
) -> Any:
    got = env.book.contacts.get(contact.id, actor=actor)
    assert got == contact, "get() differs from what the call returned"
    stored = getattr(got, field)
    expected = trimmed(value)
    if field == "one_time_case_id":
        expected = expected or None
    assert stored == expected, f"stored {_digest(stored)!r}, expected {_digest(expected)!r}"
    return _digest(stored)


def add_contact(field: str) -> Attempt:
    def call(env: Env, actor: ck.Actor, value: Any) -> Any:
        customer = _base_customer(env, actor)
        values: dict[str, Any] = {"first_name": "Ann", "last_name": "Lee", field: value}
        try:
            contact = env.book.contacts.add(customer.id, ck.NewContact(**values), actor=actor)
        except ck.CustomerKitError:
            assert env.book.contacts.list(customer.id, actor=actor) == []
            _purge(env, actor, customer)
            raise
        return _check_contact_field(env, actor, contact, field, value)

    return call


def update_contact(field: str) -> Attempt:
    def call(env: Env, actor: ck.Actor, value: Any) -> Any:
        key = f"contact.{field}"
        if key not in env.contacts:  # at a location of its own, made once per field
            owner = env.actor()
            customer = _base_customer(env, owner)
            draft = ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com")
            env.contacts[key] = (owner, env.book.contacts.add(customer.id, draft, actor=owner))
        actor, base = env.contacts[key]
        try:
            contact = env.book.contacts.update(base.id, {field: value}, actor=actor)
        except ck.CustomerKitError:
            assert env.book.contacts.get(base.id, actor=actor) == base, "a refusal changed it"
            raise
        env.contacts[key] = (actor, contact)
        return _check_contact_field(env, actor, contact, field, value)

    return call


# -- search entry points ---------------------------------------------------------------------------

SEARCHED = [
    ("Johnson Tires", "C-1", "Denver", "CO"),
    ("50%_off Tires", "C-2", "Aurora", "CO"),
    ("O'Brien Equipment", "C-3", "Denver", "KS"),
    ("ÉCOLE Auto", "C-4", "Lyon", ""),
    ("Tires 🚗 and more", "C-5", "", ""),
    ("Johnson שלום Tires", "C-6", "", ""),
    ("a\\%b_c Co", "C-7", "", ""),
]


def customers_search(field: ck.SearchField) -> Attempt:
    def call(env: Env, _: ck.Actor, value: Any) -> Any:
        actor, customers = env.search_location()
        hits = env.book.customers.search(value, actor=actor, field=field)
        documents = [
            SearchDocument(
                id=c.id,
                location_id=c.location_id,
                name=c.company_name,
                city=c.city,
                state=c.state,
                number=c.customer_number,
            )
            for c in customers
        ]
        expected = oracle_search(documents, actor.location_id, parse_query(value, field), limit=20)
        got = [(h.customer.id, h.score, h.field) for h in hits]
        assert got == [(m.customer_id, m.score, m.field) for m in expected], "not literal"
        names = {c.id: c.company_name for c in customers}
        return [names[i] for i, _, _ in got]

    return call


def recent_text(env: Env, _: ck.Actor, value: Any) -> Any:
    actor, _customers = env.search_location()
    found = env.book.customers.recent(actor=actor, text=value)
    wanted = query_words(value) if isinstance(value, str) else ()
    for customer in found:
        haystack = " ".join(
            words(
                f"{customer.company_name} {customer.customer_number} "
                f"{customer.city} {customer.state}"
            )
        )
        assert all(word in haystack for word in wanted), "recent(text=) is not literal"
    return sorted(c.company_name for c in found)


def sources_search(env: Env, _: ck.Actor, value: Any) -> Any:
    actor, _customers = env.search_location()
    hits = env.book.sources.search("dms", value, actor=actor)
    for hit in hits:
        name = " ".join(words(hit.record.data["company_name"]))
        assert all(w in name for w in query_words(value)), "sources.search is not literal"
        assert hit.customer_id is None
    return [hit.record.external_id for hit in hits]


ENTRY_POINTS: dict[str, tuple[str, Attempt]] = {
    **{f"NewCustomer.{f}": (f, create_customer(f)) for f in CUSTOMER_FIELDS},
    "NewCustomer.extra[key]": ("extra", extra_entry("key", update=False)),
    "NewCustomer.extra[value]": ("extra", extra_entry("value", update=False)),
    **{f"customers.update.{f}": (f, update_customer(f)) for f in CUSTOMER_UPDATE_FIELDS},
    "customers.update.extra[key]": ("extra", extra_entry("key", update=True)),
    "customers.update.extra[value]": ("extra", extra_entry("value", update=True)),
    **{f"NewContact.{f}": (f, add_contact(f)) for f in CONTACT_FIELDS},
    **{f"contacts.update.{f}": (f, update_contact(f)) for f in CONTACT_UPDATE_FIELDS},
    "customers.search(ALL)": ("query", customers_search(ck.SearchField.ALL)),
    "customers.search(NAME)": ("query", customers_search(ck.SearchField.NAME)),
    "customers.search(STATE)": ("query", customers_search(ck.SearchField.STATE)),
    "customers.recent(text=)": ("text", recent_text),
    "sources.search": ("query", sources_search),
}


#: Entry points grouped so each backend opens one book per group, not one per field.
FAMILIES = ("NewCustomer", "customers.update", "NewContact", "contacts.update", "search")


def _family(entry: str) -> str:
    return next((f for f in FAMILIES[:-1] if entry.startswith(f"{f}.")), "search")


def _check_family(
    make_book: Callable[[FakeClock], ck.Book],
    request: pytest.FixtureRequest,
    entries: list[str],
    corpus_for: Callable[[str], dict[str, Any]],
) -> None:
    env = make_env(make_book)
    reference = None if _backend(request) == "memory" else make_env(_memory_book)
    failures = []
    for entry in entries:
        field, call = ENTRY_POINTS[entry]
        failures += [
            f"{entry} {f}" for f in run_corpus(env, reference, field, call, corpus_for(entry))
        ]
    env.book.close()
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_text_is_refused_by_field_or_stored_exactly(
    make_book: Callable[[FakeClock], ck.Book], request: pytest.FixtureRequest, family: str
) -> None:
    """d1-d4, T12: every corpus value, in every field, is refused naming it or stored exactly.

    A number, bytes or a list where text belongs is a ValidationError naming the field too.
    """

    def corpus_for(entry: str) -> dict[str, Any]:
        # (a key of another type is the caller's own mapping: extra is tried by value)
        if entry.endswith("extra[key]"):
            return CORPUS
        return {**CORPUS, **WRONG_TYPES}

    entries = [e for e in ENTRY_POINTS if _family(e) == family]
    _check_family(make_book, request, entries, corpus_for)


def test_hostile_searches_leave_the_tables_intact(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """d4: SQL fragments and wildcards are literal; every customer is still there after."""
    env = make_env(make_book)
    actor, customers = env.search_location()
    for value in CORPUS.values():
        with _refusal_allowed():
            env.book.customers.search(value, actor=actor)
        with _refusal_allowed():
            env.book.customers.recent(actor=actor, text=value)
    for wildcard in ("%%%", "___", "%_%", ".*.*"):
        with pytest.raises(ck.QueryTooShort):  # no word: never "match everything"
            env.book.customers.search(wildcard, actor=actor)
    assert sorted(c.id for c in env.book.customers.recent(actor=actor)) == sorted(
        c.id for c in customers
    )


class _refusal_allowed:  # noqa: N801 - reads as a context manager
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, ck.CustomerKitError)


@pytest.mark.parametrize("number", ["%", "-", "🚗", "\u200b"])
def test_c1_number_without_letters_or_digits_is_refused(
    make_book: Callable[[FakeClock], ck.Book], number: str
) -> None:
    """Rules C1, C2: a customer number that normalises to nothing is no number.

    Accepted, every such number would clash with every other one at the location
    (``"%"`` and ``"-"`` would be "the same number").
    """
    book = make_book(FakeClock())
    actor = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    with pytest.raises(ck.ValidationError) as caught:
        book.customers.create(
            ck.NewCustomer(company_name="Co", customer_number=number), actor=actor
        )
    assert "customer_number" in caught.value.errors
