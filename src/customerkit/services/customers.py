"""Customers: create, read, update, delete, search, recent, export, staff.

Rules C1-C8, S1-S5, U1-U3.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import IO, Any, Literal

import attrs

from customerkit.errors import (
    ConcurrentModification,
    ValidationError,
)
from customerkit.export import write_records
from customerkit.matching import DuplicateReport, SimilarMatch
from customerkit.merging import CUSTOMER_MERGE
from customerkit.model import (
    CUSTOMER_EDITABLE_FIELDS,
    Actor,
    Customer,
    Dismissal,
    MergeResult,
    NewCustomer,
    SearchField,
    SearchHit,
)
from customerkit.policy import Action, Target
from customerkit.ports import Progress
from customerkit.services import _customer_changes as changes_of
from customerkit.services import _customer_duplicates, accelerators, dismissals, loading
from customerkit.services import _customer_logins as logins
from customerkit.services import _customer_merge as merge_of
from customerkit.services import _customer_search as customer_search
from customerkit.services import merge as merging
from customerkit.services._context import (
    Context,
    changes_between,
    checks_actors,
    retried,
    save_customer,
    visible_customer,
)
from customerkit.services._created import HISTORY_FIELDS, PASSWORD_MARKER, created_customer
from customerkit.services._similar import similar
from customerkit.validation import ReferenceCache, checked_draft

log = logging.getLogger("customerkit.customers")

MAX_STAFF = 2
_DISMISSAL = dismissals.CUSTOMER_DISMISSAL


@checks_actors
@attrs.define
class CustomerService(dismissals.Undismissing):
    """``book.customers``: every use-case about customer profiles."""

    _ctx: Context
    _dismissal = _DISMISSAL

    # -- create ------------------------------------------------------------------------------

    def create(self, draft: NewCustomer, *, actor: Actor) -> Customer:  # rules C1, C2, C4, U1-U4
        """Create a customer at the actor's location.

        Raises:
            ValidationError: with every invalid field at once.
            DuplicateCustomerNumber: another live customer of the location has the number.
            DuplicateUsername: the username is taken.
            PermissionDenied: the actor may not create customers.
        """
        return self.create_many([draft], actor=actor)[0]

    @retried
    def create_many(
        self,
        drafts: Iterable[NewCustomer],
        *,
        actor: Actor,
        progress: Progress | None = None,
        source: Any = None,
    ) -> list[Customer]:
        """Create many customers in one transaction: all of them, or none (same rules as create).

        Errors of every draft are reported together, keyed ``"[position].field"``.
        """
        self._ctx.authorize(actor, Action.CUSTOMER_CREATE, Target(location_id=actor.location_id))
        drafts = list(drafts)
        total, created = len(drafts), []
        # Ids are random; handing them out in ascending order makes a bulk load append to every
        # index keyed by id instead of writing all over it (SQL B-trees, history by customer).
        ids = iter(sorted(self._ctx.new_id() for _ in range(total)))
        hashes = [logins.prehash(self._ctx, getattr(draft, "password", None)) for draft in drafts]
        with self._ctx.store.unit_of_work() as uow:
            reference = ReferenceCache(uow.reference)
            problems: dict[str, str] = {}
            for position, draft in enumerate(drafts):
                try:
                    values = checked_draft(draft, reference)
                except ValidationError as error:
                    if total == 1:
                        raise
                    problems.update({f"[{position}].{k}": v for k, v in error.errors.items()})
                else:
                    customer, record = created_customer(
                        draft,
                        values,
                        customer_id=next(ids),
                        password_hash=hashes[position],
                        actor=actor,
                        source=source,
                        now=self._ctx.now(),
                    )
                    uow.customers.add(customer)
                    uow.history.append(record)
                    created.append(customer)
                if progress is not None and (position + 1) % 1000 == 0:
                    progress(position + 1, total)
            if problems:
                raise ValidationError(problems)
            uow.commit()
        if progress is not None:
            progress(total, total)
        log.info("created %d customers at location %s", total, actor.location_id)
        return created

    def load(
        self,
        rows: Iterable[NewCustomer],
        *,
        actor: Actor,
        progress: Progress | None = None,
        total: int | None = None,
        source: Any = None,
        chunk_size: int = loading.LOAD_CHUNK,
    ) -> int:
        """Create the customers of ``rows``, read chunk by chunk, in one transaction: all or none.

        The same rules as ``create``, with every bad row's errors reported together, keyed
        ``"[position].field"`` as ``create_many`` does (a row's position counts from 0).
        Unlike ``create_many`` the rows are streamed, so a million of them never sit in memory
        as customers at once, and nothing is returned but the count: read the customers back
        with ``search`` or ``export``. ``progress(done, total)`` follows each chunk.

        Raises:
            ValidationError: with every invalid field of every row; nothing is stored.
            DuplicateCustomerNumber: a row's number is held (by the book or an earlier row).
            DuplicateUsername: a row's username is taken (the error's ``username`` names it).
            ConcurrentModification: another writer got in the way; nothing is stored (a load
                is not retried: its rows may be read only once).
            PermissionDenied: the actor may not create customers.
        """
        return loading.load_customers(
            self._ctx,
            rows,
            actor=actor,
            progress=progress,
            total=total,
            source=source,
            chunk_size=chunk_size,
        )

    # -- read --------------------------------------------------------------------------------

    def get(self, customer_id: str, *, actor: Actor) -> Customer:
        """The live customer with this id (``NotFound`` for deleted or merged ids)."""
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            return visible_customer(self._ctx, uow, customer_id, actor, Action.CUSTOMER_READ)

    def search(  # rules S1-S5
        self,
        query: str,
        *,
        actor: Actor,
        field: SearchField = SearchField.ALL,
        limit: int = 20,
        fuzzy: bool = False,
    ) -> list[SearchHit]:
        """Find customers of the actor's location, best first.

        Every query word must be the start of a word of the searched fields; words of 3+
        characters also match inside words (ranked lower) and, with ``fuzzy``, with a typo
        (ranked lowest).

        Raises:
            QueryTooShort: no query word has 3 characters (a 2-letter state on STATE aside).
            ValidationError: the query is too long or the limit outside 1..500.
        """
        return customer_search.search(
            self._ctx, query, actor=actor, field=field, limit=limit, fuzzy=fuzzy
        )

    def recent(  # rule C8
        self, *, actor: Actor, within: timedelta | None = None, text: str | None = None
    ) -> list[Customer]:
        """Customers created within a window (default 30 days), newest first.

        ``text`` filters like a table filter: every word of it must appear in the name, number,
        city or state (case and accents ignored).
        """
        return customer_search.recent(self._ctx, actor=actor, within=within, text=text)

    def export(  # rule C8
        self,
        fileobj: IO[str],
        *,
        actor: Actor,
        format: Literal["csv", "jsonl"] = "csv",  # noqa: A002 - the SPEC's name
        ids: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Stream customers of the actor's location to CSV or JSON Lines; return the row count.

        Every field but the password hash, plus assigned staff and the contacts' names, emails
        and phones. CSV cells that a spreadsheet would run as a formula get a leading
        apostrophe. Memory stays flat: rows are written as they are read.
        """
        self._ctx.authorize(actor, Action.CUSTOMER_EXPORT, Target(location_id=actor.location_id))
        if format not in ("csv", "jsonl"):
            raise ValidationError({"format": "must be 'csv' or 'jsonl'"})
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            location_id = actor.location_id
            total = accelerators.count(uow.customers, location_id) if ids is None else len(set(ids))
            records = accelerators.export_records(uow, location_id, ids=ids)
            try:
                return write_records(
                    fileobj, records, format=format, total=total, progress=progress
                )
            finally:
                # A failed write (a closed pipe) ends a database reader here, inside the unit
                # of work, not later when the garbage collector finds its connection closed.
                close = getattr(records, "close", None)
                if close is not None:
                    close()

    # -- change ------------------------------------------------------------------------------

    @retried
    def update(  # rules C3, C5, D4, U1
        self,
        customer_id: str,
        changes: Mapping[str, Any],
        *,
        actor: Actor,
        expected_version: int | None = None,
    ) -> Customer:
        """Change fields of a customer.

        Raises:
            ConcurrentModification: ``expected_version`` is not the stored version.
            ImmutableField: the username was set already.
            ReadOnlyCustomer: a field came from an external source.
            PermissionDenied: e.g. a number change needing SERVICE_MANAGER.
        """
        if not isinstance(changes, Mapping):
            raise ValidationError({"changes": "pass a mapping of field name to new value"})
        unknown = sorted(set(changes) - set(CUSTOMER_EDITABLE_FIELDS))
        if unknown:
            raise ValidationError(dict.fromkeys(unknown, "is not a field you can change"))
        password_hash = logins.prehash(self._ctx, changes.get("password"))
        with self._ctx.store.unit_of_work() as uow:
            current = visible_customer(self._ctx, uow, customer_id, actor, Action.CUSTOMER_UPDATE)
            if expected_version is not None and expected_version != current.version:
                raise ConcurrentModification("customer", customer_id)
            changes_of.check_changes_allowed(self._ctx, current, changes, actor)
            updated = changes_of.changed(self._ctx, uow, current, changes, password_hash)
            password_changed = "password" in changes and changes["password"] is not None
            diff = changes_between(current, updated, HISTORY_FIELDS)
            if password_changed:
                diff["password"] = ("", PASSWORD_MARKER)
            if not diff:
                return current
            save_customer(
                self._ctx,
                uow,
                current,
                updated,
                action="update",
                actor=actor,
                changes=diff,
            )
            uow.commit()
        return updated

    # Rule C7.
    @retried
    def assign_staff(self, customer_id: str, user_ids: Sequence[str], *, actor: Actor) -> Customer:
        """Set the assigned staff: at most two users of the location with a login."""
        if isinstance(user_ids, str) or not isinstance(user_ids, Sequence):
            raise ValidationError({"assigned_staff": "pass a list of user ids"})
        staff = tuple(dict.fromkeys(user_ids))
        if len(staff) > MAX_STAFF:
            raise ValidationError({"assigned_staff": "at most two staff can be assigned"})
        with self._ctx.store.unit_of_work() as uow:
            current = visible_customer(self._ctx, uow, customer_id, actor, Action.STAFF_ASSIGN)
            for user_id in staff:
                user = uow.users.get(user_id) if isinstance(user_id, str) else None
                if user is None or user.location_id != current.location_id:
                    raise ValidationError(
                        {"assigned_staff": f"user {user_id!r} is not staff of this location"}
                    )
                if not user.has_login or user.fleet_customer_id is not None:
                    raise ValidationError(
                        {"assigned_staff": f"user {user_id!r} has no dealer login; give them one"}
                    )
            updated = attrs.evolve(
                current,
                assigned_staff=staff,
                updated_at=self._ctx.now(),
                version=current.version + 1,
            )
            save_customer(
                self._ctx,
                uow,
                current,
                updated,
                action="assign_staff",
                actor=actor,
                changes={"assigned_staff": (current.assigned_staff, staff)},
            )
            uow.commit()
        return updated

    # Rule C6.
    @retried
    def delete(self, customer_id: str, *, actor: Actor, delete_history: bool = False) -> None:
        """Delete a customer.

        With ``delete_history=False`` (the default) the history and a tombstone stay: the
        customer leaves search and frees its number, its username stays taken. With ``True``
        the customer is erased with everything that resolves to it: its contacts (those merged
        in from other customers too), the customers merged into it (their tombstones,
        contacts and history), the records of those merges, and all their history. Nothing
        is left that could be unmerged back.
        """
        with self._ctx.store.unit_of_work() as uow:
            current = visible_customer(self._ctx, uow, customer_id, actor, Action.CUSTOMER_DELETE)
            if delete_history:
                changes_of.purge(uow, current)
            else:
                changes_of.tombstone(
                    self._ctx, uow, current, uow.contacts.for_customer(current.id), actor
                )
            uow.commit()

    # -- duplicates and merge (rules M1-M6) --------------------------------------------------

    @retried
    def find_duplicates(  # rules M1, M2
        self, *, actor: Actor, workers: int | None = None, chunk_size: int | None = None
    ) -> DuplicateReport:
        """Duplicate customers of the actor's location, with scores, reasons and groups.

        Pairs dismissed with ``dismiss`` are never reported nor grouped together. By default
        the location's customers are read into memory and matched at once, the fastest way
        when they fit. Given a ``chunk_size``, a location of more customers than that on a
        backend that keeps blocking keys (the SQL books) is read ``chunk_size`` customers,
        keys or pairs at a time and scored in ``workers`` processes (None: every core), so
        its memory does not grow with the customers' fields; smaller ones are still matched
        in memory. Either way the report is the same. The first chunked call keeps the
        location's blocking keys from then on, as ``find_similar`` does.

        Raises:
            ValidationError: ``workers`` is below 1 or ``chunk_size`` below 2.
        """
        return _customer_duplicates.find(
            self._ctx, actor=actor, workers=workers, chunk_size=chunk_size
        )

    # Rule M6.
    @retried
    def find_similar(self, draft: NewCustomer | Customer, *, actor: Actor) -> list[SimilarMatch]:
        """Existing customers like a new one, best first: search before create.

        Given a stored customer instead of a draft, it leaves out that customer and the
        customers dismissed with it.
        """
        self._ctx.authorize(actor, Action.CUSTOMER_READ, Target(location_id=actor.location_id))
        with self._ctx.store.unit_of_work() as uow:
            found = similar(self._ctx, uow, _DISMISSAL, draft, actor.location_id)
            uow.commit()  # a backend may have built and kept its index: keep it
        return found

    @retried
    def dismiss(self, left_id: str, right_id: str, *, actor: Actor) -> Dismissal:
        """Record that two customers are not duplicates (either order; repeating is harmless).

        Both must be live customers of the actor's location; the actor needs the right to
        merge them. Each customer's history notes it.

        Raises:
            DismissError: the two ids are the same.
            NotFound: an id is no live customer.
            PermissionDenied: the actor may not merge these customers.
        """
        return dismissals.dismiss(self._ctx, _DISMISSAL, left_id, right_id, actor=actor)

    def dismissed(self, *, actor: Actor) -> list[Dismissal]:
        """The customer pairs of the actor's location dismissed as not duplicates, by ids."""
        return dismissals.dismissed(self._ctx, _DISMISSAL, actor=actor)

    @retried
    def merge(  # rule M3
        self,
        main_id: str,
        other_ids: Sequence[str],
        *,
        actor: Actor,
        dry_run: bool = False,
    ) -> MergeResult[Customer]:
        """Merge customers of one location into a main customer; their contacts move along.

        Refused (``MergeError``) when another record has a username (usernames never move) or
        came from a source (the DMS record can only be the main).
        """
        return merging.merge(
            self._ctx,
            CUSTOMER_MERGE,
            main_id,
            other_ids,
            actor=actor,
            authorize=merge_of.merge_authorizer(self._ctx, actor),
            dry_run=dry_run,
            move_children=functools.partial(merge_of.move_contacts, self._ctx),
        )

    @retried
    def unmerge(self, merge_id: str, *, actor: Actor) -> Customer:  # rule M4
        """Undo a customer merge: customers, contacts and the main's old values come back."""
        restored: Customer = merging.unmerge(
            self._ctx,
            CUSTOMER_MERGE,
            merge_id,
            actor=actor,
            authorize=merge_of.merge_authorizer(self._ctx, actor),
            move_back=functools.partial(merge_of.move_back, self._ctx),
        )
        return restored

    # -- usernames ---------------------------------------------------------------------------

    def suggest_username(  # rule U2
        self, first: str, last: str, phone: str, *, actor: Actor | None = None
    ) -> str:
        """A free username: first initial, last name, last 4 phone digits.

        ``suggest_username("José", "García-López", "+1 (303) 555-0142")`` gives
        ``"jgarcialopez0142"``, or ``"jgarcialopez0142-2"`` when that is taken.
        """
        return logins.suggest_username(self._ctx, first, last, phone)

    @retried
    def verify_password(self, username: str, password: str) -> Customer | None:  # rule U3
        """The live customer whose username and password match, else ``None``.

        The hash is read in a read-only unit of work and checked outside any transaction, so
        a login never holds SQLite's write lock while argon2 runs. An unknown username is
        checked against a dummy hash: it takes as long as a wrong password. Rehashes the
        stored hash when the hashing parameters have risen since.

        Raises:
            ValidationError: ``username`` or ``password`` is not text.
        """
        return logins.verify_password(self._ctx, username, password)
