"""How ``book.customers`` finds a location's duplicate customers: in memory, or in chunks.

``CustomerService.find_duplicates`` documents the behaviour; it calls ``find``.
"""

from __future__ import annotations

from customerkit.errors import ValidationError
from customerkit.matching import DuplicateReport, MatchConfig, find_duplicates
from customerkit.matching.kept import find_kept_duplicates
from customerkit.model import Actor
from customerkit.policy import Action, Target
from customerkit.ports import UnitOfWork
from customerkit.services import accelerators, dismissals
from customerkit.services._context import Context

_DISMISSAL = dismissals.CUSTOMER_DISMISSAL


def find(
    ctx: Context, *, actor: Actor, workers: int | None, chunk_size: int | None
) -> DuplicateReport:
    """The report of ``CustomerService.find_duplicates``."""
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValidationError({"workers": "give 1 or more worker processes, or None"})
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 2):
        raise ValidationError({"chunk_size": "give a chunk size of 2 or more"})
    ctx.authorize(actor, Action.CUSTOMER_READ, Target(location_id=actor.location_id))
    config = ctx.config
    match = config.match_for("customer")
    location_id = actor.location_id
    with ctx.store.unit_of_work(read_only=True) as uow:
        chunks = _chunks(uow, match, location_id, chunk_size)
        if chunks is None:
            customers = list(uow.customers.iter_location(location_id))
            live = {customer.id for customer in customers}
            apart = dismissals.pairs_in_force(uow, _DISMISSAL, location_id, live)
    if chunks is None:
        return find_duplicates(
            customers, kind="customer", config=match, region=config.phone_region, dismissed=apart
        )
    with ctx.store.unit_of_work() as uow:
        accelerators.keep_blocks(uow, location_id, region=config.phone_region)
        uow.commit()  # the keys are kept from now on
    with ctx.store.unit_of_work(read_only=True) as uow:
        return find_kept_duplicates(
            accelerators.kept_blocks(uow, location_id),
            kind="customer",
            config=match,
            region=config.phone_region,
            dismissed=dismissals.pairs_in_force(uow, _DISMISSAL, location_id),
            workers=workers,
            chunk_size=chunks,
        )


def _chunks(
    uow: UnitOfWork, match: MatchConfig, location_id: str, chunk_size: int | None
) -> int | None:
    """The chunk size to read the location's duplicates in, or None to match it in memory.

    Chunks only when asked for, on a backend that keeps the blocking keys, and for a location
    larger than one chunk: in memory is faster whenever the customers fit.
    """
    if chunk_size is None or not accelerators.keeps_blocks(uow, match):
        return None
    return chunk_size if accelerators.count(uow.customers, location_id) > chunk_size else None
