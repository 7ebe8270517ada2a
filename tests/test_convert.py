"""cattrs conversion: model records round-trip through plain data and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import customerkit as ck
from customerkit.convert import from_dict, to_dict

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def test_customer_round_trips_through_json_without_password_hash() -> None:
    customer = ck.Customer(
        id="c1",
        location_id="loc-1",
        kind=ck.CustomerKind.FLEET,
        company_name="Acme",
        username="acme",
        password_hash="$argon2id$secret",
        assigned_staff=("u1", "u2"),
        source=ck.SourceLink(
            source="dms", external_id="P-1", last_synced_at=NOW, fields=("company_name",)
        ),
        extra={"vat_id": "DE1"},
        created_at=NOW,
        updated_at=NOW,
    )
    data = json.loads(json.dumps(to_dict(customer)))
    assert "password_hash" not in data
    assert data["kind"] == "FLEET"
    assert data["created_at"] == "2026-01-15T09:00:00+00:00"
    back = from_dict(data, ck.Customer)
    assert back.password_hash is None
    assert (back.kind, back.assigned_staff, back.source, back.extra) == (
        customer.kind,
        customer.assigned_staff,
        customer.source,
        customer.extra,
    )


def test_contact_and_change_record_round_trip() -> None:
    contact = ck.Contact(
        id="k1",
        customer_id="c1",
        first_name="Ann",
        last_name="Lee",
        managed_by=ck.ManagedBy.FLEET,
        last_communicated_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        status=ck.RecordStatus.MERGED,
        merged_into="k0",
    )
    assert from_dict(json.loads(json.dumps(to_dict(contact))), ck.Contact) == contact
    record = ck.ChangeRecord(
        entity="customer",
        entity_id="c1",
        customer_id="c1",
        action="update",
        actor_id="u1",
        at=NOW,
        changes={"city": ("Denver", "Aurora")},
        seq=3,
    )
    assert from_dict(json.loads(json.dumps(to_dict(record))), ck.ChangeRecord) == record
