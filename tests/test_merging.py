"""The merge rules on plain records, with no store (rules M3, M4; the book runs them in the
contract suite's ``DuplicatesContract``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import customerkit as ck
from customerkit.merging import (
    CONTACT_MERGE,
    CUSTOMER_MERGE,
    check_request,
    follow_merges,
    live_other,
    merge_record_id,
    plan,
)
from customerkit.testing import strategies

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def contact(contact_id: str, **values: object) -> ck.Contact:
    fields: dict[str, object] = {"first_name": "Ann", "last_name": "Lee"} | values
    return ck.Contact(
        id=contact_id,
        customer_id=str(fields.pop("customer_id", "c-1")),
        created_at=T0,
        updated_at=T0,
        **fields,  # type: ignore[arg-type]
    )


def customer(customer_id: str, **values: object) -> ck.Customer:
    fields: dict[str, object] = {"company_name": "Johnson Tires", "updated_at": T0} | values
    return ck.Customer(
        id=customer_id,
        location_id="loc-1",
        kind=ck.CustomerKind.LOCAL,
        created_at=T0,
        **fields,  # type: ignore[arg-type]
    )


def test_m3_the_main_keeps_its_values_and_fills_its_blanks() -> None:
    main = contact("a", phone="", title="Owner")
    other = contact("b", phone="303 555 0142", title="Buyer")
    merged, provenance = plan(CONTACT_MERGE, main, [other], T0 + timedelta(days=1))
    assert (merged.phone, merged.title) == ("303 555 0142", "Owner")
    assert (provenance["phone"], provenance["title"]) == ("b", "a")
    assert (merged.version, merged.updated_at) == (2, T0 + timedelta(days=1))
    assert main.phone == ""  # records are values: nothing is changed in place


def test_m4_most_recent_survivorship_takes_the_newest_and_the_main_wins_ties() -> None:
    main = customer("a", phone="303 555 0100")
    newer = customer("b", phone="303 555 0199", updated_at=T0 + timedelta(hours=1))
    tied = customer("c", phone="303 555 0111")
    rules = {"phone": ck.Survivorship.MOST_RECENT}
    assert plan(CUSTOMER_MERGE, main, [newer], T0, rules)[0].phone == "303 555 0199"
    assert plan(CUSTOMER_MERGE, main, [tied], T0, rules)[0].phone == "303 555 0100"


def test_m3_values_that_do_not_survive_become_alternates_once_each() -> None:
    main = contact("a", email="ann@example.com", phone="303 555 0142")
    same = contact("b", email="ANN@example.com", phone="(303) 555-0142")
    other = contact("c", email="ann.lee@example.org", phone="303 555 0199")
    merged, provenance = plan(CONTACT_MERGE, main, [same, other], T0)
    assert merged.alternate_emails == ("ann.lee@example.org",)
    assert merged.alternate_phones == ("303 555 0199",)
    assert provenance["alternate_emails"] == "c"


def test_d4_fields_from_a_source_are_not_filled_by_a_merge() -> None:
    link = ck.SourceLink(source="dms", external_id="P-1", fields=("city",), last_synced_at=T0)
    main = customer("a", source=link)
    other = customer("b", city="Denver", state="CO")
    merged, _ = plan(CUSTOMER_MERGE, main, [other], T0)
    assert (merged.city, merged.state) == ("", "CO")


def test_m3_the_latest_communication_wins() -> None:
    main = contact("a", last_communicated_at=T0)
    other = contact("b", last_communicated_at=T0 + timedelta(days=3))
    merged, provenance = plan(CONTACT_MERGE, main, [other], T0)
    assert merged.last_communicated_at == T0 + timedelta(days=3)
    assert provenance["last_communicated_at"] == "b"


@given(main=strategies.contact_values(), others=st.lists(strategies.contact_values(), max_size=4))
def test_m3_a_merge_loses_no_email_or_phone(
    main: dict[str, str], others: list[dict[str, str]]
) -> None:
    """Every email and phone of the records is the main's or one of its alternates after."""
    records = [contact("m", **main), *(contact(f"o{i}", **o) for i, o in enumerate(others))]
    merged, _ = plan(CONTACT_MERGE, records[0], records[1:], T0)
    for field in ("email", "phone"):
        kept = {getattr(merged, field), *getattr(merged, f"alternate_{field}s")}
        for record in records:
            value = getattr(record, field)
            assert not value or value in kept or any(_same(field, value, k) for k in kept if k), (
                field,
                value,
                kept,
            )


def _same(field: str, left: str, right: str) -> bool:
    if field == "email":
        return left.casefold() == right.casefold()
    return left.replace(" ", "")[-7:] == right.replace(" ", "")[-7:]


def test_m4_refusals_name_the_field() -> None:
    with pytest.raises(ck.MergeError, match="itself") as caught:
        check_request("a", ["a"], 10)
    assert caught.value.field == "other_ids"
    with pytest.raises(ck.MergeError, match="at least one"):
        check_request("a", [], 10)
    with pytest.raises(ck.MergeError, match="at most 2"):
        check_request("a", ["b", "c"], 2)
    with pytest.raises(ck.ValidationError):
        check_request("a", "b", 10)
    assert check_request("a", ["b", "b", "c"], 10) == ["b", "c"]


def test_m4_customers_with_a_username_or_a_source_are_only_ever_mains() -> None:
    main = customer("a")
    assert CUSTOMER_MERGE.refuse(main, [customer("b", username="bob")]) is not None
    link = ck.SourceLink(source="dms", external_id="P-1", fields=(), last_synced_at=T0)
    assert CUSTOMER_MERGE.refuse(main, [customer("b", source=link)]) is not None
    assert CUSTOMER_MERGE.refuse(customer("b", username="bob"), [main]) is None


def test_m4_another_customers_contact_is_refused_before_anything_is_said_about_it() -> None:
    main = contact("a")
    elsewhere = contact("b", customer_id="c-2", status=ck.RecordStatus.MERGED, merged_into="x")
    with pytest.raises(ck.MergeError, match="another customer"):
        live_other({"b": elsewhere}, CONTACT_MERGE, main, "b")
    with pytest.raises(ck.NotFound):
        live_other({}, CONTACT_MERGE, main, "b")


def test_m3_a_chain_of_merges_ends_at_the_live_record() -> None:
    live = contact("c")
    middle = attrs.evolve(contact("b"), status=ck.RecordStatus.MERGED, merged_into="c")
    first = attrs.evolve(contact("a"), status=ck.RecordStatus.MERGED, merged_into="b")
    records = {r.id: r for r in (first, middle, live)}
    assert follow_merges(first, records.get) == live
    assert follow_merges(live, records.get) == live
    assert follow_merges(None, records.get) is None


def test_a_damaged_chain_stops_instead_of_looping() -> None:
    a = attrs.evolve(contact("a"), status=ck.RecordStatus.MERGED, merged_into="b")
    b = attrs.evolve(contact("b"), status=ck.RecordStatus.MERGED, merged_into="a")
    records = {"a": a, "b": b}
    assert follow_merges(a, records.get) in (a, b)
    assert follow_merges(attrs.evolve(a, merged_into="gone"), records.get) is None


def test_a_merge_id_depends_on_the_records_not_their_order() -> None:
    assert merge_record_id("contact", "a", ["b", "c"], 1) == merge_record_id(
        "contact", "a", ["c", "b"], 1
    )
    assert merge_record_id("contact", "a", ["b"], 1) != merge_record_id("contact", "a", ["b"], 2)
    assert merge_record_id("contact", "a", ["b"], 1) != merge_record_id("customer", "a", ["b"], 1)
