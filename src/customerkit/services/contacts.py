"""Contacts: add, change, list, recipients, unused cleanup (rules K1-K5)."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from customerkit import identity
from customerkit.errors import (
    ConcurrentModification,
    DuplicateExternalUser,
    ImmutableField,
    NotFound,
    ValidationError,
)
from customerkit.matching import DuplicateReport, SimilarMatch, find_duplicates
from customerkit.merging import CONTACT_MERGE
from customerkit.model import (
    CONTACT_EDITABLE_FIELDS,
    Actor,
    CaseRef,
    Contact,
    CustomerKind,
    Dismissal,
    ManagedBy,
    MergeResult,
    NewContact,
    Recipient,
    RecordStatus,
    Role,
    UnusedContacts,
)
from customerkit.policy import Action, Target
from customerkit.ports import UnitOfWork
from customerkit.services import accelerators, dismissals
from customerkit.services import merge as merging
from customerkit.services._contact_lookup import (
    contact_target,
    months_before,
    resolve,
    resolve_for_write,
)
from customerkit.services._context import (
    Context,
    changes_between,
    checks_actors,
    live_customer,
    record_history,
    retried,
    visible_customer,
)
from customerkit.services._similar import similar
from customerkit.validation import (
    clean_contact_fields,
    clean_optional,
)

log = logging.getLogger("customerkit.contacts")

_DISMISSAL = dismissals.CONTACT_DISMISSAL
HISTORY_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "title",
    "managed_by",
    "added_by_fleet",
    "external_user",
    "one_time_case_id",
    "last_communicated_at",
    "status",
    "merged_into",
)


@checks_actors
@attrs.define
class ContactService(dismissals.Undismissing):
    """``book.contacts``: the people to talk to at each customer."""

    _ctx: Context
    _dismissal = _DISMISSAL

    @retried
    def add(self, customer_id: str, draft: NewContact, *, actor: Actor) -> Contact:  # rules K1, K3
        """Add a contact to a customer.

        A contact the fleet's users add is managed by the fleet (``managed_by=FLEET``, the fleet
        icon); one the service provider adds, to a LOCAL or a FLEET customer, is managed by the
        provider. Who added it is kept in ``added_by_fleet``.
        """
        if not isinstance(draft, NewContact):
            raise ValidationError({"draft": "pass a NewContact"})
        values = clean_contact_fields(attrs.asdict(draft))
        case_id = clean_optional(draft.one_time_case_id, "one_time_case_id")
        if draft.external_user and not values["email"]:
            raise ValidationError({"email": "an external user needs an email to log in with"})
        with self._ctx.store.unit_of_work() as uow:
            customer = live_customer(uow, customer_id)
            self._ctx.authorize(actor, Action.CONTACT_WRITE, contact_target(customer))
            now = self._ctx.now()
            by_fleet = actor.role is Role.FLEET_USER  # the policy let it add only to its fleet
            contact = Contact(
                id=self._ctx.new_id(),
                customer_id=customer.id,
                managed_by=ManagedBy.FLEET if by_fleet else ManagedBy.PROVIDER,
                added_by_fleet=by_fleet,
                external_user=bool(draft.external_user),
                one_time_case_id=case_id,
                created_at=now,
                updated_at=now,
                **values,
            )
            try:
                uow.contacts.add(contact)
            except DuplicateExternalUser as clash:
                raise self._visible_clash(uow, clash, actor) from None
            self._record(uow, contact, "add", actor, changes_between(None, contact, HISTORY_FIELDS))
            uow.commit()
        return contact

    @staticmethod
    def _visible_clash(
        uow: UnitOfWork, clash: DuplicateExternalUser, actor: Actor
    ) -> DuplicateExternalUser:
        """The clash, naming the holder only when it is of the actor's location (rule P2)."""
        holder = uow.contacts.get(clash.existing_id) if clash.existing_id else None
        customer = uow.customers.get(holder.customer_id) if holder else None
        if customer is not None and customer.location_id == actor.location_id:
            return clash
        return DuplicateExternalUser(None)

    def get(self, contact_id: str, *, actor: Actor) -> Contact:  # rule M3
        """The contact; a merged id resolves to the contact it was merged into."""
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            contact = resolve(uow, contact_id)
            customer = live_customer(uow, contact.customer_id)
            self._ctx.authorize(actor, Action.CONTACT_READ, contact_target(customer))
            return contact

    def list(self, customer_id: str, *, actor: Actor) -> builtins.list[Contact]:
        """The customer's live contacts, oldest first."""
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            visible_customer(self._ctx, uow, customer_id, actor, Action.CONTACT_READ)
            return [c for c in uow.contacts.for_customer(customer_id) if c.is_live]

    @retried
    def update(  # rules K2, K1
        self,
        contact_id: str,
        changes: Mapping[str, Any],
        *,
        actor: Actor,
        expected_version: int | None = None,
    ) -> Contact:
        """Change a contact's name, phone or title; the email never changes.

        Raises:
            ImmutableField: the change touches the email (delete and re-add instead).
            PermissionDenied: the contact is managed by its fleet (the fleet added it) and the
                actor is not one of the fleet's users, or the actor is a fleet user and the
                service provider manages the contact.
        """
        if not isinstance(changes, Mapping):
            raise ValidationError({"changes": "pass a mapping of field name to new value"})
        with self._ctx.store.unit_of_work() as uow:
            current, customer = resolve_for_write(uow, contact_id)
            self._ctx.authorize(actor, Action.CONTACT_WRITE, contact_target(customer, current))
            if expected_version is not None and expected_version != current.version:
                raise ConcurrentModification("contact", current.id)
            if "email" in changes and changes["email"] != current.email:
                raise ImmutableField(
                    "a contact's email never changes; delete the contact and add it again",
                    field="email",
                )
            unknown = sorted(set(changes) - {*CONTACT_EDITABLE_FIELDS, "email"})
            if unknown:
                raise ValidationError(dict.fromkeys(unknown, "is not a field you can change"))
            values = {name: getattr(current, name) for name in (*CONTACT_EDITABLE_FIELDS, "email")}
            values.update(changes)
            cleaned = clean_contact_fields(values)
            updated = attrs.evolve(
                current, **cleaned, updated_at=self._ctx.now(), version=current.version + 1
            )
            diff = changes_between(current, updated, HISTORY_FIELDS)
            if not diff:
                return current
            uow.contacts.update(updated, expected_version=current.version)
            self._record(uow, updated, "update", actor, diff)
            uow.commit()
        return updated

    @retried
    def delete(self, contact_id: str, *, actor: Actor) -> None:
        """Delete one contact (its history stays)."""
        with self._ctx.store.unit_of_work() as uow:
            current, customer = resolve_for_write(uow, contact_id)
            self._ctx.authorize(actor, Action.CONTACT_WRITE, contact_target(customer, current))
            self._delete(uow, current, actor)
            uow.commit()

    # Rules K5, K1.
    @retried
    def delete_many(self, contact_ids: Sequence[str], *, actor: Actor) -> builtins.list[str]:
        """Delete a chosen set of contacts atomically: all of them or, on any error, none.

        Returns the deleted ids. Every id must be a live contact the actor may change: like
        ``delete``, provider staff never delete a contact its fleet manages.
        """
        if isinstance(contact_ids, str) or not isinstance(contact_ids, Sequence):
            raise ValidationError({"contact_ids": "pass a list of contact ids"})
        ids = list(dict.fromkeys(contact_ids))
        with self._ctx.store.unit_of_work() as uow:
            chosen = []
            for contact_id in ids:  # checked in the caller's order: the first problem is named
                current = uow.contacts.get(contact_id) if isinstance(contact_id, str) else None
                if current is None or not current.is_live:
                    raise NotFound("contact", str(contact_id))
                customer = live_customer(uow, current.customer_id)
                self._ctx.authorize(
                    actor, Action.CONTACT_DELETE_MANY, contact_target(customer, current)
                )
                chosen.append(current)
            # Rows are written in id order, as merges write theirs: no lock-order deadlock.
            for current in sorted(chosen, key=lambda contact: contact.id):
                self._delete(uow, current, actor)
            uow.commit()
        log.info("deleted %d contacts", len(ids))
        return ids

    def _delete(self, uow: UnitOfWork, current: Contact, actor: Actor) -> None:
        deleted = attrs.evolve(
            current,
            status=RecordStatus.DELETED,
            updated_at=self._ctx.now(),
            version=current.version + 1,
        )
        uow.contacts.update(deleted, expected_version=current.version)
        self._record(uow, deleted, "delete", actor, {"status": ("ACTIVE", "DELETED")})

    @retried
    def record_communication(  # rule K5
        self, contact_id: str, *, at: datetime | None = None, actor: Actor | None = None
    ) -> Contact:
        """Note that someone talked to the contact; a merged id counts for its main.

        ``last_communicated_at`` only moves forward.
        """
        moment = self._ctx.now() if at is None else at
        if not isinstance(moment, datetime) or moment.utcoffset() is None:
            raise ValidationError({"at": "must be a timezone-aware datetime"})
        with self._ctx.store.unit_of_work() as uow:
            current, customer = resolve_for_write(uow, contact_id)
            if actor is not None:
                self._ctx.authorize(actor, Action.CONTACT_READ, contact_target(customer))
            last = current.last_communicated_at
            if last is not None and last >= moment:
                return current
            updated = attrs.evolve(
                current, last_communicated_at=moment, version=current.version + 1
            )
            uow.contacts.update(updated, expected_version=current.version)
            self._record(
                uow, updated, "communication", actor, {"last_communicated_at": (last, moment)}
            )
            uow.commit()
        return updated

    def recipients(  # rule K4
        self, customer_id: str, *, case: CaseRef | None = None, actor: Actor | None = None
    ) -> builtins.list[Recipient]:
        """Who a case note can go to, without two recipients sharing an email.

        Live contacts with an email; one-time contacts only for their own case while it is
        open; for a FLEET customer also its fleet users, contacts or not.
        """
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            customer = live_customer(uow, customer_id)
            if actor is not None:
                self._ctx.authorize(actor, Action.CONTACT_READ, contact_target(customer))
            contacts = uow.contacts.for_customer(customer.id)
            fleet_users = (
                uow.users.for_fleet(customer.id) if customer.kind is CustomerKind.FLEET else []
            )
        found: dict[str, Recipient] = {}
        for contact in contacts:
            if not contact.is_live or not contact.email:
                continue
            if contact.one_time_case_id is not None and not (
                case is not None and case.open and case.id == contact.one_time_case_id
            ):
                continue
            found.setdefault(
                identity.email_key(contact.email),
                Recipient(email=contact.email, name=contact.full_name, contact_id=contact.id),
            )
        for user in fleet_users:
            if user.email:
                found.setdefault(
                    identity.email_key(user.email),
                    Recipient(email=user.email, name=user.name, user_id=user.id),
                )
        return list(found.values())

    def unused(self, customer_id: str, *, actor: Actor) -> UnusedContacts:  # rule K5
        """Contacts nobody talked to in the last 6 calendar months (configurable).

        Counted from the last communication, or from creation when there was none.
        ``should_prompt`` is true at 30 or more for SERVICE_ADVISOR and above.
        """
        config = self._ctx.config
        cutoff = months_before(self._ctx.now(), config.unused_after_months)
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            visible_customer(self._ctx, uow, customer_id, actor, Action.CONTACT_READ)
            contacts = uow.contacts.for_customer(customer_id)
        unused = tuple(
            contact
            for contact in contacts
            if contact.is_live and (contact.last_communicated_at or contact.created_at) < cutoff
        )
        prompt = len(unused) >= config.unused_prompt_threshold and (
            actor.role >= config.unused_prompt_role
        )
        return UnusedContacts(contacts=unused, should_prompt=prompt)

    # -- duplicates and merge (rules M1-M6) --------------------------------------------------

    def _live_contacts(
        self, uow: UnitOfWork, actor: Actor, customer_id: str | None
    ) -> builtins.list[Contact]:
        if customer_id is not None:
            visible_customer(self._ctx, uow, customer_id, actor, Action.CONTACT_READ)
            return [c for c in uow.contacts.for_customer(customer_id) if c.is_live]
        self._ctx.authorize(actor, Action.CONTACT_READ, Target(location_id=actor.location_id))
        return accelerators.live_contacts(uow, actor.location_id)

    # Rule M1.
    def find_duplicates(self, *, actor: Actor, customer_id: str | None = None) -> DuplicateReport:
        """Duplicate contacts of one customer, or of every customer of the actor's location.

        Only contacts of the same customer are compared: merging works within a customer.
        Pairs dismissed with ``dismiss`` are never reported nor grouped together.
        """
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            contacts = self._live_contacts(uow, actor, customer_id)
            live = {contact.id for contact in contacts}
            apart = dismissals.pairs_in_force(uow, _DISMISSAL, actor.location_id, live)
        config = self._ctx.config
        return find_duplicates(
            contacts,
            kind="contact",
            config=config.match_for("contact"),
            region=config.phone_region,
            scope="customer_id",
            dismissed=apart,
        )

    @retried
    def find_similar(  # rule M6
        self, draft: NewContact | Contact, *, actor: Actor, customer_id: str | None = None
    ) -> builtins.list[SimilarMatch]:
        """Existing contacts like a new one, best first: warn before creating a duplicate.

        Without ``customer_id`` the draft is compared with every live contact of the actor's
        location, through the backend's matching index. Given a stored contact instead of a
        draft, it leaves out that contact and the contacts dismissed with it.
        """
        with self._ctx.store.unit_of_work() as uow:
            contacts = None
            if customer_id is None:
                self._ctx.authorize(
                    actor, Action.CONTACT_READ, Target(location_id=actor.location_id)
                )
            else:
                contacts = self._live_contacts(uow, actor, customer_id)
            found = similar(self._ctx, uow, _DISMISSAL, draft, actor.location_id, records=contacts)
            uow.commit()  # a backend may have built and kept its index: keep it
        return found

    @retried
    def dismiss(self, left_id: str, right_id: str, *, actor: Actor) -> Dismissal:
        """Record that two contacts of one customer are not duplicates (either order).

        Repeating it is harmless. Both must be live contacts of the same live customer of the
        actor's location; the actor needs the right to merge them. The customer's history
        notes it for each contact.

        Raises:
            DismissError: the two ids are the same, or the contacts belong to two customers.
            NotFound: an id is no live contact.
            PermissionDenied: the actor may not merge these contacts.
        """
        return dismissals.dismiss(self._ctx, _DISMISSAL, left_id, right_id, actor=actor)

    def dismissed(
        self, *, actor: Actor, customer_id: str | None = None
    ) -> builtins.list[Dismissal]:
        """The contact pairs dismissed as not duplicates, of the location or of one customer."""
        if customer_id is None:
            return dismissals.dismissed(self._ctx, _DISMISSAL, actor=actor)
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            customer = visible_customer(self._ctx, uow, customer_id, actor, Action.CONTACT_READ)
            mine = {contact.id for contact in uow.contacts.for_customer(customer.id)}
            found = uow.dismissals.for_location(customer.location_id, "contact")
        return [d for d in found if d.left_id in mine or d.right_id in mine]

    @retried
    def merge(  # rules M3, M4, K2
        self,
        main_id: str,
        other_ids: Sequence[str],
        *,
        actor: Actor,
        dry_run: bool = False,
    ) -> MergeResult[Contact]:
        """Merge contacts of one customer into a main contact.

        The main keeps its values and gains the others' where it is blank (a blank email too,
        the one time an email changes); the latest communication wins; the others become MERGED and
        resolve to the main. Atomic; recorded in history; ``dry_run`` previews without
        writing. Repeating the same merge returns the first result.
        """

        def authorize(uow: UnitOfWork, main: Contact) -> None:
            customer = live_customer(uow, main.customer_id)
            self._ctx.authorize(actor, Action.CONTACT_MERGE, contact_target(customer))

        return merging.merge(
            self._ctx,
            CONTACT_MERGE,
            main_id,
            other_ids,
            actor=actor,
            authorize=authorize,
            dry_run=dry_run,
        )

    @retried
    def unmerge(self, merge_id: str, *, actor: Actor) -> Contact:  # rule M4
        """Undo a merge: the merged contacts come back and the main gets its old values."""

        def authorize(uow: UnitOfWork, main: Contact) -> None:
            customer = live_customer(uow, main.customer_id)
            self._ctx.authorize(actor, Action.CONTACT_MERGE, contact_target(customer))

        restored: Contact = merging.unmerge(
            self._ctx, CONTACT_MERGE, merge_id, actor=actor, authorize=authorize
        )
        return restored

    def _record(
        self,
        uow: UnitOfWork,
        contact: Contact,
        action: str,
        actor: Actor | None,
        changes: Mapping[str, tuple[Any, Any]],
    ) -> None:
        record_history(self._ctx, uow, contact, action=action, actor=actor, changes=changes)
