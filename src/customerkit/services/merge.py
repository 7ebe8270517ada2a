"""Running a merge or an unmerge through a unit of work (rules M3, M4).

The rules (what is refused, which values survive, where a chain of merges ends) are the pure
functions of ``customerkit.merging``; this module reads the records, asks those rules, and
writes the result in one transaction: the main keeps its values and gains the others' where it
was blank; the others become MERGED tombstones pointing at the main, so their ids keep
resolving. The merge record keeps the main's previous values and where every surviving value
came from, so ``unmerge`` can put everything back, or refuse when later changes make that
unsafe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from customerkit.errors import ConcurrentModification, MergeError, NotFound
from customerkit.merging import (
    MergeKind,
    R,
    as_stored,
    check_request,
    follow_merges,
    live_other,
    merge_record_id,
    plan,
)
from customerkit.model import Actor, ChangeRecord, MergeResult, RecordStatus
from customerkit.ports import UnitOfWork
from customerkit.services import accelerators
from customerkit.services._context import Context, record_history


def _repository(uow: UnitOfWork, kind: MergeKind[Any]) -> Any:
    """The repository holding records of ``kind``."""
    return uow.contacts if kind.name == "contact" else uow.customers


def _existing_merge(
    uow: UnitOfWork, kind: MergeKind[R], main_id: str, others: Sequence[str]
) -> tuple[str, dict[str, Any] | None]:
    """The id for this merge, and its record when the same merge was done already."""
    attempt = 1
    while True:
        merge_id = merge_record_id(kind.name, main_id, others, attempt)
        record = uow.merges.get(merge_id)
        if record is None:
            return merge_id, None
        if not record["undone"]:
            return merge_id, dict(record)
        attempt += 1


def merge(
    ctx: Context,
    kind: MergeKind[R],
    main_id: str,
    other_ids: Sequence[str],
    *,
    actor: Actor,
    authorize: Callable[[UnitOfWork, R], None],
    dry_run: bool = False,
    move_children: Callable[[UnitOfWork, R, R], list[str]] | None = None,
) -> MergeResult[R]:
    """Merge ``other_ids`` into ``main_id`` atomically, or preview it with ``dry_run``."""
    others_ids = check_request(main_id, other_ids, ctx.config.max_merge_size)
    with ctx.store.unit_of_work() as uow:
        repo = _repository(uow, kind)
        found = _read_in_id_order(repo, (main_id, *others_ids))
        main = found.get(main_id) if isinstance(main_id, str) else None
        if main is None or main.status is RecordStatus.DELETED:
            raise NotFound(kind.name, str(main_id))
        authorize(uow, main)
        merge_id, done = _existing_merge(uow, kind, main.id, others_ids)
        if done is not None:  # repeating the same merge returns the first result (RELIABILITY 7)
            return _repeated(kind, repo, main, merge_id, done, dry_run=dry_run)
        if not main.is_live:
            raise MergeError(
                f"the main {kind.name} was merged into {main.merged_into}; merge into that one",
                field="main_id",
            )
        try:
            others = [live_other(found, kind, main, other_id) for other_id in others_ids]
        except MergeError:
            # The same merge may have committed since we looked (a client's retry racing it, on
            # PostgreSQL): answer as a repeat after it does.
            merge_id, done = _existing_merge(uow, kind, main.id, others_ids)
            if done is None:
                raise
            return _repeated(kind, repo, repo.get(main.id), merge_id, done, dry_run=dry_run)
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
            accelerators.repoint(
                repo, ids, from_id=other_id, to_id=main.id, at=now, entity=kind.name
            )
        # Row locks in ascending id order, the main's included, or overlapping merges deadlock
        # (RELIABILITY 3); the main's real write comes last, once the others freed their keys.
        for other in sorted((main, *others, *earlier), key=lambda o: o.id):
            if other is main:
                repo.update(main, expected_version=main.version)  # unchanged: locks it only
                continue
            if other.status is RecordStatus.MERGED:
                changes = {"merged_into": (other.merged_into, main.id)}
                record_history(
                    ctx, uow, other, action="repointed", actor=actor, changes=changes, at=now
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
            record_history(
                ctx,
                uow,
                other,
                action="merged",
                actor=actor,
                changes={"merged_into": (None, main.id)},
                at=now,
            )
        repo.update(merged, expected_version=main.version)
        filled = {
            name: (as_stored(getattr(main, name)), as_stored(getattr(merged, name)))
            for name in (*kind.fill_fields, *kind.alternates.values(), "last_communicated_at")
            if hasattr(main, name) and getattr(main, name) != getattr(merged, name)
        }
        changes = {**filled, "merged_ids": ((), result.merged_ids)}
        record_history(ctx, uow, merged, action="merge", actor=actor, changes=changes, at=now)
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


def unmerge(  # rule M4
    ctx: Context,
    kind: MergeKind[R],
    merge_id: str,
    *,
    actor: Actor,
    authorize: Callable[[UnitOfWork, R], None],
    move_back: Callable[[UnitOfWork, R, R, list[str]], None] | None = None,
) -> R:
    """Undo a merge: restore the merged records and the main's previous values."""
    with ctx.store.unit_of_work() as uow:
        record = uow.merges.get(merge_id) if isinstance(merge_id, str) else None
        if record is None or record["kind"] != kind.name:
            raise NotFound("merge", str(merge_id))
        if record["undone"]:
            raise MergeError("this merge was undone already", field="merge_id")
        repo = _repository(uow, kind)
        found = _read_in_id_order(repo, (record["main_id"], *record["merged_ids"]))
        main: R | None = found[record["main_id"]]
        if main is None or not main.is_live:
            raise MergeError(
                "the main record is no longer live (deleted or merged again); undo that first",
                field="merge_id",
            )
        authorize(uow, main)
        changed = [
            name
            for name, (_, new) in record["filled"].items()
            if as_stored(getattr(main, name)) != new
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
            record_history(
                ctx,
                uow,
                restored,
                action="unmerged",
                actor=actor,
                changes={"merged_into": (main.id, None)},
                at=now,
            )
        changes = {name: (new, old) for name, (old, new) in record["filled"].items()} | {
            "merged_ids": (tuple(record["merged_ids"]), ())
        }
        record_history(
            ctx, uow, restored_main, action="unmerge", actor=actor, changes=changes, at=now
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
            merge_id := merge_record_id(record.entity, record.entity_id, merged, attempt)
        ):
            found.append(merge_id)
            attempt += 1
    return sorted(set(found))


def _repeated(
    kind: MergeKind[R], repo: Any, main: R, merge_id: str, done: Mapping[str, Any], *, dry_run: bool
) -> MergeResult[R]:
    """The result of a merge done already, for a repeat of it.

    The main is read again: it may have been read before the merge committed (a contact
    merge reads its contacts before it waits for the customer's lock).
    """
    return MergeResult(
        merge_id=None if dry_run else merge_id,
        main=_current(kind, repo, main),
        merged_ids=tuple(done["merged_ids"]),
        provenance=done["provenance"],
    )


def _current(kind: MergeKind[R], repo: Any, main: R) -> R:
    """The main as stored now, following it should it have been merged since."""
    found: R | None = follow_merges(repo.get(main.id), repo.get)
    if found is None:  # purged meanwhile
        raise NotFound(kind.name, main.id)
    return found


def _read_in_id_order(repo: Any, ids: Sequence[Any]) -> dict[str, Any]:
    """The records with these ids, read in id order.

    A unit of work that may write locks a customer as it reads it (on PostgreSQL); in id order,
    as every write locks rows, two merges of overlapping customers queue instead of deadlocking.
    """
    return {i: repo.get(i) for i in sorted({i for i in ids if isinstance(i, str)})}


def _point_back(  # noqa: PLR0917 - the unmerge's state, in its order
    ctx: Context,
    uow: UnitOfWork,
    kind: MergeKind[R],
    ids: Sequence[str],
    main: R,
    restored: R,
    actor: Actor,
    at: datetime,
) -> None:
    """Point the tombstones a merge re-pointed at the main back at ``restored``, with history.

    ``MergeError`` when one of them changed since (it no longer points at the main).
    """
    if not ids:
        return
    try:
        moved = accelerators.repoint(
            _repository(uow, kind), ids, from_id=main.id, to_id=restored.id, at=at, entity=kind.name
        )
    except ConcurrentModification:
        raise MergeError(
            f"a {kind.name} merged into this merge's records earlier changed since",
            field="merge_id",
        ) from None
    changes = {"merged_into": (main.id, restored.id)}
    for tombstone in moved:
        record_history(ctx, uow, tombstone, action="repointed", actor=actor, changes=changes, at=at)
