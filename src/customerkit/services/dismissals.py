"""Pairs a person decided are not duplicates: dismiss, undismiss, list (rules M1, M2).

One mechanism serves contacts and customers; a ``DismissalKind`` says what differs. A
dismissal names two live records of one location: two customers, or two contacts of one
customer (contacts are only ever compared within their customer). Duplicate detection then
never reports the pair and never puts the two in one group.

Merges keep dismissals meaningful without rewriting them: a dismissal is stored with the ids as
dismissed, and matching reads each id as the live record it stands for now (a merged record
stands for its main). When B is merged into A, "B is not C" becomes "A is not C": A now holds
what B was. Unmerging B brings back "B is not C" alone. A pair whose ids now stand for one
record (merged after all) or for a deleted record no longer applies, and is kept as history.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any, ClassVar, Literal

import attrs

from customerkit.errors import DismissError, NotFound
from customerkit.matching import SimilarMatch
from customerkit.model import Actor, Customer, Dismissal, RecordStatus
from customerkit.policy import Action, Target
from customerkit.ports import UnitOfWork
from customerkit.services._context import (
    Context,
    checks_actors,
    customer_target,
    record_history,
    retried,
)

Record = Any  # Contact | Customer


@attrs.frozen(kw_only=True)
class DismissalKind:
    """What dismissing one kind of record needs to know."""

    name: Literal["contact", "customer"]
    #: The policy action deciding who may dismiss: the kind's merge action.
    action: Action
    #: The policy action deciding who may list dismissals: the kind's read action.
    read_action: Action
    repository: Callable[[UnitOfWork], Any]
    #: The customer a record belongs to (itself, for a customer), in any status.
    customer_of: Callable[[UnitOfWork, Record], Customer | None]
    #: What two records must share to be compared at all.
    same_group: Callable[[Record], str]
    #: Why two records not sharing that cannot be dismissed.
    apart_message: str


CUSTOMER_DISMISSAL = DismissalKind(
    name="customer",
    action=Action.CUSTOMER_MERGE,
    read_action=Action.CUSTOMER_READ,
    repository=lambda uow: uow.customers,
    customer_of=lambda uow, customer: customer,
    same_group=lambda customer: customer.location_id,
    apart_message="the two customers belong to different locations and are never compared",
)

CONTACT_DISMISSAL = DismissalKind(
    name="contact",
    action=Action.CONTACT_MERGE,
    read_action=Action.CONTACT_READ,
    repository=lambda uow: uow.contacts,
    customer_of=lambda uow, contact: uow.customers.get(contact.customer_id),
    same_group=lambda contact: contact.customer_id,
    apart_message=(
        "contacts are compared only with contacts of the same customer; "
        "dismiss pairs of one customer's contacts"
    ),
)


def _ordered(left_id: object, right_id: object, entity: str) -> tuple[str, str]:
    """The two ids, smaller first; a record paired with itself is refused."""
    if not isinstance(left_id, str):
        raise NotFound(entity, str(left_id))
    if not isinstance(right_id, str):
        raise NotFound(entity, str(right_id))
    if left_id == right_id:
        raise DismissError(
            "a record cannot be dismissed as a duplicate of itself; name two records",
            field="right_id",
        )
    low, high = sorted((left_id, right_id))
    return low, high


def _checked_pair(
    ctx: Context,
    uow: UnitOfWork,
    kind: DismissalKind,
    left_id: str,
    right_id: str,
    *,
    actor: Actor,
    live: bool,
) -> tuple[tuple[str, str], list[tuple[Record, Customer]], str]:
    """The ordered ids, both records with their customers, and their location; all checked.

    ``live`` asks for live records of live customers that are compared with each other
    (dismiss); otherwise any two existing records do (undismiss: a pair may be taken back
    after a merge or a delete).
    """
    ids = _ordered(left_id, right_id, kind.name)
    found = []
    for record_id in ids:
        record = kind.repository(uow).get(record_id)
        owner = None if record is None else kind.customer_of(uow, record)
        if owner is None or (live and not (record.is_live and owner.is_live)):
            raise NotFound(kind.name, record_id)
        ctx.authorize(actor, kind.action, customer_target(owner))
        found.append((record, owner))
    (left, owner), (right, _) = found
    # Only pairs that are compared can be dismissed; a stored one can always be taken back,
    # even after a customer merge moved one contact of the pair but not its merged partner.
    if live and kind.same_group(left) != kind.same_group(right):
        raise DismissError(kind.apart_message, field="right_id")
    return ids, found, owner.location_id


def _record(
    ctx: Context,
    uow: UnitOfWork,
    found: Sequence[tuple[Record, Customer]],
    *,
    action: str,
    actor: Actor,
    change: Callable[[str], tuple[str | None, str | None]],
) -> None:
    """One history entry per record, naming the other: each customer's history reads whole."""
    for (record, _), (other, _) in zip(found, reversed(found), strict=True):
        record_history(
            ctx,
            uow,
            record,
            action=action,
            actor=actor,
            changes={"not_duplicate_of": change(other.id)},
        )


def dismiss(
    ctx: Context, kind: DismissalKind, left_id: str, right_id: str, *, actor: Actor
) -> Dismissal:
    """Record that two live records are not duplicates; repeating it changes nothing."""
    with ctx.store.unit_of_work() as uow:
        ids, found, location_id = _checked_pair(
            ctx, uow, kind, left_id, right_id, actor=actor, live=True
        )
        dismissal = Dismissal(
            kind=kind.name,
            location_id=location_id,
            left_id=ids[0],
            right_id=ids[1],
            actor_id=actor.user_id,
            at=ctx.now(),
        )
        stored = uow.dismissals.add(dismissal)
        if stored is not None:  # dismissed already (perhaps by a racing call): a repeat
            return stored
        _record(ctx, uow, found, action="dismiss", actor=actor, change=lambda other: (None, other))
        uow.commit()
    return dismissal


def dismissed(ctx: Context, kind: DismissalKind, *, actor: Actor) -> list[Dismissal]:
    """The dismissals of the actor's location, with the ids as they were dismissed."""
    ctx.authorize(actor, kind.read_action, Target(location_id=actor.location_id))
    with ctx.store.unit_of_work(read_only=True) as uow:
        return uow.dismissals.for_location(actor.location_id, kind.name)


@checks_actors
class Undismissing:
    """``undismiss`` for a service whose records can be dismissed as not duplicates.

    The service names its ``DismissalKind`` in ``_dismissal``; taking a dismissal back reads
    the same for customers and contacts.
    """

    __slots__ = ()
    _ctx: Context
    _dismissal: ClassVar[DismissalKind]

    @retried
    def undismiss(self, left_id: str, right_id: str, *, actor: Actor) -> None:
        """Take back a dismissal: the pair can be reported as duplicates again.

        Nothing happens when the pair is not dismissed. The records may have been merged or
        deleted since; pass the ids as ``dismissed`` lists them.
        """
        kind = self._dismissal
        with self._ctx.store.unit_of_work() as uow:
            ids, found, location_id = _checked_pair(
                self._ctx, uow, kind, left_id, right_id, actor=actor, live=False
            )
            if not uow.dismissals.remove(location_id, kind.name, *ids):
                return
            _record(
                self._ctx,
                uow,
                found,
                action="undismiss",
                actor=actor,
                change=lambda other: (other, None),
            )
            uow.commit()


def _stands_for(repository: Any, record_id: str) -> str | None:
    """The live record an id stands for now: itself, or the main it was merged into."""
    record = repository.get(record_id)
    seen: set[str] = set()
    while record is not None and record.status is RecordStatus.MERGED:
        if record.merged_into is None or record.id in seen:
            return None
        seen.add(record.id)
        record = repository.get(record.merged_into)
    return record.id if record is not None and record.is_live else None


def pairs_in_force(
    uow: UnitOfWork, kind: DismissalKind, location_id: str, live_ids: Container[str] = ()
) -> list[tuple[str, str]]:
    """A location's dismissed pairs as they apply now: ids resolved through merges.

    Args:
        uow: The unit of work to read in.
        kind: Contacts or customers.
        location_id: The location.
        live_ids: Ids known to be live (not looked up again).

    Returns:
        Pairs of live ids; pairs that no longer apply (a record deleted, or both merged into
        one) are left out.
    """
    repository = kind.repository(uow)
    now: dict[str, str | None] = {}
    pairs = []
    for dismissal in uow.dismissals.for_location(location_id, kind.name):
        ends: list[str | None] = []
        for record_id in (dismissal.left_id, dismissal.right_id):
            if record_id in live_ids:
                ends.append(record_id)
                continue
            if record_id not in now:
                now[record_id] = _stands_for(repository, record_id)
            ends.append(now[record_id])
        left, right = ends
        if left is not None and right is not None and left != right:
            pairs.append((left, right))
    return pairs


def without_dismissed(
    uow: UnitOfWork,
    kind: DismissalKind,
    location_id: str,
    draft: object,
    found: Iterable[SimilarMatch],
) -> list[SimilarMatch]:
    """``found`` without the records dismissed with ``draft``, when it is a stored record."""
    found = list(found)
    record_id = getattr(draft, "id", None)
    if not isinstance(record_id, str) or not found:
        return found
    me = _stands_for(kind.repository(uow), record_id) or record_id
    pairs = pairs_in_force(uow, kind, location_id)
    others = {b for a, b in pairs if a == me} | {a for a, b in pairs if b == me}
    return [match for match in found if getattr(match.record, "id", None) not in others]
