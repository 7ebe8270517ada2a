"""Never executed: mypy --strict checks that the public API types the way users write it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import customerkit as ck
from customerkit.config import BookConfig


class DictSource:
    """A user's own source answering with plain mappings, as the protocol allows."""

    name = "dms"

    def search(self, query: str, field: ck.SearchField) -> list[dict[str, object]]:
        return [{"external_id": "P-1", "data": {"company_name": query}}]

    def fetch(self, external_id: str) -> Mapping[str, object] | None:
        return None


def sources() -> tuple[ck.CustomerSource, ...]:
    shipped: ck.CustomerSource = ck.InMemorySource("dms", [])
    own: ck.CustomerSource = DictSource()
    return shipped, own


def tour() -> tuple[object, ...]:
    book: ck.Book = ck.open_book(clock=lambda: datetime.now(UTC))
    admin = ck.Actor(user_id="u1", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    c: ck.Customer = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=admin
    )
    c = book.customers.update(
        c.id, {"phone": "303 555 0142"}, actor=admin, expected_version=c.version
    )
    hits: list[ck.SearchHit] = book.customers.search("john", actor=admin, field=ck.SearchField.NAME)
    score: float = hits[0].score
    recent: list[ck.Customer] = book.customers.recent(actor=admin, within=timedelta(days=7))
    rows: int = book.customers.export(io.StringIO(), actor=admin, format="jsonl")
    name: str = book.customers.suggest_username("Ann", "Lee", "303 555 0142")
    k: ck.Contact = book.contacts.add(
        c.id, ck.NewContact(first_name="A", last_name="B"), actor=admin
    )
    people: list[ck.Recipient] = book.contacts.recipients(c.id, case=ck.CaseRef("x"))
    unused: ck.UnusedContacts = book.contacts.unused(c.id, actor=admin)
    history: list[ck.ChangeRecord] = book.history.for_customer(c.id, actor=admin)
    hits_in_source: list[ck.SourceHit] = book.sources.search("dms", "john", actor=admin)
    strict = ck.open_book(
        config=ck.BookConfig(
            match=ck.MatchConfig(threshold=0.9), customer_match=ck.MatchConfig(threshold=0.8)
        )
    )
    dismissal: ck.Dismissal = book.customers.dismiss(c.id, "other", actor=admin)
    book.contacts.undismiss(k.id, "other", actor=admin)
    dismissed: list[ck.Dismissal] = book.contacts.dismissed(actor=admin, customer_id=c.id)
    like_c: list[ck.SimilarMatch] = book.customers.find_similar(c, actor=admin)
    merged_contact: ck.Contact = book.contacts.merge(k.id, ["other"], actor=admin).main
    merged_customer: ck.Customer = book.customers.merge(c.id, ["other"], actor=admin).main
    config: ck.BookConfig = BookConfig(phone_region="CA")
    return (
        score,
        recent,
        rows,
        name,
        k,
        people,
        unused,
        history,
        hits_in_source,
        strict,
        dismissal,
        dismissed,
        like_c,
        merged_contact.first_name,
        merged_customer.company_name,
        config,
    )
