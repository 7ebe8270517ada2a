"""Bulk load: ``book.customers.load``, many customers streamed into one transaction.

``create_many`` holds every draft, record and history entry of its call in memory; a load reads
its rows chunk by chunk, so a million customers never sit in memory as records at once:

1. a chunk of drafts is validated with ``create``'s rules (reference data looked up once per
   name); a bad row's errors are kept under ``"[position].field"``, and from the first bad row
   on nothing more is written: the rest is only validated, so every error is reported at once;
2. the chunk's customers and their creation records go to the store in one call
   (``customerkit.ports.BulkLoad``), which writes them in column batches (the SQL backend: one
   ``executemany`` or ``COPY`` per table and chunk, search words staged and sorted in at the
   end on SQLite, secondary indexes built after the rows on an empty book);
3. after the last chunk, the unit of work commits: all rows, or, on any error or a killed
   process, none.

A load is not retried on a serialization failure (``create_many`` is): its rows may be an
iterator read once. It raises ``ConcurrentModification`` then, with nothing written.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from customerkit.errors import ValidationError
from customerkit.model import Actor, CustomerKind, NewCustomer
from customerkit.policy import Action, Target
from customerkit.ports import NewCustomers, Progress
from customerkit.services import accelerators
from customerkit.services._context import Context
from customerkit.services._created import new_changes
from customerkit.validation import ReferenceCache, checked_draft

log = logging.getLogger("customerkit.customers")

#: Bits of a load's id prefix: one value per chunk, counting up from a random start.
_PREFIX_BITS = 48
#: Random bits after the prefix (uuid4 has 122 in all; 80 per chunk of a few thousand ids
#: leave a clash as likely as never).
_RANDOM_BITS = 128 - _PREFIX_BITS

#: Drafts validated and written together: large enough that each table gets few, large
#: statements; small enough that a chunk's records (~2 KiB a customer) stay a few MiB.
LOAD_CHUNK = 5_000


def load_customers(
    ctx: Context,
    rows: Iterable[NewCustomer],
    *,
    actor: Actor,
    progress: Progress | None = None,
    total: int | None = None,
    source: Any = None,
    chunk_size: int = LOAD_CHUNK,
) -> int:
    """Create the customers of ``rows`` at the actor's location, all or none; their count.

    See ``CustomerService.load``.
    """
    ctx.authorize(actor, Action.CUSTOMER_CREATE, Target(location_id=actor.location_id))
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    problems: dict[str, str] = {}
    done = 0
    ids = _AscendingIds()
    action = "import" if source is not None else "create"
    with ctx.store.unit_of_work() as uow:
        reference = ReferenceCache(uow.reference)
        for chunk in _chunks(rows, chunk_size):
            kinds: list[CustomerKind] = []
            cleaned: list[dict[str, Any]] = []
            hashes: list[str | None] = []
            changes: list[dict[str, tuple[Any, Any]]] = []
            for position, draft in enumerate(chunk, start=done):
                try:
                    values = checked_draft(draft, reference)
                except ValidationError as error:
                    problems.update({f"[{position}].{k}": v for k, v in error.errors.items()})
                    continue
                if problems:
                    continue  # nothing more is written; the rest is only checked
                password = values.pop("password")
                kinds.append(draft.kind)
                cleaned.append(values)
                hashes.append(_hash(ctx, password))
                changes.append(new_changes(draft.kind, values, password=password is not None))
            if cleaned and not problems:
                new = NewCustomers(
                    location_id=actor.location_id,
                    actor_id=actor.user_id,
                    action=action,
                    source=source,
                    at=ctx.now(),
                    ids=ids.next_chunk(len(cleaned)),
                    kinds=kinds,
                    values=cleaned,
                    password_hashes=hashes,
                    changes=changes,
                )
                accelerators.bulk_add(uow, new)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if problems:
            raise ValidationError(problems)
        uow.commit()
    log.info("loaded %d customers at location %s", done, actor.location_id)
    return done


class _AscendingIds:
    """Ids of the library's kind (32 hex digits), each chunk's above every earlier chunk's.

    A load's ids ascend, as ``create_many``'s do, so every index keyed by id (the primary
    key, history by customer) is appended to instead of written all over: with ids sorted
    per chunk only, each chunk of a million-row load touches pages across the whole index,
    more than PostgreSQL's default buffer cache holds. ``create_many`` sorts the random ids
    of its whole call; a load does not know its size up front, so each id is a prefix,
    counting up per chunk from a random start, and random bits below it.
    """

    def __init__(self) -> None:
        self._prefix = secrets.randbits(_PREFIX_BITS - 1)  # room for 2^47 chunks above it

    def next_chunk(self, count: int) -> list[str]:
        """``count`` new ids in ascending order, above all those handed out before."""
        prefix = f"{self._prefix:0{_PREFIX_BITS // 4}x}"
        self._prefix += 1
        width = _RANDOM_BITS // 4
        random = os.urandom(count * width // 2).hex()  # as uuid4 draws its bits
        return sorted(prefix + random[i : i + width] for i in range(0, count * width, width))


def _hash(ctx: Context, password: str | None) -> str | None:
    # Validated already; a load holds the write lock throughout, so hashing here costs the
    # same as before it (and a file of logins is rare: the CLI never reads passwords).
    return None if password is None else ctx.hasher.hash(password)


def _chunks(rows: Iterable[NewCustomer], size: int) -> Iterator[list[NewCustomer]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
