"""Rules P1, P2 (T14): the default policy, cell by cell."""

from __future__ import annotations

import pytest

import customerkit as ck
from customerkit.policy import DEFAULT_MINIMUM_ROLE, FLEET_USER_ACTIONS, Action, RolePolicy, Target

POLICY = RolePolicy()
STAFF_ROLES = [r for r in ck.Role if r is not ck.Role.FLEET_USER]
OWN = Target(location_id="loc-1", customer_id="c1", customer_kind=ck.CustomerKind.LOCAL)
OTHER = Target(location_id="loc-2", customer_id="c2", customer_kind=ck.CustomerKind.LOCAL)


def allowed(actor: ck.Actor, action: Action, target: Target) -> bool:
    try:
        POLICY.authorize(actor, action, target)
    except ck.PermissionDenied:
        return False
    return True


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", STAFF_ROLES)
def test_p1_every_role_action_cell_on_own_location(role: ck.Role, action: Action) -> None:
    actor = ck.Actor(user_id="u", role=role, location_id="loc-1")
    assert allowed(actor, action, OWN) is (role >= DEFAULT_MINIMUM_ROLE[action])


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(ck.Role))
def test_p2_other_location_always_denied(role: ck.Role, action: Action) -> None:
    actor = ck.Actor(user_id="u", role=role, location_id="loc-1", fleet_customer_id="c2")
    assert allowed(actor, action, OTHER) is False


@pytest.mark.parametrize("action", list(Action))
def test_p1_fleet_user_only_reads_and_manages_own_fleet_contacts(action: Action) -> None:
    fleet = Target(location_id="loc-1", customer_id="f1", customer_kind=ck.CustomerKind.FLEET)
    own = ck.Actor(
        user_id="f", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id="f1"
    )
    stranger = ck.Actor(
        user_id="g", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id="f9"
    )
    assert allowed(own, action, fleet) is (action in FLEET_USER_ACTIONS)
    assert allowed(stranger, action, fleet) is False


def test_k1_fleet_managed_contacts_changed_only_by_the_fleet() -> None:
    contact = Target(location_id="loc-1", customer_id="f1", contact_managed_by=ck.ManagedBy.FLEET)
    provider = Target(
        location_id="loc-1", customer_id="f1", contact_managed_by=ck.ManagedBy.PROVIDER
    )
    admin = ck.Actor(user_id="a", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    fleet = ck.Actor(
        user_id="f", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id="f1"
    )
    assert allowed(admin, Action.CONTACT_WRITE, contact) is False
    assert allowed(fleet, Action.CONTACT_WRITE, contact) is True
    assert allowed(fleet, Action.CONTACT_WRITE, provider) is False
    assert allowed(admin, Action.CONTACT_READ, contact) is True
    assert allowed(admin, Action.CONTACT_WRITE, provider) is True


def test_k1_bulk_delete_of_fleet_managed_contacts_is_the_fleets() -> None:
    """Rule K1: ``delete_many`` refuses provider staff a fleet-managed contact, like ``delete``."""
    contact = Target(location_id="loc-1", customer_id="f1", contact_managed_by=ck.ManagedBy.FLEET)
    provider = Target(
        location_id="loc-1", customer_id="f1", contact_managed_by=ck.ManagedBy.PROVIDER
    )
    admin = ck.Actor(user_id="a", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    assert allowed(admin, Action.CONTACT_DELETE_MANY, contact) is False
    assert allowed(admin, Action.CONTACT_DELETE_MANY, provider) is True


def test_p1_unknown_action_or_role_denied() -> None:
    partial = RolePolicy(minimum_role={Action.CUSTOMER_READ: ck.Role.STAFF})
    admin = ck.Actor(user_id="a", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    with pytest.raises(ck.PermissionDenied):
        partial.authorize(admin, Action.CUSTOMER_CREATE, OWN)
    odd = ck.Actor(user_id="a", role="ROOT", location_id="loc-1")  # type: ignore[arg-type]
    with pytest.raises(ck.PermissionDenied):
        POLICY.authorize(odd, Action.CUSTOMER_READ, OWN)


def test_t20_denial_log_has_no_personal_data(caplog: pytest.LogCaptureFixture) -> None:
    actor = ck.Actor(user_id="u-17", role=ck.Role.STAFF, location_id="loc-1")
    with caplog.at_level("INFO", logger="customerkit"), pytest.raises(ck.PermissionDenied):
        POLICY.authorize(actor, Action.CUSTOMER_DELETE, OWN)
    assert "u-17" in caplog.text
    assert "customer.delete" in caplog.text
