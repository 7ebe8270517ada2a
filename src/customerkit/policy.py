"""Who may do what (rules P1, P2): one replaceable policy object, deny by default.

Every service call that reads or changes customer data asks the book's policy first. Replace it
with any object that has an ``authorize`` method (the [`Policy`][customerkit.Policy] protocol)
to fit a host system's own permissions.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Protocol

import attrs

from customerkit.errors import PermissionDenied
from customerkit.model import Actor, CustomerKind, ManagedBy, Role

log = logging.getLogger("customerkit.policy")


class Action(enum.Enum):
    """Operations the policy decides on."""

    CUSTOMER_READ = "customer.read"
    CUSTOMER_CREATE = "customer.create"
    CUSTOMER_UPDATE = "customer.update"
    CUSTOMER_NUMBER_CHANGE = "customer.number_change"
    CUSTOMER_DELETE = "customer.delete"
    CUSTOMER_EXPORT = "customer.export"
    CUSTOMER_MERGE = "customer.merge"
    STAFF_ASSIGN = "customer.assign_staff"
    CONTACT_READ = "contact.read"
    CONTACT_WRITE = "contact.write"
    CONTACT_MERGE = "contact.merge"
    CONTACT_DELETE_MANY = "contact.delete_many"
    HISTORY_READ = "history.read"
    SOURCE_USE = "source.use"
    SOURCE_ENABLE = "source.enable"
    USER_ADMIN = "user.admin"
    REFERENCE_ADMIN = "reference.admin"


@attrs.frozen(kw_only=True)
class Target:
    """What an action is about, as far as the policy needs to know.

    ``location_id`` is ``None`` for book-wide resources (reference data);
    ``contact_managed_by`` is set when the action changes an existing contact.
    """

    location_id: str | None = None
    customer_id: str | None = None
    customer_kind: CustomerKind | None = None
    contact_managed_by: ManagedBy | None = None


class Policy(Protocol):
    """Decides whether an actor may perform an action on a target."""

    def authorize(self, actor: Actor, action: Action, target: Target) -> None:
        """Return if allowed; raise [`PermissionDenied`][customerkit.PermissionDenied] otherwise."""


#: The lowest role allowed for each action (rule P1). An action absent here is denied.
DEFAULT_MINIMUM_ROLE: Mapping[Action, Role] = {
    Action.CUSTOMER_READ: Role.STAFF,
    Action.CUSTOMER_CREATE: Role.STAFF,
    Action.CUSTOMER_UPDATE: Role.STAFF,
    Action.CUSTOMER_EXPORT: Role.STAFF,
    Action.STAFF_ASSIGN: Role.STAFF,
    Action.CONTACT_READ: Role.STAFF,
    Action.CONTACT_WRITE: Role.STAFF,
    Action.HISTORY_READ: Role.STAFF,
    Action.SOURCE_USE: Role.STAFF,
    Action.CUSTOMER_MERGE: Role.SERVICE_ADVISOR,
    Action.CONTACT_MERGE: Role.SERVICE_ADVISOR,
    Action.CONTACT_DELETE_MANY: Role.SERVICE_ADVISOR,
    Action.CUSTOMER_DELETE: Role.SERVICE_MANAGER,
    Action.CUSTOMER_NUMBER_CHANGE: Role.SERVICE_MANAGER,
    Action.USER_ADMIN: Role.DEALER_ADMIN,
    Action.REFERENCE_ADMIN: Role.DEALER_ADMIN,
    Action.SOURCE_ENABLE: Role.DEALER_ADMIN,
}

#: Actions that change or delete an existing contact: refused to provider staff on a contact
#: its fleet manages (rule K1), whether singly or in bulk.
CONTACT_CHANGES: frozenset[Action] = frozenset({Action.CONTACT_WRITE, Action.CONTACT_DELETE_MANY})

#: What a fleet user may do, and only on its own fleet customer.
FLEET_USER_ACTIONS: frozenset[Action] = frozenset(
    {Action.CUSTOMER_READ, Action.CONTACT_READ, Action.CONTACT_WRITE}
)


@attrs.frozen
class RolePolicy:  # rules K1, P2
    """The default policy: a minimum role per action, tenancy by location and fleet.

    Rules it applies, in order:

    * an unknown action or role is denied;
    * a fleet user acts only on its own fleet customer, may only read it and its contacts, and
      change only contacts its fleet manages;
    * staff act only on their own location's customers and need the action's minimum role;
    * a contact managed by a fleet (one its users added) is changed or deleted, singly or in
      bulk, only by that fleet's users.
    """

    minimum_role: Mapping[Action, Role] = DEFAULT_MINIMUM_ROLE

    def authorize(self, actor: Actor, action: Action, target: Target) -> None:
        """Raise [`PermissionDenied`][customerkit.PermissionDenied] unless the actor may act."""
        reason = self._deny_reason(actor, action, target)
        if reason is not None:
            log.info("denied %s to user %s: %s", action.value, actor.user_id, reason)
            raise PermissionDenied(f"{action.value} is not allowed: {reason}")

    def _deny_reason(self, actor: Actor, action: Action, target: Target) -> str | None:
        role = actor.role
        if not isinstance(role, Role) or action not in self.minimum_role:
            return "unknown role or action"
        if target.location_id is not None and target.location_id != actor.location_id:
            return "the record belongs to another location"
        if role is Role.FLEET_USER:
            return self._fleet_deny_reason(actor, action, target)
        if target.contact_managed_by is ManagedBy.FLEET and action in CONTACT_CHANGES:
            return "the contact is managed by its fleet; only the fleet's users may change it"
        if role < self.minimum_role[action]:
            return f"needs role {self.minimum_role[action].name} or above"
        return None

    @staticmethod
    def _fleet_deny_reason(actor: Actor, action: Action, target: Target) -> str | None:
        if action not in FLEET_USER_ACTIONS:
            return "fleet users may only read their fleet and manage its contacts"
        if actor.fleet_customer_id is None or target.customer_id != actor.fleet_customer_id:
            return "fleet users act only on their own fleet"
        if action is Action.CONTACT_WRITE and target.contact_managed_by is ManagedBy.PROVIDER:
            return "the contact is managed by the service provider"
        return None
