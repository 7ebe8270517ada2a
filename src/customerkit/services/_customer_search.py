"""How ``book.customers`` finds customers: ranked search and the recent list.

``CustomerService.search`` and ``recent`` document the behaviour; they call these.
"""

from __future__ import annotations

from datetime import timedelta

from customerkit.errors import ValidationError
from customerkit.model import Actor, Customer, SearchField, SearchHit
from customerkit.policy import Action, Target
from customerkit.ports import UnitOfWork
from customerkit.search.query import RankedMatch, SearchQuery, check_limit, parse_query
from customerkit.services import accelerators
from customerkit.services._context import Context
from customerkit.text import query_words, words
from customerkit.validation import clean_text


def search(
    ctx: Context, query: str, *, actor: Actor, field: SearchField, limit: int, fuzzy: bool
) -> list[SearchHit]:
    """The hits of ``CustomerService.search``."""
    parsed = parse_query(query, field, fuzzy=fuzzy)
    check_limit(limit)
    fleet_id = actor.fleet_customer_id if isinstance(actor, Actor) else None
    ctx.authorize(
        actor,
        Action.CUSTOMER_READ,
        Target(location_id=actor.location_id, customer_id=fleet_id),
    )
    with ctx.store.unit_of_work(read_only=True) as uow:
        if fleet_id is None:
            matches = accelerators.search(uow.customers, actor.location_id, parsed, limit=limit)
        else:
            matches = _fleet_search(uow, fleet_id, actor.location_id, parsed)
        found = accelerators.get_many(uow.customers, [match.customer_id for match in matches])
        return [
            SearchHit(customer=customer, score=match.score, field=match.field)
            for match in matches
            if (customer := found.get(match.customer_id)) is not None
        ]


def recent(
    ctx: Context, *, actor: Actor, within: timedelta | None, text: str | None
) -> list[Customer]:
    """The customers of ``CustomerService.recent``, newest first."""
    ctx.authorize(actor, Action.CUSTOMER_READ, Target(location_id=actor.location_id))
    window = ctx.config.recent_window if within is None else within
    if not isinstance(window, timedelta) or window < timedelta(0):
        raise ValidationError({"within": "must be a positive timedelta"})
    wanted = query_words(clean_text(text, "text")) if text else ()
    since = ctx.now() - window
    with ctx.store.unit_of_work(read_only=True) as uow:
        found = accelerators.created_since(uow.customers, actor.location_id, since)
    if wanted:
        found = [customer for customer in found if _contains_all(customer, wanted)]
    return sorted(found, key=lambda c: (c.created_at, c.id), reverse=True)


def _fleet_search(
    uow: UnitOfWork, fleet_id: str, location_id: str, query: SearchQuery
) -> list[RankedMatch]:
    """A fleet user's search: its one customer, if it matches (rule P2 before the limit).

    Filtering a page of the location's hits would lose the fleet's customer whenever others
    rank above it, so the search runs over that one customer, by the reference semantics every
    backend's index agrees with.
    """
    customer = uow.customers.get(fleet_id)
    if customer is None or not customer.is_live:
        return []
    return accelerators.reference_search([customer], location_id, query, limit=1)


def _contains_all(customer: Customer, wanted: tuple[str, ...]) -> bool:
    haystack = " ".join(
        words(
            f"{customer.company_name} {customer.customer_number} {customer.city} {customer.state}"
        )
    )
    return all(word in haystack for word in wanted)
