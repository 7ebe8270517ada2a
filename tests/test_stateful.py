"""T2: the book against a plain-dict reference model, after every step of random programs.

A hypothesis ``RuleBasedStateMachine`` drives the public API (customers, contacts, merges,
bulk operations, a DMS source, search) of a book made by the ``make_book`` fixture, so the same
machine runs on every backend. The model below is written from SPEC.md, in plain dicts; it
decides for every call whether it succeeds or which error it raises, and what the book holds
afterwards. After every step the book must agree with it on:

* every customer (``customers.get``, ``recent``) and every contact (``contacts.list``,
  ``contacts.get``, where merged ids resolve to their live main contact);
* the whole history of every customer, tombstones included: exactly the entries of the
  successful calls, none of the refused ones, and append-only (what was read before is a prefix
  of what is read now);
* the hits and their order of a few fixed searches, the ``recent(text=...)`` filter and the
  DMS source's "already a customer" flags;
* no live contact hanging off a customer that is not live (no dangling reference);
* T20: no log record of the ``customerkit`` logger and no error message holds a name, email or
  phone the machine stored (ids and counts only).

Values come from small vocabularies so that collisions (numbers, usernames), fills by merges
and search hits happen often. Runs: ``ci`` profile 200 programs of up to 30 steps on memory;
fewer on SQL backends (see ``EXAMPLES``) to keep CI time bounded.
"""

from __future__ import annotations

import copy
import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

import customerkit as ck
from conftest import word_starts_disagree
from customerkit.testing import FakeClock, strategies
from customerkit.testing.strategies import (
    BAD_USERNAMES,
    CITIES,
    EMAILS,
    NAMES,
    PHONES,
    QUERIES,
    STATES,
    USERNAME_KEYS,
)
from customerkit.text import fold, query_words, words

# Among the slowest files: `-m "not slow"` leaves them out of a quick loop; CI runs them.
pytestmark = pytest.mark.slow

# -- actors ---------------------------------------------------------------------------------------

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
MANAGER = ck.Actor(user_id="manager", role=ck.Role.SERVICE_MANAGER, location_id="loc-1")
ADVISOR = ck.Actor(user_id="advisor", role=ck.Role.SERVICE_ADVISOR, location_id="loc-1")
STAFF = ck.Actor(user_id="staff", role=ck.Role.STAFF, location_id="loc-1")
FAR = ck.Actor(user_id="far", role=ck.Role.DEALER_ADMIN, location_id="loc-2")
ACTORS = [ADMIN, MANAGER, ADVISOR, STAFF, FAR]
READERS = {"loc-1": ADMIN, "loc-2": FAR}

#: Examples per backend: the ``ci`` profile's 200 on memory. SQL backends pay database round
#: trips for every call and every read of the invariants (about 60 reads a step: 40 ms a step on
#: SQLite, 100 ms on PostgreSQL here), so they run fewer programs of the same length to keep the
#: CI time of this file near a minute; the memory backend, checked against the same model, is
#: where hypothesis explores most.
EXAMPLES = {"memory": None, "sqlite": 25, "postgresql": 15}
STEPS = 30

# -- vocabularies ---------------------------------------------------------------------------------

# Shipped with the testing kit (``customerkit.testing.strategies``), so a third party's store
# is driven with the same vocabularies.
FIRST = strategies.FIRST_NAMES
LAST = strategies.LAST_NAMES
EXTERNAL_IDS = ["P-1", "P-2", "P-3"]

#: Fixed searches whose hits and order are checked after every step (rules S4, S5): ``QUERIES``.
RECENT_TEXT = "tires"
SOURCE_QUERY = "tire"

CUSTOMER_FIELDS = ("company_name", "customer_number", "city", "state", "username")
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "title")
CUSTOMER_FILL = ("customer_number", "city", "state")  # the fill fields this machine can fill
CONTACT_FILL = CONTACT_FIELDS
ALTERNATES = ("alternate_emails", "alternate_phones")


def _alternates(name: str, kept: str, records: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Rule M3: the emails (phones) of the merged records other than the kept one, each once."""

    def key(value: str) -> str:  # the machine's vocabulary differs only in case or in digits
        return value.casefold() if name == "email" else "".join(filter(str.isdigit, value))

    seen = {key(kept)} if kept else set()
    out = []
    for record in records:
        for value in (record[name], *record[f"alternate_{name}s"]):
            if value and key(value) not in seen:
                seen.add(key(value))
                out.append(value)
    return tuple(out)


#: Values the machine stores that are personal data: never in a log record or an error message.
PERSONAL_DATA = sorted(
    {*NAMES, *(e for e in EMAILS if e), *(p for p in PHONES if p), "Anne", "Smith"}
)


class _Captured(logging.Handler):
    """Keeps the formatted message of every log record."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Refused(Exception):
    """The model's verdict that a call must fail with one of ``types``."""

    def __init__(self, *types: type[ck.CustomerKitError]) -> None:
        super().__init__(", ".join(t.__name__ for t in types))
        self.types = types


def number_key(number: str) -> str:
    """Rule C2's comparison: case and separators ignored (enough for this vocabulary)."""
    return "".join(ch for ch in number.casefold() if ch.isalnum())


def plain(value: Any) -> Any:
    """History values as comparable plain data: enums by value, datetimes as ISO, tuples."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return tuple(plain(item) for item in value)
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    return value


def plain_changes(changes: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (plain(old), plain(new)) for name, (old, new) in changes.items()}


# -- the model ------------------------------------------------------------------------------------


class Model:
    """Everything the book should hold, in plain dicts."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[tuple[Any, ...]]] = {}
        self.merges: dict[str, dict[str, Any]] = {}
        self.merge_keys: dict[tuple[str, str, frozenset[str]], list[str]] = {}
        self.purged_customers: set[str] = set()
        self.purged_contacts: set[str] = set()
        #: (location, kind, low id, high id) -> (actor id, time) of each "not a duplicate".
        self.dismissals: dict[tuple[str, str, str, str], tuple[str, datetime]] = {}
        self.source: dict[str, dict[str, str]] = {}
        self.enabled = {"loc-1"}
        self.now = datetime.min.replace(tzinfo=UTC)

    # helpers ----------------------------------------------------------------------------------

    def log(  # noqa: PLR0917 - the fields of a ChangeRecord, in its order
        self,
        customer_id: str,
        entity: str,
        entity_id: str,
        action: str,
        actor: ck.Actor | None,
        changes: Mapping[str, tuple[Any, Any]],
    ) -> None:
        entry = (
            entity,
            entity_id,
            action,
            None if actor is None else actor.user_id,
            self.now,
            plain_changes(changes),
        )
        self.history.setdefault(customer_id, []).append(entry)

    @staticmethod
    def require(actor: ck.Actor, role: ck.Role, location_id: str) -> None:
        if actor.location_id != location_id or actor.role < role:
            raise Refused(ck.PermissionDenied)

    @staticmethod
    def require_own_fleet(actor: ck.Actor, customer: dict[str, Any]) -> None:
        if (
            actor.location_id != customer["location_id"]
            or actor.fleet_customer_id != customer["id"]
        ):
            raise Refused(ck.PermissionDenied)

    def live_customer(self, customer_id: str) -> dict[str, Any]:
        customer = self.customers.get(customer_id)
        if customer is None or customer["status"] != "ACTIVE":
            raise Refused(ck.NotFound)
        return customer

    def resolve(self, contact_id: str) -> dict[str, Any]:
        contact, seen = self.contacts.get(contact_id), set()
        while contact is not None and contact["status"] == "MERGED":
            if contact["id"] in seen:
                break
            seen.add(contact["id"])
            contact = self.contacts.get(contact["merged_into"])
        if contact is None or contact["status"] != "ACTIVE":
            raise Refused(ck.NotFound)
        return contact

    def contacts_of(self, customer_id: str) -> list[dict[str, Any]]:
        found = [k for k in self.contacts.values() if k["customer_id"] == customer_id]
        return sorted(found, key=lambda k: (k["created_at"], k["id"]))

    def number_holder(self, location_id: str, number: str, exclude: Iterable[str]) -> str | None:
        if not number:
            return None
        key = number_key(number)
        skip = set(exclude)
        for customer in self.customers.values():
            if (
                customer["id"] not in skip
                and customer["status"] == "ACTIVE"
                and customer["location_id"] == location_id
                and number_key(customer["customer_number"]) == key
            ):
                return str(customer["id"])
        return None

    def username_taken(self, username: str | None, exclude: str) -> bool:
        if username is None:
            return False
        key = USERNAME_KEYS[username]
        return any(
            c["id"] != exclude and c["username"] is not None and USERNAME_KEYS[c["username"]] == key
            for c in self.customers.values()
        )

    @staticmethod
    def invalid_fields(values: Mapping[str, Any], kind: str) -> set[str]:
        errors = set()
        if not values["company_name"]:
            errors.add("company_name")
        if not values["customer_number"] and kind == "LOCAL":
            errors.add("customer_number")
        if values.get("username") in BAD_USERNAMES:
            errors.add("username")
        return errors

    def conflicts(self, customer: Mapping[str, Any]) -> list[type[ck.CustomerKitError]]:
        found: list[type[ck.CustomerKitError]] = []
        if self.username_taken(customer["username"], customer["id"]):
            found.append(ck.DuplicateUsername)
        if customer["status"] == "ACTIVE" and self.number_holder(
            customer["location_id"], customer["customer_number"], [customer["id"]]
        ):
            found.append(ck.DuplicateCustomerNumber)
        return found

    # customers --------------------------------------------------------------------------------

    def create(
        self,
        draft: Mapping[str, Any],
        actor: ck.Actor,
        placeholder: str,
        source: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check one draft and add it; raises ``Refused`` (the caller orders batch errors)."""
        values = {name: draft.get(name, "") for name in CUSTOMER_FIELDS}
        values = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
        values["username"] = draft.get("username")
        if self.invalid_fields(values, draft["kind"]):
            raise Refused(ck.ValidationError)
        customer = {
            "id": placeholder,
            "location_id": actor.location_id,
            "kind": draft["kind"],
            **values,
            "status": "ACTIVE",
            "merged_into": None,
            "source": source,
            "version": 1,
            "created_at": self.now,
            "updated_at": self.now,
        }
        problems = self.conflicts(customer)
        if problems:
            raise Refused(*problems)
        self.customers[placeholder] = customer
        changes = {
            name: (None, customer[name])
            for name in ("kind", *CUSTOMER_FIELDS, "status")
            if customer[name] not in ("", None)
        }
        action = "create" if source is None else "import"
        self.log(placeholder, "customer", placeholder, action, actor, changes)
        return customer

    def create_many(self, drafts: list[dict[str, Any]], actor: ck.Actor) -> list[str]:
        self.require(actor, ck.Role.STAFF, actor.location_id)
        made, invalid = [], False
        for position, draft in enumerate(drafts):
            placeholder = f"new-customer-{position}"
            try:
                self.create(draft, actor, placeholder)
            except Refused as refused:
                if refused.types != (ck.ValidationError,):
                    raise
                if len(drafts) == 1:
                    raise
                invalid = True
                continue
            made.append(placeholder)
        if invalid:
            raise Refused(ck.ValidationError)
        return made

    def update(
        self,
        customer_id: str,
        changes: Mapping[str, Any],
        actor: ck.Actor,
        expected_version: int | None,
    ) -> dict[str, Any]:
        current = self.live_customer(customer_id)
        self.require(actor, ck.Role.STAFF, current["location_id"])
        if expected_version is not None and expected_version != current["version"]:
            raise Refused(ck.ConcurrentModification)
        if current["source"] is not None and set(changes) & set(current["source"]["fields"]):
            raise Refused(ck.ReadOnlyCustomer)
        new_username = changes.get("username", current["username"])
        if current["username"] is not None and new_username != current["username"]:
            raise Refused(ck.ImmutableField)
        if "customer_number" in changes:
            new_key = number_key(changes["customer_number"].strip())
            if new_key != number_key(current["customer_number"]) and not (
                current["kind"] == "FLEET" and not current["customer_number"]
            ):
                self.require(actor, ck.Role.SERVICE_MANAGER, current["location_id"])
        updated = dict(current)
        for name, value in changes.items():
            updated[name] = value.strip() if isinstance(value, str) else value
        if self.invalid_fields(updated, current["kind"]):
            raise Refused(ck.ValidationError)
        diff = {n: (current[n], updated[n]) for n in CUSTOMER_FIELDS if current[n] != updated[n]}
        if not diff:
            return current
        problems = self.conflicts(updated)
        if problems:
            raise Refused(*problems)
        updated.update(version=current["version"] + 1, updated_at=self.now)
        self.customers[customer_id] = updated
        self.log(customer_id, "customer", customer_id, "update", actor, diff)
        return updated

    def delete(self, customer_id: str, actor: ck.Actor, delete_history: bool) -> None:
        current = self.live_customer(customer_id)
        self.require(actor, ck.Role.SERVICE_MANAGER, current["location_id"])
        if delete_history:  # with the customers merged into it, and the merges' records
            gone = {customer_id}
            while absorbed := {
                i for i, c in self.customers.items() if c["merged_into"] in gone and i not in gone
            }:
                gone |= absorbed
            removed = {("customer", i) for i in gone}
            for purged in gone:
                for contact in self.contacts_of(purged):
                    del self.contacts[contact["id"]]
                    self.purged_contacts.add(contact["id"])
                    removed.add(("contact", contact["id"]))
                del self.customers[purged]
                self.history.pop(purged, None)
                self.purged_customers.add(purged)
            self.dismissals = {
                key: value
                for key, value in self.dismissals.items()
                if (key[1], key[2]) not in removed and (key[1], key[3]) not in removed
            }
            erased = {i for i, r in self.merges.items() if r["main"] in gone | self.purged_contacts}
            for merge_id in erased:
                del self.merges[merge_id]
            for ids in self.merge_keys.values():
                ids[:] = [i for i in ids if i not in erased]
            return
        for contact in self.contacts_of(customer_id):
            if contact["status"] == "ACTIVE":
                contact.update(
                    status="DELETED", version=contact["version"] + 1, updated_at=self.now
                )
        current.update(status="DELETED", version=current["version"] + 1, updated_at=self.now)
        self.log(
            customer_id, "customer", customer_id, "delete", actor, {"status": ("ACTIVE", "DELETED")}
        )

    # contacts ---------------------------------------------------------------------------------

    def add_contact(
        self, customer_id: str, draft: Mapping[str, str], actor: ck.Actor
    ) -> dict[str, Any]:
        if not (draft["first_name"] or draft["last_name"]):
            raise Refused(ck.ValidationError)
        customer = self.live_customer(customer_id)
        by_fleet = actor.role is ck.Role.FLEET_USER
        if by_fleet:  # Rule P1: a fleet user adds contacts to its own fleet customer only
            self.require_own_fleet(actor, customer)
        else:
            self.require(actor, ck.Role.STAFF, customer["location_id"])
        contact = {
            "id": "new-contact",
            "customer_id": customer_id,
            **{name: draft[name] for name in CONTACT_FIELDS},
            "alternate_emails": (),
            "alternate_phones": (),
            "managed_by": "FLEET" if by_fleet else "PROVIDER",  # Rule K1: the fleet manages it
            "status": "ACTIVE",
            "merged_into": None,
            "version": 1,
            "created_at": self.now,
            "updated_at": self.now,
            "last_communicated_at": None,
        }
        self.contacts["new-contact"] = contact
        changes = {
            name: (None, contact[name])
            for name in (*CONTACT_FIELDS, "managed_by", "status")
            if contact[name]
        }
        if by_fleet:
            changes["added_by_fleet"] = (None, True)
        self.log(customer_id, "contact", "new-contact", "add", actor, changes)
        return contact

    def _writable_contact(self, contact_id: str, actor: ck.Actor) -> dict[str, Any]:
        current = self.resolve(contact_id)
        customer = self.live_customer(current["customer_id"])
        if actor.location_id != customer["location_id"]:
            raise Refused(ck.PermissionDenied)
        if actor.role is ck.Role.FLEET_USER:  # Rule P1: its own fleet's fleet-managed contacts only
            self.require_own_fleet(actor, customer)
            if current["managed_by"] != "FLEET":
                raise Refused(ck.PermissionDenied)
            return current
        if current["managed_by"] == "FLEET":  # Rule K1: only the fleet's users change them
            raise Refused(ck.PermissionDenied)
        self.require(actor, ck.Role.STAFF, customer["location_id"])
        return current

    def update_contact(
        self, contact_id: str, changes: Mapping[str, str], actor: ck.Actor
    ) -> dict[str, Any]:
        current = self._writable_contact(contact_id, actor)
        if "email" in changes and changes["email"] != current["email"]:
            raise Refused(ck.ImmutableField)
        updated = {**current, **changes}
        if not (updated["first_name"] or updated["last_name"]):
            raise Refused(ck.ValidationError)
        diff = {n: (current[n], updated[n]) for n in CONTACT_FIELDS if current[n] != updated[n]}
        if not diff:
            return current
        updated.update(version=current["version"] + 1, updated_at=self.now)
        self.contacts[current["id"]] = updated
        self.log(updated["customer_id"], "contact", current["id"], "update", actor, diff)
        return updated

    def _tombstone_contact(self, contact: dict[str, Any], actor: ck.Actor) -> None:
        contact.update(status="DELETED", version=contact["version"] + 1, updated_at=self.now)
        self.log(
            contact["customer_id"],
            "contact",
            contact["id"],
            "delete",
            actor,
            {"status": ("ACTIVE", "DELETED")},
        )

    def delete_contact(self, contact_id: str, actor: ck.Actor) -> None:
        self._tombstone_contact(self._writable_contact(contact_id, actor), actor)

    def delete_many(self, contact_ids: list[str], actor: ck.Actor) -> list[str]:
        ids = list(dict.fromkeys(contact_ids))
        for contact_id in ids:  # checked in the caller's order
            contact = self.contacts.get(contact_id)
            if contact is None or contact["status"] != "ACTIVE":
                raise Refused(ck.NotFound)
            customer = self.live_customer(contact["customer_id"])
            self.require(actor, ck.Role.SERVICE_ADVISOR, customer["location_id"])
            if contact["managed_by"] == "FLEET":  # Rule K1: in bulk as singly, the fleet's own
                raise Refused(ck.PermissionDenied)
        for contact_id in sorted(ids):  # deleted (and in history) in id order
            self._tombstone_contact(self.contacts[contact_id], actor)
        return ids

    def record_communication(self, contact_id: str, at: datetime) -> dict[str, Any]:
        current = self.resolve(contact_id)
        last = current["last_communicated_at"]
        if last is not None and last >= at:
            return current
        current.update(last_communicated_at=at, version=current["version"] + 1)
        self.log(
            current["customer_id"],
            "contact",
            current["id"],
            "communication",
            None,
            {"last_communicated_at": (last, at)},
        )
        return current

    # merges -----------------------------------------------------------------------------------

    def merge(  # noqa: PLR0912 - the checks of rule M3 in the order the SPEC lists them
        self, kind: str, main_id: str, other_ids: list[str], actor: ck.Actor, dry_run: bool
    ) -> dict[str, Any]:
        """A merge of either kind (rule M3); returns what the ``MergeResult`` must say."""
        table = self.contacts if kind == "contact" else self.customers
        others = list(dict.fromkeys(other_ids))
        if not others or main_id in others:
            raise Refused(ck.MergeError)
        main = table.get(main_id)
        if main is None or main["status"] == "DELETED":
            raise Refused(ck.NotFound)
        if kind == "contact":
            location = self.live_customer(main["customer_id"])["location_id"]
        else:
            location = main["location_id"]
        self.require(actor, ck.Role.SERVICE_ADVISOR, location)
        key = (kind, main_id, frozenset(others))
        done = next((m for m in self.merge_keys.get(key, []) if not self.merges[m]["undone"]), None)
        if done is not None:  # the same merge again: its first result (RELIABILITY decision 7)
            record = self.merges[done]
            if dry_run:  # a preview writes nothing and names no merge (SPEC §2)
                return {"merge_id": None, "merged_ids": tuple(record["others"]), "main": None}
            resolved = main
            while resolved["status"] == "MERGED":
                resolved = table[resolved["merged_into"]]
            return {
                "merge_id": done,
                "merged_ids": tuple(record["others"]),
                "main": resolved,
                "provenance": record["provenance"],
            }
        if main["status"] != "ACTIVE":
            raise Refused(ck.MergeError)
        group = "customer_id" if kind == "contact" else "location_id"
        records = []
        for other_id in others:
            other = table.get(other_id)
            if other is None or other["status"] == "DELETED":
                raise Refused(ck.NotFound)
            if other["status"] == "MERGED" or other[group] != main[group]:
                raise Refused(ck.MergeError)
            records.append(other)
        if kind == "customer" and any(
            o["username"] is not None or o["source"] is not None for o in records
        ):
            raise Refused(ck.MergeError)
        fill = CONTACT_FILL if kind == "contact" else CUSTOMER_FILL
        locked = set(main["source"]["fields"]) if kind == "customer" and main["source"] else set()
        merged = dict(main)
        provenance = dict.fromkeys(
            CONTACT_FILL if kind == "contact" else _CUSTOMER_FILL_ALL, main_id
        )
        for name in fill:
            if main[name] or name in locked:
                continue
            donor = next((o for o in records if o[name]), None)
            if donor is not None:
                merged[name] = donor[name]
                provenance[name] = donor["id"]
        if kind == "contact":
            for name in ("email", "phone"):
                alternates = _alternates(name, merged[name], (main, *records))
                if alternates != main[f"alternate_{name}s"]:
                    merged[f"alternate_{name}s"] = alternates
                    provenance[f"alternate_{name}s"] = ",".join(
                        r["id"]
                        for r in (main, *records)
                        if {r[name], *r[f"alternate_{name}s"]} & set(alternates)
                    )
            talked = [k for k in (main, *records) if k["last_communicated_at"] is not None]
            if talked:
                latest = max(talked, key=lambda k: k["last_communicated_at"])
                merged["last_communicated_at"] = latest["last_communicated_at"]
                provenance["last_communicated_at"] = latest["id"]
        merged.update(version=main["version"] + 1, updated_at=self.now)
        if dry_run:
            return {
                "merge_id": None,
                "merged_ids": tuple(others),
                "main": merged,
                "provenance": provenance,
            }
        moved: dict[str, list[str]] = {}
        # Tombstones merged into the others earlier point at the main from now on (d6).
        earlier = [t for t in table.values() if t["merged_into"] in others]
        repointed = {o: sorted(t["id"] for t in earlier if t["merged_into"] == o) for o in others}
        for other in sorted([*records, *earlier], key=lambda o: o["id"]):
            if other["status"] == "MERGED":
                self.repoint(kind, other, main_id, actor)
                continue
            other.update(
                status="MERGED",
                merged_into=main_id,
                version=other["version"] + 1,
                updated_at=self.now,
            )
            if kind == "customer":
                moved[other["id"]] = []
                for contact in self.contacts_of(other["id"]):
                    if contact["status"] == "ACTIVE":
                        contact.update(
                            customer_id=main_id,
                            version=contact["version"] + 1,
                            updated_at=self.now,
                        )
                        moved[other["id"]].append(contact["id"])
            owner = other["customer_id"] if kind == "contact" else other["id"]
            self.log(owner, kind, other["id"], "merged", actor, {"merged_into": (None, main_id)})
        filled = {
            name: (plain(main[name]), plain(merged[name]))
            for name in (*fill, *ALTERNATES, "last_communicated_at")
            if name in main and main[name] != merged[name]
        }
        table[main_id] = merged
        owner = merged["customer_id"] if kind == "contact" else main_id
        self.log(
            owner, kind, main_id, "merge", actor, {**filled, "merged_ids": ((), tuple(others))}
        )
        self.merges["new-merge"] = {
            "kind": kind,
            "main": main_id,
            "others": others,
            "filled": filled,
            "moved": moved,
            "repointed": {o: ids for o, ids in repointed.items() if ids},
            "provenance": provenance,
            "undone": False,
        }
        self.merge_keys.setdefault(key, []).append("new-merge")
        return {
            "merge_id": "new-merge",
            "merged_ids": tuple(others),
            "main": merged,
            "provenance": provenance,
        }

    def repoint(
        self, kind: str, tombstone: dict[str, Any], target_id: str, actor: ck.Actor
    ) -> None:
        """Point a tombstone at another record (a merge of the record it was merged into)."""
        changes = {"merged_into": (tombstone["merged_into"], target_id)}
        tombstone.update(
            merged_into=target_id, version=tombstone["version"] + 1, updated_at=self.now
        )
        owner = tombstone["customer_id"] if kind == "contact" else tombstone["id"]
        self.log(owner, kind, tombstone["id"], "repointed", actor, changes)

    def unmerge(  # noqa: PLR0912 - the checks of rule M4, in order
        self, kind: str, merge_id: str, actor: ck.Actor
    ) -> dict[str, Any]:
        table = self.contacts if kind == "contact" else self.customers
        record = self.merges.get(merge_id)
        if record is None or record["kind"] != kind:
            raise Refused(ck.NotFound)
        if record["undone"]:
            raise Refused(ck.MergeError)
        main = table.get(record["main"])
        if main is None or main["status"] != "ACTIVE":
            raise Refused(ck.MergeError)
        if kind == "contact":
            location = self.live_customer(main["customer_id"])["location_id"]
        else:
            location = main["location_id"]
        self.require(actor, ck.Role.SERVICE_ADVISOR, location)
        if any(plain(main[name]) != new for name, (_, new) in record["filled"].items()):
            raise Refused(ck.MergeError)
        if any(table.get(o) is None or table[o]["status"] != "MERGED" for o in record["others"]):
            raise Refused(ck.MergeError)
        repointed = record["repointed"]
        if any(table[t]["merged_into"] != main["id"] for ids in repointed.values() for t in ids):
            raise Refused(ck.MergeError)
        # The main gives back the values it took, then the others come back (following the
        # main to its customer, for contacts); customers take their moved contacts back.
        restored_main = dict(main)
        for name, (old, _) in record["filled"].items():
            restored_main[name] = (
                datetime.fromisoformat(old) if name == "last_communicated_at" and old else old
            )
        restored_main.update(version=main["version"] + 1, updated_at=self.now)
        table[main["id"]] = restored_main
        for other_id in sorted(record["others"]):
            other = table[other_id]
            other.update(
                status="ACTIVE", merged_into=None, version=other["version"] + 1, updated_at=self.now
            )
            for tombstone_id in repointed.get(other_id, []):
                self.repoint(kind, table[tombstone_id], other_id, actor)
            if kind == "contact":
                other["customer_id"] = restored_main["customer_id"]
            else:
                for contact_id in record["moved"].get(other_id, []):
                    contact = self.contacts.get(contact_id)
                    if contact is not None and contact["customer_id"] == main["id"]:
                        contact.update(
                            customer_id=other_id,
                            version=contact["version"] + 1,
                            updated_at=self.now,
                        )
            owner = other["customer_id"] if kind == "contact" else other_id
            self.log(owner, kind, other_id, "unmerged", actor, {"merged_into": (main["id"], None)})
        if kind == "customer":
            for customer in [restored_main, *(table[o] for o in record["others"])]:
                if self.conflicts(customer):
                    raise Refused(ck.DuplicateCustomerNumber)
        owner = restored_main["customer_id"] if kind == "contact" else main["id"]
        changes = {name: (new, old) for name, (old, new) in record["filled"].items()}
        changes["merged_ids"] = (tuple(record["others"]), ())
        self.log(owner, kind, main["id"], "unmerge", actor, changes)
        record["undone"] = True
        return restored_main

    # sources ----------------------------------------------------------------------------------

    # dismissals ------------------------------------------------------------------------------

    def _dismissal_pair(
        self, kind: str, left_id: str, right_id: str, actor: ck.Actor, *, live: bool
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Both records with their customers, checked as dismiss (``live``) or undismiss do."""
        if left_id == right_id:
            raise Refused(ck.DismissError)
        found = []
        for record_id in sorted((left_id, right_id)):
            table = self.contacts if kind == "contact" else self.customers
            record = table.get(record_id)
            owner = None
            if record is not None:
                owner = self.customers.get(record["customer_id"]) if kind == "contact" else record
            if owner is None or (
                live and not (record["status"] == owner["status"] == "ACTIVE")  # type: ignore[index]
            ):
                # The ids are checked in order: an earlier id may be refused for the actor.
                raise Refused(ck.NotFound, ck.PermissionDenied)
            try:
                self.require(actor, ck.Role.SERVICE_ADVISOR, owner["location_id"])
            except Refused:
                raise Refused(ck.PermissionDenied, ck.NotFound) from None
            found.append((record, owner))
        return found

    def dismiss(self, kind: str, left_id: str, right_id: str, actor: ck.Actor) -> None:
        found = self._dismissal_pair(kind, left_id, right_id, actor, live=True)
        group = "customer_id" if kind == "contact" else "location_id"
        (low, owner), (high, _) = found
        if low[group] != high[group]:
            raise Refused(ck.DismissError)
        key = (owner["location_id"], kind, low["id"], high["id"])
        if key in self.dismissals:
            return
        self.dismissals[key] = (actor.user_id, self.now)
        for (record, record_owner), (other, _) in zip(found, reversed(found), strict=True):
            change = {"not_duplicate_of": (None, other["id"])}
            self.log(record_owner["id"], kind, record["id"], "dismiss", actor, change)

    def undismiss(self, kind: str, left_id: str, right_id: str, actor: ck.Actor) -> None:
        found = self._dismissal_pair(kind, left_id, right_id, actor, live=False)
        (low, owner), (high, _) = found
        key = (owner["location_id"], kind, low["id"], high["id"])
        if self.dismissals.pop(key, None) is None:
            return
        for (record, record_owner), (other, _) in zip(found, reversed(found), strict=True):
            change = {"not_duplicate_of": (other["id"], None)}
            self.log(record_owner["id"], kind, record["id"], "undismiss", actor, change)

    def stands_for(self, kind: str, record_id: str) -> str | None:
        """The live record an id stands for now (through merges), as matching reads it."""
        table = self.contacts if kind == "contact" else self.customers
        record, seen = table.get(record_id), set()
        while record is not None and record["status"] == "MERGED" and record["id"] not in seen:
            seen.add(record["id"])
            record = table.get(record["merged_into"])
        return record["id"] if record is not None and record["status"] == "ACTIVE" else None

    def _enabled(self, actor: ck.Actor) -> None:
        self.require(actor, ck.Role.STAFF, actor.location_id)
        if actor.location_id not in self.enabled:
            raise Refused(ck.SourceError)

    def source_holder(self, external_id: str) -> dict[str, Any] | None:
        return next(
            (
                c
                for c in self.customers.values()
                if c["status"] == "ACTIVE"
                and c["source"] is not None
                and c["source"]["external_id"] == external_id
            ),
            None,
        )

    def import_customer(self, external_id: str, actor: ck.Actor) -> dict[str, Any]:
        self._enabled(actor)
        data = self.source.get(external_id)
        if data is None:
            raise Refused(ck.SourceError)
        if self.source_holder(external_id) is not None:
            raise Refused(ck.AlreadyImported)
        link = {
            "source": "dms",
            "external_id": external_id,
            "fields": tuple(sorted(data)),
            "last_synced_at": self.now,
        }
        return self.create({**data, "kind": "LOCAL"}, actor, "new-customer-0", source=link)

    def refresh(self, customer_id: str, actor: ck.Actor) -> dict[str, Any]:
        current = self.live_customer(customer_id)
        self.require(actor, ck.Role.STAFF, current["location_id"])
        if current["source"] is None:
            raise Refused(ck.SourceError)
        self._enabled(actor)
        data = self.source.get(current["source"]["external_id"])
        if data is None:
            raise Refused(ck.SourceError)
        updated = dict(current)
        for name in current["source"]["fields"]:
            if name not in data:
                updated[name] = ""
        updated.update(data)
        if self.invalid_fields(updated, current["kind"]):
            raise Refused(ck.ValidationError)
        problems = self.conflicts(updated)
        if problems:
            raise Refused(*problems)
        updated["source"] = {
            **current["source"],
            "fields": tuple(sorted(data)),
            "last_synced_at": self.now,
        }
        updated.update(version=current["version"] + 1, updated_at=self.now)
        diff = {n: (current[n], updated[n]) for n in CUSTOMER_FIELDS if current[n] != updated[n]}
        self.customers[customer_id] = updated
        self.log(customer_id, "customer", customer_id, "refresh", actor, diff)
        return updated

    # reads ------------------------------------------------------------------------------------

    def search(self, location_id: str, query: str, limit: int = 20) -> list[tuple[Any, ...]]:
        """Rules S2-S5 from the SPEC, by brute force over the live customers of a location."""
        wanted = query_words(query)
        ranked = []
        fields = (
            ck.SearchField.NAME,
            ck.SearchField.CITY,
            ck.SearchField.STATE,
            ck.SearchField.NUMBER,
        )
        for c in self.customers.values():
            if c["status"] != "ACTIVE" or c["location_id"] != location_id:
                continue
            text = {
                ck.SearchField.NAME: words(c["company_name"]),
                ck.SearchField.CITY: words(c["city"]),
                ck.SearchField.STATE: words(c["state"]),
                ck.SearchField.NUMBER: words(c["customer_number"]),
            }
            tier, best_fields = 3, []
            for q in wanted:
                strengths = {f: _field_strength(q, text[f]) for f in fields}
                found = [s for s in strengths.values() if s is not None]
                if not found:
                    break
                tier = min(tier, max(found))
                best_fields.append({f for f, s in strengths.items() if s == max(found)})
            else:
                common = set.intersection(*best_fields)
                field = next((f for f in fields if f in common), ck.SearchField.ALL)
                name = fold(c["company_name"])
                weight = 1.0 if field is ck.SearchField.NAME else 0.9
                score = round((tier + 1) / 4 * weight, 6)
                key = (-tier, 0 if field is ck.SearchField.NAME else 1, len(name), name, c["id"])
                ranked.append((key, (c["id"], field, score)))
        ranked.sort(key=lambda item: item[0])
        return [hit for _, hit in ranked[:limit]]


#: Every customer fill field of rule M3 (the provenance of a customer merge names them all).
_CUSTOMER_FILL_ALL = (
    "customer_number",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "email",
    "phone",
    "phone_extension",
    "fax",
    "company_type",
    "category",
)


_NEW_CONTACT = {"first_name": "Ann", "last_name": "Lee", "email": "", "phone": "", "title": ""}
#: name -> (model call, book call) for calls naming an unknown id.
UNKNOWN_ID_CALLS: dict[
    str, tuple[Callable[[Model, ck.Actor], Any], Callable[[ck.Book, ck.Actor], Any]]
] = {
    "customers.get": (
        lambda m, a: m.live_customer("missing"),
        lambda b, a: b.customers.get("missing", actor=a),
    ),
    "customers.update": (
        lambda m, a: m.update("missing", {"city": "Denver"}, a, None),
        lambda b, a: b.customers.update("missing", {"city": "Denver"}, actor=a),
    ),
    "customers.delete": (
        lambda m, a: m.delete("missing", a, False),
        lambda b, a: b.customers.delete("missing", actor=a),
    ),
    "customers.dismiss": (
        lambda m, a: m.dismiss("customer", "missing", "missing-2", a),
        lambda b, a: b.customers.dismiss("missing", "missing-2", actor=a),
    ),
    "contacts.undismiss": (
        lambda m, a: m.undismiss("contact", "missing", "missing-2", a),
        lambda b, a: b.contacts.undismiss("missing", "missing-2", actor=a),
    ),
    "customers.merge": (
        lambda m, a: m.merge("customer", "missing", ["missing-2"], a, False),
        lambda b, a: b.customers.merge("missing", ["missing-2"], actor=a),
    ),
    "customers.unmerge": (
        lambda m, a: m.unmerge("customer", "missing", a),
        lambda b, a: b.customers.unmerge("missing", actor=a),
    ),
    "contacts.add": (
        lambda m, a: m.add_contact("missing", _NEW_CONTACT, a),
        lambda b, a: b.contacts.add("missing", ck.NewContact(**_NEW_CONTACT), actor=a),
    ),
    "contacts.update": (
        lambda m, a: m.update_contact("missing", {"title": "Owner"}, a),
        lambda b, a: b.contacts.update("missing", {"title": "Owner"}, actor=a),
    ),
    "contacts.delete": (
        lambda m, a: m.delete_contact("missing", a),
        lambda b, a: b.contacts.delete("missing", actor=a),
    ),
    "contacts.delete_many": (
        lambda m, a: m.delete_many(["missing"], a),
        lambda b, a: b.contacts.delete_many(["missing"], actor=a),
    ),
    "contacts.merge": (
        lambda m, a: m.merge("contact", "missing", ["missing-2"], a, False),
        lambda b, a: b.contacts.merge("missing", ["missing-2"], actor=a),
    ),
    "contacts.unmerge": (
        lambda m, a: m.unmerge("contact", "missing", a),
        lambda b, a: b.contacts.unmerge("missing", actor=a),
    ),
    "contacts.record_communication": (
        lambda m, a: m.record_communication("missing", m.now),
        lambda b, a: b.contacts.record_communication("missing"),
    ),
    "sources.refresh_customer": (
        lambda m, a: m.refresh("missing", a),
        lambda b, a: b.sources.refresh_customer("missing", actor=a),
    ),
}


def _field_strength(query_word: str, field_words: Iterable[str]) -> int | None:
    best = None
    for word in field_words:
        if word == query_word:
            strength = 3
        elif word.startswith(query_word):
            strength = 2
        elif len(query_word) >= 3 and query_word in word:
            strength = 1
        else:
            continue
        best = strength if best is None else max(best, strength)
    return best


# -- comparing the book with the model ------------------------------------------------------------


def customer_view(customer: ck.Customer) -> dict[str, Any]:
    source = None
    if customer.source is not None:
        source = {
            "source": customer.source.source,
            "external_id": customer.source.external_id,
            "fields": tuple(customer.source.fields),
            "last_synced_at": customer.source.last_synced_at,
        }
    return {
        "id": customer.id,
        "location_id": customer.location_id,
        "kind": customer.kind.value,
        **{name: getattr(customer, name) for name in CUSTOMER_FIELDS},
        "status": customer.status.value,
        "merged_into": customer.merged_into,
        "source": source,
        "version": customer.version,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }


def contact_view(contact: ck.Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "customer_id": contact.customer_id,
        **{name: getattr(contact, name) for name in (*CONTACT_FIELDS, *ALTERNATES)},
        "managed_by": contact.managed_by.value,
        "status": contact.status.value,
        "merged_into": contact.merged_into,
        "version": contact.version,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "last_communicated_at": contact.last_communicated_at,
    }


def history_view(record: ck.ChangeRecord) -> tuple[Any, ...]:
    return (
        record.entity,
        record.entity_id,
        record.action,
        record.actor_id,
        record.at,
        plain_changes(record.changes),
    )


def empty_book(make_book: Callable[[FakeClock], ck.Book], clock: FakeClock) -> ck.Book:
    """A book with no data, even when ``make_book`` hands every call of a test one database.

    On PostgreSQL ``make_book`` opens one database per test; tests here make many books per test
    (one per example), so every table but the schema version is emptied first. Close the previous
    book before making the next.
    """
    book = make_book(clock)
    engine = getattr(book.store, "engine", None)
    if engine is not None and engine.dialect.name == "postgresql":
        from sqlalchemy import MetaData, text

        metadata = MetaData()
        metadata.reflect(engine)
        tables = ", ".join(f'"{name}"' for name in metadata.tables if name != "schema_version")
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return book


# -- the machine ----------------------------------------------------------------------------------

#: Mostly the admin, so that most calls get past the permission checks to the interesting part.
actors = st.sampled_from([ADMIN, ADMIN, ADMIN, *ACTORS])
customer_drafts = strategies.customer_values()
customer_changes = strategies.customer_changes()
contact_drafts = strategies.contact_values()
contact_changes = strategies.contact_changes()
source_records = st.fixed_dictionaries(
    {
        "company_name": st.sampled_from(NAMES),
        "customer_number": st.sampled_from(["P-1", "P-2", "C-1", "N-3"]),
    },
    optional={"city": st.sampled_from(CITIES[1:]), "state": st.sampled_from(STATES[1:])},
)


def new_customer(draft: Mapping[str, Any]) -> ck.NewCustomer:
    return ck.NewCustomer(
        company_name=draft["company_name"],
        customer_number=draft["customer_number"],
        city=draft["city"],
        state=draft["state"],
        kind=ck.CustomerKind(draft["kind"]),
        username=draft["username"],
    )


class BookMachine(RuleBasedStateMachine):
    """Drives a book and the model side by side; ``make_book`` is set per backend."""

    make_book: Callable[[FakeClock], ck.Book]

    customers = Bundle("customers")
    contacts = Bundle("contacts")
    merges = Bundle("merges")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.book = empty_book(type(self).make_book, self.clock)
        self.model = Model()
        self.model.now = self.clock.now
        self.seen_history: dict[str, list[tuple[Any, ...]]] = {}
        self.seed_contacts: list[str] = []
        self.fleet_id = ""  # the seed fleet customer, once created
        self.model_merge_ids: list[str] = []
        self.logs = _Captured()
        self.logger = logging.getLogger("customerkit")
        self.log_level = self.logger.level
        self.logger.addHandler(self.logs)
        self.logger.setLevel(logging.DEBUG)
        self.source = ck.InMemorySource("dms", [])
        self.book.sources.register(self.source)
        self.book.sources.enable("dms", location_id="loc-1", actor=ADMIN)
        for external_id, name, number in (
            ("P-1", "Johnson Tires", "P-1"),
            ("P-2", "John Deere", "P-2"),
        ):
            data = {"company_name": name, "customer_number": number, "city": "Denver"}
            self.source.put(ck.SourceRecord(external_id=external_id, data=data))
            self.model.source[external_id] = data

    def teardown(self) -> None:
        self.logger.removeHandler(self.logs)
        self.logger.setLevel(self.log_level)
        self.book.close()

    # running one call on both sides --------------------------------------------------------

    def both(self, model_call: Callable[[Model], Any], book_call: Callable[[], Any]) -> Any:
        """Run a call on a copy of the model and on the book; they must agree on the outcome.

        Returns ``(expected, got)`` on success, ``None`` when both refused.
        """
        work = copy.deepcopy(self.model)
        work.now = self.clock.now
        try:
            expected, refused = model_call(work), None
        except Refused as verdict:
            expected, refused = None, verdict.types
        try:
            got = book_call()
        except ck.CustomerKitError as error:
            note(f"book raised {type(error).__name__}: {error}")
            found = [value for value in PERSONAL_DATA if value in str(error)]
            assert not found, f"T20: {type(error).__name__} repeats {found}"  # noqa: PT017
            assert refused is not None, (  # noqa: PT017 - comparing outcomes, not expecting one
                f"the model expected success; the book raised {error!r}"
            )
            assert type(error) in refused, f"expected one of {refused}, got {error!r}"  # noqa: PT017
            return None
        assert refused is None, f"the model expected {refused}; the book succeeded with {got!r}"
        self.model = work
        return expected, got

    def rename(self, placeholder: str, real: str) -> None:
        """Give a record the id the book chose for it."""
        m = self.model
        for table in (m.customers, m.contacts, m.merges):
            if placeholder in table:
                record = table.pop(placeholder)
                if "id" in record:
                    record["id"] = real
                table[real] = record
        if placeholder in m.history:
            m.history[real] = m.history.pop(placeholder)
        for entries in m.history.values():
            entries[:] = [(e[0], real if e[1] == placeholder else e[1], *e[2:]) for e in entries]
        for contact in m.contacts.values():
            if contact["customer_id"] == placeholder:
                contact["customer_id"] = real
        for ids in m.merge_keys.values():
            ids[:] = [real if i == placeholder else i for i in ids]

    # seed data: a customer with contacts to merge, and a blank-numbered fleet -----------------

    @initialize(target=customers)
    def seed(self) -> Any:
        """Three customers with contacts, so merges are possible from the first steps."""
        seeds = [
            {
                "company_name": "Johnson Tires",
                "customer_number": "C-1",
                "city": "Denver",
                "state": "CO",
                "kind": "LOCAL",
                "username": None,
            },
            {
                "company_name": "Denver Tire Co",
                "customer_number": "",
                "city": "",
                "state": "",
                "kind": "FLEET",
                "username": None,
            },
            {
                "company_name": "John Deere",
                "customer_number": "N-3",
                "city": "Aurora",
                "state": "",
                "kind": "LOCAL",
                "username": None,
            },
        ]
        ids = self._created(
            self.both(
                lambda m: m.create_many(seeds, ADMIN),
                lambda: self.book.customers.create_many(
                    [new_customer(d) for d in seeds], actor=ADMIN
                ),
            )
        )
        customer_ids = [c["id"] for c in self.model.customers.values()]
        self.fleet_id = customer_ids[1]
        people = [
            (0, "Ann", "Lee", "ann@example.com", ""),
            (0, "Anne", "Lee", "", "5550142"),
            (0, "Bob", "Smith", "", ""),
            (1, "Ann", "Lee", "", "303 555 0142"),
            (2, "Bob", "Lee", "bob@example.org", ""),
        ]
        for index, first, last, email, phone in people:
            draft = {
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": phone,
                "title": "",
            }
            self.seed_contacts.append(self.add_contact(ADMIN, customer_ids[index], draft))
        return ids

    @precondition(lambda self: self.seed_contacts)
    @rule(target=contacts)
    def adopt_seed_contacts(self) -> Any:
        seeded, self.seed_contacts = self.seed_contacts, []
        return multiple(*seeded)

    # rules: time -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 60, 86_400 * 40]))
    def tick(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    # rules: customers ----------------------------------------------------------------------

    @rule(target=customers, actor=actors, draft=customer_drafts)
    def create_customer(self, actor: ck.Actor, draft: dict[str, Any]) -> Any:
        outcome = self.both(
            lambda m: m.create_many([draft], actor),
            lambda: [self.book.customers.create(new_customer(draft), actor=actor)],
        )
        return self._created(outcome)

    @rule(target=customers, actor=actors, drafts=st.lists(customer_drafts, min_size=1, max_size=3))
    def create_many(self, actor: ck.Actor, drafts: list[dict[str, Any]]) -> Any:
        outcome = self.both(
            lambda m: m.create_many(drafts, actor),
            lambda: self.book.customers.create_many([new_customer(d) for d in drafts], actor=actor),
        )
        return self._created(outcome)

    def _created(self, outcome: Any) -> Any:
        if outcome is None:
            return multiple()
        placeholders, created = outcome
        assert len(placeholders) == len(created)
        for placeholder, customer in zip(placeholders, created, strict=True):
            self.rename(placeholder, customer.id)
            assert customer_view(customer) == self.model.customers[customer.id]
        return multiple(*(c.id for c in created))

    @rule(
        actor=actors,
        customer_id=customers,
        changes=customer_changes,
        version=st.sampled_from(["none", "current", "stale"]),
    )
    def update_customer(
        self, actor: ck.Actor, customer_id: str, changes: dict[str, Any], version: str
    ) -> None:
        current = self.model.customers.get(customer_id)
        expected_version = None
        if version != "none" and current is not None:
            expected_version = current["version"] - (version == "stale")
        outcome = self.both(
            lambda m: m.update(customer_id, changes, actor, expected_version),
            lambda: self.book.customers.update(
                customer_id, changes, actor=actor, expected_version=expected_version
            ),
        )
        if outcome is not None:
            assert customer_view(outcome[1]) == outcome[0]

    @rule(actor=actors, customer_id=customers, delete_history=st.booleans())
    def delete_customer(self, actor: ck.Actor, customer_id: str, delete_history: bool) -> None:
        self.both(
            lambda m: m.delete(customer_id, actor, delete_history),
            lambda: self.book.customers.delete(
                customer_id, actor=actor, delete_history=delete_history
            ),
        )
        if customer_id in self.model.purged_customers:
            self.seen_history.pop(customer_id, None)
            # A purge erases the merges into the customer too: none is left to undo.
            self.model_merge_ids = [i for i in self.model_merge_ids if i in self.model.merges]

    # rules: contacts -----------------------------------------------------------------------

    @rule(target=contacts, actor=actors, customer_id=customers, draft=contact_drafts)
    def add_contact(self, actor: ck.Actor, customer_id: str, draft: dict[str, str]) -> Any:
        outcome = self.both(
            lambda m: m.add_contact(customer_id, draft, actor),
            lambda: self.book.contacts.add(customer_id, ck.NewContact(**draft), actor=actor),
        )
        if outcome is None:
            return multiple()
        contact = outcome[1]
        self.rename("new-contact", contact.id)
        assert contact_view(contact) == self.model.contacts[contact.id]
        return contact.id

    @rule(actor=actors, contact_id=contacts, changes=contact_changes)
    def update_contact(self, actor: ck.Actor, contact_id: str, changes: dict[str, str]) -> None:
        outcome = self.both(
            lambda m: m.update_contact(contact_id, changes, actor),
            lambda: self.book.contacts.update(contact_id, changes, actor=actor),
        )
        if outcome is not None:
            assert contact_view(outcome[1]) == outcome[0]

    @rule(actor=actors, contact_id=contacts)
    def delete_contact(self, actor: ck.Actor, contact_id: str) -> None:
        self.both(
            lambda m: m.delete_contact(contact_id, actor),
            lambda: self.book.contacts.delete(contact_id, actor=actor),
        )

    # rules: a fleet user of the seed fleet (rule K1: it manages the contacts it adds) -------------

    def fleet_user(self) -> ck.Actor:
        return ck.Actor(
            user_id="fleet",
            role=ck.Role.FLEET_USER,
            location_id="loc-1",
            fleet_customer_id=self.fleet_id,
        )

    @rule(target=contacts, customer_id=customers, own=st.booleans(), draft=contact_drafts)
    def fleet_add_contact(self, customer_id: str, own: bool, draft: dict[str, str]) -> Any:
        return self.add_contact(self.fleet_user(), self.fleet_id if own else customer_id, draft)

    @rule(contact_id=contacts, changes=contact_changes)
    def fleet_update_contact(self, contact_id: str, changes: dict[str, str]) -> None:
        self.update_contact(self.fleet_user(), contact_id, changes)

    @rule(contact_id=contacts)
    def fleet_delete_contact(self, contact_id: str) -> None:
        self.delete_contact(self.fleet_user(), contact_id)

    @rule(actor=actors, contact_ids=st.lists(contacts, max_size=4), unknown=st.booleans())
    def delete_many(self, actor: ck.Actor, contact_ids: list[str], unknown: bool) -> None:
        contact_ids = [*contact_ids, "missing"] if unknown else contact_ids
        outcome = self.both(
            lambda m: m.delete_many(contact_ids, actor),
            lambda: self.book.contacts.delete_many(contact_ids, actor=actor),
        )
        if outcome is not None:
            assert outcome[1] == outcome[0]

    @rule(contact_id=contacts, days_ago=st.sampled_from([0, 1, 30, 400]))
    def record_communication(self, contact_id: str, days_ago: int) -> None:
        at = self.clock.now - timedelta(days=days_ago)
        outcome = self.both(
            lambda m: m.record_communication(contact_id, at),
            lambda: self.book.contacts.record_communication(contact_id, at=at),
        )
        if outcome is not None:
            assert contact_view(outcome[1]) == outcome[0]

    @rule(actor=actors, call=st.sampled_from(sorted(UNKNOWN_ID_CALLS)))
    def call_with_unknown_id(self, actor: ck.Actor, call: str) -> None:
        """Every entry point refuses an id it does not know with NotFound, changing nothing."""
        model_call, book_call = UNKNOWN_ID_CALLS[call]
        assert (
            self.both(lambda m: model_call(m, actor), lambda: book_call(self.book, actor)) is None
        )

    # rules: merges -------------------------------------------------------------------------

    @rule(
        target=merges,
        actor=actors,
        main_id=contacts,
        other_ids=st.lists(contacts, min_size=1, max_size=3),
        dry_run=st.booleans(),
    )
    def merge_contacts(
        self, actor: ck.Actor, main_id: str, other_ids: list[str], dry_run: bool
    ) -> Any:
        return self._merge("contact", self.book.contacts, actor, main_id, other_ids, dry_run)

    @rule(
        target=merges,
        actor=actors,
        main_id=customers,
        other_ids=st.lists(customers, min_size=1, max_size=3),
        dry_run=st.booleans(),
    )
    def merge_customers(
        self, actor: ck.Actor, main_id: str, other_ids: list[str], dry_run: bool
    ) -> Any:
        return self._merge("customer", self.book.customers, actor, main_id, other_ids, dry_run)

    def _merge(  # noqa: PLR0917 - a rule's arguments, passed on
        self,
        kind: str,
        service: Any,
        actor: ck.Actor,
        main_id: str,
        other_ids: list[str],
        dry_run: bool,
    ) -> Any:
        outcome = self.both(
            lambda m: m.merge(kind, main_id, other_ids, actor, dry_run),
            lambda: service.merge(main_id, other_ids, actor=actor, dry_run=dry_run),
        )
        if outcome is None:
            return multiple()
        expected, result = outcome
        view = contact_view if kind == "contact" else customer_view
        assert result.merged_ids == expected["merged_ids"]
        if expected["main"] is not None:
            assert view(result.main) == expected["main"]
        if "provenance" in expected:
            assert dict(result.provenance) == expected["provenance"]
        if expected["merge_id"] is None:
            assert result.merge_id is None, "a dry run returns merge_id=None (SPEC §2)"
            return multiple()
        if expected["merge_id"] == "new-merge":
            assert result.merge_id is not None
            assert result.merge_id not in self.model.merges, "a new merge needs a new id"
            self.rename("new-merge", result.merge_id)
            return result.merge_id
        assert result.merge_id == expected["merge_id"], "a repeated merge returns the first"
        return multiple()

    @rule(actor=actors, data=st.data(), dry_run=st.sampled_from([False, False, True]))
    def merge_related_contacts(self, actor: ck.Actor, data: st.DataObject, dry_run: bool) -> None:
        """A merge of live contacts of one customer."""
        self._merge_related("contact", actor, data, dry_run)

    @rule(actor=actors, data=st.data(), dry_run=st.sampled_from([False, False, True]))
    def merge_related_customers(self, actor: ck.Actor, data: st.DataObject, dry_run: bool) -> None:
        """A merge of live customers of one location, without usernames or a source."""
        self._merge_related("customer", actor, data, dry_run)

    @rule(actor=actors, data=st.data())
    def merge_contacts_then_their_customer(self, actor: ck.Actor, data: st.DataObject) -> None:
        """A common clean-up: merge a customer's duplicate contacts, then merge the customer into
        another one (its contacts move along); later unmerges then undo them in any order."""
        self._merge_related("contact", actor, data, dry_run=False)
        self._merge_related("customer", actor, data, dry_run=False)

    def _merge_related(
        self, kind: str, actor: ck.Actor, data: st.DataObject, dry_run: bool
    ) -> None:
        """A merge of records that can be merged (the bundle rules mostly find refusals)."""
        m = self.model
        table = m.contacts if kind == "contact" else m.customers
        group = "customer_id" if kind == "contact" else "location_id"
        groups: dict[str, list[str]] = {}
        for record in table.values():
            if record["status"] == "ACTIVE" and (
                kind == "contact" or (record["username"] is None and record["source"] is None)
            ):
                groups.setdefault(record[group], []).append(record["id"])
        # In the model's insertion order, never by id: ids are random, draws must not be.
        candidates = [ids for ids in groups.values() if len(ids) >= 2]
        if not candidates:
            return
        ids = data.draw(st.sampled_from(candidates))
        chosen = data.draw(st.lists(st.sampled_from(ids), min_size=2, max_size=4, unique=True))
        service = self.book.contacts if kind == "contact" else self.book.customers
        merge_id = self._merge(kind, service, actor, chosen[0], chosen[1:], dry_run)
        if isinstance(merge_id, str):
            self.model_merge_ids.append(merge_id)

    @precondition(lambda self: self.model_merge_ids)
    @rule(actor=actors, data=st.data())
    def unmerge_recent(self, actor: ck.Actor, data: st.DataObject) -> None:
        """Undo one of the merges made so far (most often the latest)."""
        merge_id = data.draw(st.sampled_from(self.model_merge_ids[::-1]))
        kind = self.model.merges[merge_id]["kind"]
        if kind == "contact":
            self.unmerge_contacts(actor, merge_id)
        else:
            self.unmerge_customers(actor, merge_id)

    @rule(actor=actors, merge_id=merges)
    def unmerge_contacts(self, actor: ck.Actor, merge_id: str) -> None:
        outcome = self.both(
            lambda m: m.unmerge("contact", merge_id, actor),
            lambda: self.book.contacts.unmerge(merge_id, actor=actor),
        )
        if outcome is not None:
            assert contact_view(outcome[1]) == outcome[0]

    @rule(actor=actors, merge_id=merges)
    def unmerge_customers(self, actor: ck.Actor, merge_id: str) -> None:
        outcome = self.both(
            lambda m: m.unmerge("customer", merge_id, actor),
            lambda: self.book.customers.unmerge(merge_id, actor=actor),
        )
        if outcome is not None:
            assert customer_view(outcome[1]) == outcome[0]

    # rules: dismissals ------------------------------------------------------------------------

    @rule(actor=actors, left=contacts, right=contacts, undo=st.booleans())
    def dismiss_contacts(self, actor: ck.Actor, left: str, right: str, undo: bool) -> None:
        self._dismiss("contact", actor, left, right, undo)

    @rule(actor=actors, left=customers, right=customers, undo=st.booleans())
    def dismiss_customers(self, actor: ck.Actor, left: str, right: str, undo: bool) -> None:
        self._dismiss("customer", actor, left, right, undo)

    @rule(actor=actors, data=st.data(), kind=st.sampled_from(["contact", "customer"]))
    def dismiss_related(self, actor: ck.Actor, data: st.DataObject, kind: str) -> None:
        """A dismissal of two live records that are compared (the bundle rules mostly refuse)."""
        table = self.model.contacts if kind == "contact" else self.model.customers
        group = "customer_id" if kind == "contact" else "location_id"
        groups: dict[str, list[str]] = {}
        for record in table.values():
            if record["status"] == "ACTIVE":
                groups.setdefault(record[group], []).append(record["id"])
        candidates = [ids for ids in groups.values() if len(ids) >= 2]
        if candidates:
            ids = data.draw(st.sampled_from(candidates))
            left, right = data.draw(st.lists(st.sampled_from(ids), min_size=2, max_size=2))
            self._dismiss(kind, actor, left, right, undo=False)

    @precondition(lambda self: self.model.dismissals)
    @rule(actor=actors, data=st.data())
    def undismiss_one(self, actor: ck.Actor, data: st.DataObject) -> None:
        """Take back one of the dismissals made so far."""
        _, kind, low, high = data.draw(st.sampled_from(list(self.model.dismissals)))
        self._dismiss(kind, actor, high, low, undo=True)

    def _dismiss(self, kind: str, actor: ck.Actor, left: str, right: str, undo: bool) -> None:
        service = self.book.contacts if kind == "contact" else self.book.customers
        if undo:
            self.both(
                lambda m: m.undismiss(kind, left, right, actor),
                lambda: service.undismiss(left, right, actor=actor),
            )
            return
        outcome = self.both(
            lambda m: m.dismiss(kind, left, right, actor),
            lambda: service.dismiss(left, right, actor=actor),
        )
        if outcome is not None:
            got = outcome[1]
            assert {got.left_id, got.right_id} == {left, right}
            assert got.left_id < got.right_id

    # rules: the DMS source -------------------------------------------------------------------

    @rule(external_id=st.sampled_from(EXTERNAL_IDS), data=source_records)
    def source_changes_record(self, external_id: str, data: dict[str, str]) -> None:
        self.source.put(ck.SourceRecord(external_id=external_id, data=data))
        self.model.source[external_id] = dict(data)

    @rule(external_id=st.sampled_from(EXTERNAL_IDS))
    def source_drops_record(self, external_id: str) -> None:
        self.source.drop(external_id)
        self.model.source.pop(external_id, None)

    @rule(target=customers, actor=actors, external_id=st.sampled_from(EXTERNAL_IDS))
    def import_customer(self, actor: ck.Actor, external_id: str) -> Any:
        outcome = self.both(
            lambda m: [m.import_customer(external_id, actor)["id"]],
            lambda: [self.book.sources.import_customer("dms", external_id, actor=actor)],
        )
        return self._created(outcome)

    @rule(actor=actors, customer_id=customers)
    def refresh_customer(self, actor: ck.Actor, customer_id: str) -> None:
        outcome = self.both(
            lambda m: m.refresh(customer_id, actor),
            lambda: self.book.sources.refresh_customer(customer_id, actor=actor),
        )
        if outcome is not None:
            assert customer_view(outcome[1]) == outcome[0]

    @precondition(lambda self: any(c["source"] is not None for c in self.model.customers.values()))
    @rule(actor=actors, data=st.data())
    def refresh_imported(self, actor: ck.Actor, data: st.DataObject) -> None:
        """Refresh a customer that came from the source (most refreshes of others are refused)."""
        imported = [c["id"] for c in self.model.customers.values() if c["source"] is not None]
        self.refresh_customer(actor, data.draw(st.sampled_from(imported)))

    # the checks after every step -------------------------------------------------------------

    @invariant()
    def records_agree(self) -> None:
        m, book = self.model, self.book
        for customer_id, expected in m.customers.items():
            reader = READERS[expected["location_id"]]
            if expected["status"] == "ACTIVE":
                got = book.customers.get(customer_id, actor=reader)
                assert customer_view(got) == expected
                listed = book.contacts.list(customer_id, actor=reader)
                live = [k for k in m.contacts_of(customer_id) if k["status"] == "ACTIVE"]
                assert [contact_view(k) for k in listed] == live
            else:
                with pytest.raises(ck.NotFound):
                    book.customers.get(customer_id, actor=reader)
        for customer_id in m.purged_customers:
            with pytest.raises(ck.NotFound):
                book.customers.get(customer_id, actor=ADMIN)
        for location_id, reader in READERS.items():
            recent = book.customers.recent(actor=reader, within=timedelta(days=36_500))
            live = [
                c
                for c in m.customers.values()
                if c["status"] == "ACTIVE" and c["location_id"] == location_id
            ]
            live.sort(key=lambda c: (c["created_at"], c["id"]), reverse=True)
            assert [customer_view(c) for c in recent] == live

    @invariant()
    def contacts_resolve(self) -> None:
        m = self.model
        for contact_id in [*m.contacts, *m.purged_contacts]:
            try:
                expected = m.resolve(contact_id)
                customer = m.live_customer(expected["customer_id"])
                reader: ck.Actor | None = READERS[customer["location_id"]]
            except Refused:
                expected, reader = None, ADMIN
            assert reader is not None
            if expected is None:
                with pytest.raises(ck.NotFound):
                    self.book.contacts.get(contact_id, actor=reader)
            else:  # merged ids resolve to their live main (rule M3)
                got = self.book.contacts.get(contact_id, actor=reader)
                assert contact_view(got) == expected
                assert got.status is ck.RecordStatus.ACTIVE

    @invariant()
    def word_starts_agree(self) -> None:
        """SQL books: every search word row carries how its customer's words start."""
        assert word_starts_disagree(self.book) == []

    @invariant()
    def no_personal_data_in_logs(self) -> None:
        """T20: log records name ids and counts, never names, emails or phones."""
        for message in self.logs.messages:
            found = [value for value in PERSONAL_DATA if value in message]
            assert not found, f"the log repeats personal data {found}: {message!r}"
        self.logs.messages.clear()

    @invariant()
    def no_dangling_references(self) -> None:
        """A live contact belongs to a live customer; a merged record points at a known one."""
        m = self.model
        for contact in m.contacts.values():
            if contact["status"] == "ACTIVE":
                owner = m.customers.get(contact["customer_id"])
                message = f"live contact {contact['id']} belongs to a customer that is not live"
                assert owner is not None, message
                assert owner["status"] == "ACTIVE", message

    @invariant()
    def dismissals_agree(self) -> None:
        """The listed dismissals are the model's; matching never reports one in force."""
        m, book = self.model, self.book
        for location_id, reader in READERS.items():
            for kind, service in (("contact", book.contacts), ("customer", book.customers)):
                got = [
                    (d.location_id, d.kind, d.left_id, d.right_id, d.actor_id, d.at)
                    for d in service.dismissed(actor=reader)
                ]
                expected = sorted(
                    (*key, *value)
                    for key, value in m.dismissals.items()
                    if key[:2] == (location_id, kind)
                )
                assert got == expected
                if not expected:
                    continue
                report = service.find_duplicates(actor=reader)
                for _, _, low, high, _, _ in expected:
                    pair = {m.stands_for(kind, low), m.stands_for(kind, high)}
                    if None in pair or len(pair) < 2:
                        continue  # no longer applies
                    assert pair not in [{p.left_id, p.right_id} for p in report.pairs]
                    assert not any(pair <= set(g.ids) for g in report.groups)

    @invariant()
    def history_agrees(self) -> None:
        m, book = self.model, self.book
        for customer_id, customer in m.customers.items():
            reader = READERS[customer["location_id"]]
            got = [history_view(r) for r in book.history.for_customer(customer_id, actor=reader)]
            assert got == m.history.get(customer_id, [])
            seen = self.seen_history.get(customer_id, [])
            assert got[: len(seen)] == seen, "history is append-only"
            self.seen_history[customer_id] = got
            seqs = [r.seq for r in book.history.for_customer(customer_id, actor=reader)]
            assert seqs == sorted(set(seqs)), "history is in order of writing"
        for customer_id in m.purged_customers:
            with pytest.raises(ck.NotFound):
                book.history.for_customer(customer_id, actor=ADMIN)

    @invariant()
    def searches_agree(self) -> None:
        m, book = self.model, self.book
        for query in QUERIES:
            hits = book.customers.search(query, actor=STAFF)
            got = [(h.customer.id, h.field, h.score) for h in hits]
            assert got == m.search("loc-1", query), f"search {query!r}"
            for hit in hits:
                assert customer_view(hit.customer) == m.customers[hit.customer.id]
        far = [(h.customer.id, h.field, h.score) for h in book.customers.search("john", actor=FAR)]
        assert far == m.search("loc-2", "john")
        recent = book.customers.recent(actor=STAFF, within=timedelta(days=36_500), text=RECENT_TEXT)
        wanted = query_words(RECENT_TEXT)
        expected = [
            c
            for c in m.customers.values()
            if c["status"] == "ACTIVE"
            and c["location_id"] == "loc-1"
            and all(
                w
                in " ".join(
                    words(f"{c['company_name']} {c['customer_number']} {c['city']} {c['state']}")
                )
                for w in wanted
            )
        ]
        expected.sort(key=lambda c: (c["created_at"], c["id"]), reverse=True)
        assert [c.id for c in recent] == [c["id"] for c in expected]
        for hit in book.sources.search("dms", SOURCE_QUERY, actor=STAFF):
            holder = m.source_holder(hit.record.external_id)
            expected_id = holder["id"] if holder and holder["location_id"] == "loc-1" else None
            assert hit.customer_id == expected_id, "rule D3: the hit says whether it is a customer"


def _backend(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params.get("make_book", "memory")) if callspec else "memory"


def test_book_agrees_with_model(
    make_book: Callable[[FakeClock], ck.Book], request: pytest.FixtureRequest
) -> None:
    """T2: after every step of random programs the book equals the plain-dict model."""

    class Machine(BookMachine):
        pass

    Machine.make_book = staticmethod(make_book)  # type: ignore[assignment]
    examples = EXAMPLES.get(_backend(request))
    overrides: dict[str, Any] = {"stateful_step_count": STEPS}
    if examples is not None:
        overrides["max_examples"] = min(examples, settings.default.max_examples)
    run_state_machine_as_test(Machine, settings=settings(**overrides))


# -- regression tests of the defects this machine found (all fixed) ------------------------------


def _two_contacts(book: ck.Book) -> tuple[ck.Customer, ck.Contact, ck.Contact]:
    customer = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
    )
    a = book.contacts.add(
        customer.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN
    )
    b = book.contacts.add(customer.id, ck.NewContact(first_name="Ann", last_name="Li"), actor=ADMIN)
    return customer, a, b


def test_regression_dry_run_of_done_merge(make_book: Callable[[FakeClock], ck.Book]) -> None:
    """SPEC §2: a dry run returns merge_id=None, also when the same merge was done already."""
    book = make_book(FakeClock())
    _, a, b = _two_contacts(book)
    book.contacts.merge(a.id, [b.id], actor=ADMIN)
    assert book.contacts.merge(a.id, [b.id], actor=ADMIN, dry_run=True).merge_id is None


def test_regression_unmerge_after_number_fill(make_book: Callable[[FakeClock], ck.Book]) -> None:
    """Rule M4: a customer merge that filled the main's blank number can be undone."""
    book = make_book(FakeClock())
    fleet = book.customers.create(
        ck.NewCustomer(company_name="Acme Fleet", kind=ck.CustomerKind.FLEET), actor=ADMIN
    )
    local = book.customers.create(
        ck.NewCustomer(company_name="Acme", customer_number="C-9"), actor=ADMIN
    )
    result = book.customers.merge(fleet.id, [local.id], actor=ADMIN)
    assert result.main.customer_number == "C-9"
    assert result.merge_id is not None
    book.customers.unmerge(result.merge_id, actor=ADMIN)
    assert book.customers.get(fleet.id, actor=ADMIN).customer_number == ""
    assert book.customers.get(local.id, actor=ADMIN).customer_number == "C-9"


def test_regression_contact_unmerge_after_customer_merge(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """Rule M4 + no dangling references: every contact an unmerge restores can be read again."""
    book = make_book(FakeClock())
    old, a, b = _two_contacts(book)
    contact_merge = book.contacts.merge(a.id, [b.id], actor=ADMIN)
    new = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires Inc", customer_number="C-2"), actor=ADMIN
    )
    book.customers.merge(new.id, [old.id], actor=ADMIN)  # a moves to `new`; b stays on `old`
    assert contact_merge.merge_id is not None
    book.contacts.unmerge(contact_merge.merge_id, actor=ADMIN)
    restored = book.contacts.get(b.id, actor=ADMIN)  # it follows its main to `new`
    assert restored.customer_id == new.id


def test_regression_undismiss_after_a_customer_merge_split_the_pair(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """A dismissal can always be taken back, even when a customer merge moved one contact of
    the pair to another customer and left its merged partner behind."""
    book = make_book(FakeClock())
    old, a, b = _two_contacts(book)
    c = book.contacts.add(old.id, ck.NewContact(first_name="Bo", last_name="Ray"), actor=ADMIN)
    book.contacts.dismiss(a.id, c.id, actor=ADMIN)
    book.contacts.merge(b.id, [a.id], actor=ADMIN)  # a: a tombstone that stays on `old`
    new = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires Inc", customer_number="C-2"), actor=ADMIN
    )
    book.customers.merge(new.id, [old.id], actor=ADMIN)  # c moves to `new`
    book.contacts.undismiss(c.id, a.id, actor=ADMIN)
    assert book.contacts.dismissed(actor=ADMIN) == []
