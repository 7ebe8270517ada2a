"""Reading the change history (rule C5)."""

from __future__ import annotations

import attrs

from customerkit.errors import NotFound
from customerkit.model import Actor, ChangeRecord
from customerkit.policy import Action
from customerkit.services._context import Context, checks_actors, customer_target


@checks_actors
@attrs.define
class HistoryService:
    """``book.history``: what changed, who changed it, when, from what to what."""

    _ctx: Context

    def for_customer(self, customer_id: str, *, actor: Actor) -> list[ChangeRecord]:  # rule C6
        """Every change of a customer and its contacts, oldest first.

        A deleted customer's history stays readable while its tombstone exists.
        """
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            customer = uow.customers.get(customer_id) if isinstance(customer_id, str) else None
            if customer is None:
                raise NotFound("customer", str(customer_id))
            self._ctx.authorize(actor, Action.HISTORY_READ, customer_target(customer))
            return uow.history.for_customer(customer_id)
