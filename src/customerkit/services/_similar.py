"""How ``book.customers`` and ``book.contacts`` find records like a draft (rule M6).

``CustomerService.find_similar`` and ``ContactService.find_similar`` document the behaviour;
both call ``similar``, so the matching settings and the dismissed pairs are applied one way.
"""

from __future__ import annotations

from collections.abc import Sequence

from customerkit.matching import MatchIndex, SimilarMatch
from customerkit.model import Contact, Customer
from customerkit.ports import UnitOfWork
from customerkit.services import accelerators, dismissals
from customerkit.services._context import Context


def similar(
    ctx: Context,
    uow: UnitOfWork,
    kind: dismissals.DismissalKind,
    draft: object,
    location_id: str,
    *,
    records: Sequence[Customer | Contact] | None = None,
) -> list[SimilarMatch]:
    """Records like ``draft``, best first, without those dismissed with it.

    Compared with ``records`` when given, else with every live record of the kind at the
    location, through the backend's matching index when it keeps one.
    """
    config, region = ctx.config.match_for(kind.name), ctx.config.phone_region
    if records is None:
        index = accelerators.match_index(uow, kind.name, location_id, region=region, config=config)
    else:
        index = MatchIndex.build(records, kind=kind.name, config=config, region=region)
    return dismissals.without_dismissed(uow, kind, location_id, draft, index.find_similar(draft))
