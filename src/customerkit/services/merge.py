"""Reversible N-way merges of contacts or customers (rules M3, M4).

One mechanism serves both kinds; a ``MergeKind`` says what differs (which repository,
which fields fill blanks, what must be shared, what moves along). A merge is one transaction:
the main keeps its values and gains the others' non-blank values where it was blank; the latest
communication wins; the others become MERGED tombstones pointing at the main, so their ids keep
resolving. The merge record keeps the main's previous values and where every surviving value
came from, so ``unmerge`` can put everything back, or refuse when later changes make that
unsafe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from customerkit.errors import (
    ConcurrentModification,
    CustomerKitError,
    MergeError,
    NotFound,
    ValidationError,
)
from customerkit.identity import email_key, phone_key
from customerkit.model import (
    CUSTOMER_FILL_FIELDS,
    Actor,
    ChangeRecord,
    Contact,
    MergeResult,
    RecordStatus,
    Survivorship,
)
from customerkit.ports import UnitOfWork
from customerkit.services._context import Context, record_change

Record = Any  # Contact | Customer: both frozen attrs records with id, version, status


@attrs.frozen(kw_only=True)
class MergeKind:
    """What a merge of one kind of record needs to know."""

    name: str
    fill_fields: tuple[str, ...]
    repository: Callable[[UnitOfWork], Any]
    customer_of: Callable[[Record], str]
    same_group: Callable[[Record], str]
    refuse: Callable[[Record, Sequence[Record]], str | None]
    #: Changes an unmerged record takes from the main (contacts follow it to its customer).
    follow_main: Callable[[Record], dict[str, Any]] = lambda main: {}
    #: Fields whose values that do not survive are kept, with the field keeping them.
    alternates: Mapping[str, str] = attrs.field(
        factory=lambda: {"email": "alternate_emails", "phone": "alternate_phones"}
    )


def _iso(value: Any) -> Any:
    """A value as the merge record stores it (JSON-friendly, equal after a round trip)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return list(value) if isinstance(value, tuple) else value


def _merge_id(kind: str, main_id: str, other_ids: Sequence[str], attempt: int) -> str:
    digest = hashlib.sha256(f"{kind}:{main_id}:{','.join(sorted(other_ids))}".encode())
    return f"m-{digest.hexdigest()[:24]}-{attempt}"


def _check_request(main_id: str, other_ids: Sequence[str], limit: int) -> list[str]:
    if isinstance(other_ids, str) or not isinstance(other_ids, Sequence):
        raise ValidationError({"other_ids": "pass a list of the ids to merge into the main"})
    others = list(dict.fromkeys(other_ids))
    if not others:
        raise MergeError("name at least one record to merge into the main", field="other_ids")
    if main_id in others:
        raise MergeError("a record cannot be merged into itself", field="other_ids")
    if len(others) + 1 > limit:
        raise MergeError(f"a merge takes at most {limit} records; split it", field="other_ids")
    return others


def _existing_merge(
    uow: UnitOfWork, kind: MergeKind, main_id: str, others: Sequence[str]
) -> tuple[str, dict[str, Any] | None]:
    """The id for this merge, and its record when the same merge was done already."""
    attempt = 1
    while True:
        merge_id = _merge_id(kind.name, main_id, others, attempt)
        record = uow.merges.get(merge_id)
        if record is None:
            return merge_id, None
        if not record["undone"]:
            return merge_id, dict(record)
        attempt += 1


def _survivor(rule: Survivorship, name: str, records: Sequence[Record]) -> Record | None:
    """The record whose value of ``name`` survives; ``records`` starts with the main."""
    candidates = [r for r in records if getattr(r, name)]
    if not candidates:
        return None
    if rule is Survivorship.MOST_RECENT:  # max keeps the first of equals: the main wins ties
        return max(candidates, key=lambda r: r.updated_at)
    if rule is Survivorship.LONGEST:
        return max(candidates, key=lambda r: len(str(getattr(r, name))))
    return candidates[0]


def _same_key(field: str, region: str) -> Callable[[str], str]:
    """What makes two values of ``field`` the same address or number."""

    def key(value: str) -> str:
        try:
            if field == "email":
                return email_key(value)
            return str(phone_key(value, region=region))
        except (CustomerKitError, ValueError):  # stored before a rule tightened: keep as typed
            return value.strip().casefold()

    return key


def _alternates(field: str, kept: str, records: Sequence[Record], region: str) -> tuple[str, ...]:
    """The values of ``field`` (and alternates of it) other than ``kept``, each once."""
    key = _same_key(field, region)
    seen = {key(kept)} if kept else set()
    out = []
    for record in records:
        alternates = getattr(record, f"alternate_{field}s")
        for value in (getattr(record, field), *alternates):
            if value and key(value) not in seen:
                seen.add(key(value))
                out.append(value)
    return tuple(out)


def plan(
    kind: MergeKind,
    main: Record,
    others: Sequence[Record],
    now: datetime,
    rules: Mapping[str, Survivorship] | None = None,
    *,
    region: str = "US",
) -> tuple[Record, dict[str, str]]:
    """The merged main and where every field's value comes from, without writing anything."""
    changes: dict[str, Any] = {}
    provenance = dict.fromkeys(kind.fill_fields, main.id)
    source = getattr(main, "source", None)
    locked = set(source.fields) if source is not None else set()  # the DMS wins (D4)
    for name in kind.fill_fields:
        if name in locked:
            continue
        rule = (rules or {}).get(name, Survivorship.MAIN)
        if isinstance(main, Contact) and name == "email":
            rule = Survivorship.MAIN
        survivor = _survivor(rule, name, (main, *others))
        if survivor is not None and survivor is not main:
            changes[name] = getattr(survivor, name)
            provenance[name] = survivor.id
    for name, alternate_field in kind.alternates.items():
        kept = changes.get(name, getattr(main, name))
        alternates = _alternates(name, kept, (main, *others), region)
        if alternates != getattr(main, alternate_field):
            changes[alternate_field] = alternates
            provenance[alternate_field] = ",".join(
                dict.fromkeys(r.id for r in (main, *others) if set(alternates) & _values(r, name))
            )
    if isinstance(main, Contact):
        latest = max(
            (c for c in (main, *others) if c.last_communicated_at is not None),
            key=lambda c: c.last_communicated_at,
            default=None,
        )
        if latest is not None:
            changes["last_communicated_at"] = latest.last_communicated_at
            provenance["last_communicated_at"] = latest.id
    merged = attrs.evolve(main, **changes, updated_at=now, version=main.version + 1)
    return merged, provenance


def _values(record: Record, field: str) -> set[str]:
    return {getattr(record, field), *getattr(record, f"alternate_{field}s")}


def merge(
    ctx: Context,
    kind: MergeKind,
    main_id: str,
    other_ids: Sequence[str],
    *,
    actor: Actor,
    authorize: Callable[[UnitOfWork, Record], None],
    dry_run: bool = False,
    move_children: Callable[[UnitOfWork, Record, Record], list[str]] | None = None,
) -> MergeResult:
    """Merge ``other_ids`` into ``main_id`` atomically, or preview it with ``dry_run``."""
    others_ids = _check_request(main_id, other_ids, ctx.config.max_merge_size)
    with ctx.store.unit_of_work() as uow:
        repo = kind.repository(uow)
        found = _read_in_id_order(repo, (main_id, *others_ids))
        main = found.get(main_id) if isinstance(main_id, str) else None
        if main is None or main.status is RecordStatus.DELETED:
            raise NotFound(kind.name, str(main_id))
        authorize(uow, main)
        merge_id, done = _existing_merge(uow, kind, main.id, others_ids)
        if done is not None:  # repeating the same merge returns the first result (RELIABILITY 7)
            return _repeated(repo, main, merge_id, done, dry_run=dry_run)
        if not main.is_live:
            raise MergeError(
                f"the main {kind.name} was merged into {main.merged_into}; merge into that one",
                field="main_id",
            )
        try:
            others = [_live_other(found, kind, main, other_id) for other_id in others_ids]
        except MergeError:
            # The same merge may have committed since we looked (a client's retry racing it, on
            # PostgreSQL): answer as a repeat after it does.
            merge_id, done = _existing_merge(uow, kind, main.id, others_ids)
            if done is None:
                raise
            return _repeated(repo, repo.get(main.id), merge_id, done, dry_run=dry_run)
        problem = kind.refuse(main, others)
        if problem is not None:
            raise MergeError(problem, field="other_ids")
        now = ctx.now()
        merged, provenance = plan(
            kind, main, others, now, ctx.config.survivorship, region=ctx.config.phone_region
        )
        result = MergeResult(
            merge_id=None if dry_run else merge_id,
            main=merged,
            merged_ids=tuple(o.id for o in others),
            provenance=provenance,
        )
        if dry_run:
            return result
        moved: dict[str, list[str]] = {}
        # Tombstones merged into the others earlier now point at the main: no id ever resolves
        # through a tombstone (RELIABILITY d6), and unmerge points them back.
        chained = {other.id: repo.merged_into(other.id) for other in others}
        repointed = {
            other_id: [t.id for t in found] for other_id, found in chained.items() if found
        }
        earlier = [t for found in chained.values() for t in found]
        # One write per merged record, not per tombstone: a chain of merges re-points every
        # earlier tombstone each time, and a statement each made chains quadratic in time.
        for other_id, ids in repointed.items():
            repo.repoint(ids, from_id=other_id, to_id=main.id, at=now)
        # Row locks in ascending id order, the main's included, or overlapping merges deadlock
        # (RELIABILITY 3); the main's real write comes last, once the others freed their keys.
        for other in sorted((main, *others, *earlier), key=lambda o: o.id):
            if other is main:
                repo.update(main, expected_version=main.version)  # unchanged: locks it only
                continue
            if other.status is RecordStatus.MERGED:
                changes = {"merged_into": (other.merged_into, main.id)}
                _history(
                    ctx, uow, kind, other, action="repointed", actor=actor, changes=changes, at=now
                )
                continue
            tombstone = attrs.evolve(
                other,
                status=RecordStatus.MERGED,
                merged_into=main.id,
                updated_at=now,
                version=other.version + 1,
            )
            repo.update(tombstone, expected_version=other.version)
            if move_children is not None:
                moved[other.id] = move_children(uow, other, main)
            _history(
                ctx,
                uow,
                kind,
                other,
                action="merged",
                actor=actor,
                changes={"merged_into": (None, main.id)},
                at=now,
            )
        repo.update(merged, expected_version=main.version)
        filled = {
            name: (_iso(getattr(main, name)), _iso(getattr(merged, name)))
            for name in (*kind.fill_fields, *kind.alternates.values(), "last_communicated_at")
            if hasattr(main, name) and getattr(main, name) != getattr(merged, name)
        }
        changes = {**filled, "merged_ids": ((), result.merged_ids)}
        _history(ctx, uow, kind, merged, action="merge", actor=actor, changes=changes, at=now)
        uow.merges.add(
            merge_id,
            {
                "kind": kind.name,
                "main_id": main.id,
                "merged_ids": list(result.merged_ids),
                "filled": {name: [old, new] for name, (old, new) in filled.items()},
                "provenance": provenance,
                "moved": moved,
                "repointed": repointed,
                "actor_id": actor.user_id,
                "at": now.isoformat(),
                "undone": False,
            },
        )
        uow.commit()
    return result


def unmerge(
    ctx: Context,
    kind: MergeKind,
    merge_id: str,
    *,
    actor: Actor,
    authorize: Callable[[UnitOfWork, Record], None],
    move_back: Callable[[UnitOfWork, Record, Record, list[str]], None] | None = None,
) -> Record:
    """Undo a merge: restore the merged records and the main's previous values (M4)."""
    with ctx.store.unit_of_work() as uow:
        record = uow.merges.get(merge_id) if isinstance(merge_id, str) else None
        if record is None or record["kind"] != kind.name:
            raise NotFound("merge", str(merge_id))
        if record["undone"]:
            raise MergeError("this merge was undone already", field="merge_id")
        repo = kind.repository(uow)
        found = _read_in_id_order(repo, (record["main_id"], *record["merged_ids"]))
        main = found[record["main_id"]]
        if main is None or not main.is_live:
            raise MergeError(
                "the main record is no longer live (deleted or merged again); undo that first",
                field="merge_id",
            )
        authorize(uow, main)
        changed = [
            name for name, (_, new) in record["filled"].items() if _iso(getattr(main, name)) != new
        ]
        if changed:
            raise MergeError(
                f"fields changed since the merge ({', '.join(sorted(changed))}); "
                "restoring them would lose those changes",
                field="merge_id",
            )
        now = ctx.now()
        others = [found[other_id] for other_id in sorted(record["merged_ids"])]
        for other_id, other in zip(sorted(record["merged_ids"]), others, strict=True):
            if other is None or other.status is not RecordStatus.MERGED:
                raise MergeError(
                    f"{kind.name} {other_id} changed since the merge", field="merge_id"
                )
        previous = {name: old for name, (old, _) in record["filled"].items()}
        if "last_communicated_at" in previous and previous["last_communicated_at"] is not None:
            previous["last_communicated_at"] = datetime.fromisoformat(
                previous["last_communicated_at"]
            )
        # The main gives back the values it took first, so the others can take them again.
        restored_main = attrs.evolve(main, **previous, updated_at=now, version=main.version + 1)
        repo.update(restored_main, expected_version=main.version)
        for other in others:
            restored = attrs.evolve(
                other,
                **kind.follow_main(restored_main),
                status=RecordStatus.ACTIVE,
                merged_into=None,
                updated_at=now,
                version=other.version + 1,
            )
            repo.update(restored, expected_version=other.version)
            _point_back(
                ctx, uow, kind, record["repointed"].get(other.id, []), main, restored, actor, now
            )
            if move_back is not None:
                move_back(uow, main, restored, record["moved"].get(other.id, []))
            _history(
                ctx,
                uow,
                kind,
                restored,
                action="unmerged",
                actor=actor,
                changes={"merged_into": (main.id, None)},
                at=now,
            )
        changes = {name: (new, old) for name, (old, new) in record["filled"].items()} | {
            "merged_ids": (tuple(record["merged_ids"]), ())
        }
        _history(
            ctx, uow, kind, restored_main, action="unmerge", actor=actor, changes=changes, at=now
        )
        uow.merges.update(merge_id, {**record, "undone": True})
        uow.commit()
    return restored_main


def recorded_merges(uow: UnitOfWork, history: Sequence[ChangeRecord]) -> list[str]:
    """The ids of the merge records (done or undone) of the merges in ``history``.

    A merge's id follows from its kind, main and merged ids, which its ``merge`` history entry
    keeps; a merge done, undone and done again has one record per attempt.
    """
    found: list[str] = []
    for record in history:
        if record.action != "merge":
            continue
        merged = list(record.changes.get("merged_ids", ((), ()))[1])
        attempt = 1
        while uow.merges.get(
            merge_id := _merge_id(record.entity, record.entity_id, merged, attempt)
        ):
            found.append(merge_id)
            attempt += 1
    return sorted(set(found))


def _repeated(
    repo: Any, main: Record, merge_id: str, done: Mapping[str, Any], *, dry_run: bool
) -> MergeResult:
    """The result of a merge done already, for a repeat of it.

    The main is read again: it may have been read before the merge committed (a contact
    merge reads its contacts before it waits for the customer's lock).
    """
    return MergeResult(
        merge_id=None if dry_run else merge_id,
        main=_resolve(repo, repo.get(main.id)),
        merged_ids=tuple(done["merged_ids"]),
        provenance=done["provenance"],
    )


def _resolve(repo: Any, record: Record) -> Record:
    seen: set[str] = set()
    while record.status is RecordStatus.MERGED and record.merged_into and record.id not in seen:
        seen.add(record.id)
        record = repo.get(record.merged_into)
    return record


def _read_in_id_order(repo: Any, ids: Sequence[Any]) -> dict[str, Any]:
    """The records with these ids, read in id order.

    A unit of work that may write locks a customer as it reads it (on PostgreSQL); in id order,
    as every write locks rows, two merges of overlapping customers queue instead of deadlocking.
    """
    return {i: repo.get(i) for i in sorted({i for i in ids if isinstance(i, str)})}


def _live_other(
    found: Mapping[str, Record | None], kind: MergeKind, main: Record, other_id: str
) -> Record:
    other = found.get(other_id) if isinstance(other_id, str) else None
    if other is None or other.status is RecordStatus.DELETED:
        raise NotFound(kind.name, str(other_id))
    if kind.same_group(other) != kind.same_group(main):  # before naming anything about it
        raise MergeError(
            f"{kind.name} {other.id} belongs to another "
            f"{'customer' if kind.name == 'contact' else 'location'}; merge only within one",
            field="other_ids",
        )
    if other.status is RecordStatus.MERGED:
        raise MergeError(
            f"{kind.name} {other.id} was merged into {other.merged_into} already",
            field="other_ids",
        )
    return other


def _point_back(  # noqa: PLR0917 - the unmerge's state, in its order
    ctx: Context,
    uow: UnitOfWork,
    kind: MergeKind,
    ids: Sequence[str],
    main: Record,
    restored: Record,
    actor: Actor,
    at: datetime,
) -> None:
    """Point the tombstones a merge re-pointed at the main back at ``restored``, with history.

    ``MergeError`` when one of them changed since (it no longer points at the main).
    """
    if not ids:
        return
    try:
        moved = kind.repository(uow).repoint(ids, from_id=main.id, to_id=restored.id, at=at)
    except ConcurrentModification:
        raise MergeError(
            f"a {kind.name} merged into this merge's records earlier changed since",
            field="merge_id",
        ) from None
    changes = {"merged_into": (main.id, restored.id)}
    for tombstone in moved:
        _history(ctx, uow, kind, tombstone, action="repointed", actor=actor, changes=changes, at=at)


def _history(
    ctx: Context,
    uow: UnitOfWork,
    kind: MergeKind,
    record: Record,
    *,
    action: str,
    actor: Actor,
    changes: dict[str, tuple[Any, Any]],
    at: datetime,
) -> None:
    record_change(
        ctx,
        uow,
        entity=kind.name,
        entity_id=record.id,
        customer_id=kind.customer_of(record),
        action=action,
        actor=actor,
        changes=changes,
        at=at,
    )


def _refuse_contacts(main: Record, others: Sequence[Record]) -> str | None:
    if any(o.external_user for o in others) and main.external_user:
        emails = {o.email.casefold() for o in (main, *others) if o.external_user}
        if len(emails) > 1:
            return "two external users with different emails cannot be merged"
    return None


def _refuse_customers(main: Record, others: Sequence[Record]) -> str | None:
    if any(o.username for o in others):
        return "a merged customer's username would be lost; usernames never move"
    if any(o.source is not None for o in others):
        return "a customer imported from a source can only be the main of a merge (the DMS wins)"
    return None


CONTACT_MERGE = MergeKind(
    name="contact",
    fill_fields=("first_name", "last_name", "email", "phone", "title"),
    repository=lambda uow: uow.contacts,
    customer_of=lambda contact: contact.customer_id,
    same_group=lambda contact: contact.customer_id,
    refuse=_refuse_contacts,
    follow_main=lambda main: {"customer_id": main.customer_id},
)


CUSTOMER_MERGE = MergeKind(
    name="customer",
    fill_fields=CUSTOMER_FILL_FIELDS,
    repository=lambda uow: uow.customers,
    customer_of=lambda customer: customer.id,
    same_group=lambda customer: customer.location_id,
    refuse=_refuse_customers,
)
