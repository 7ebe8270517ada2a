"""Duplicate matching: signals and reasons (rule M1), groups and mains (rule M2), blocking
(rule M5), incremental matching (rule M6)."""

from __future__ import annotations

import html
import itertools
import math
import random
import re
from datetime import UTC, datetime
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customerkit.identity import email_key as identity_email_key
from customerkit.identity import phone_key
from customerkit.identity.phones import _SIMPLE_PHONE, _simple_digits
from customerkit.matching import (
    DuplicatePair,
    DuplicateReport,
    MatchConfig,
    MatchIndex,
    find_duplicates,
    find_similar,
)
from customerkit.matching.blocking import column_keys, record_keys, rules_for
from customerkit.matching.column import Column, combine
from customerkit.matching.normalize import (
    address_key,
    company_key,
    email_key,
    given_name_key,
    normalize_columns,
    phone_number_key,
    postal_key,
)
from customerkit.matching.prepare import _id_rank
from customerkit.matching.score import (
    Model,
    build_features,
    compare,
    comparisons_of,
    starting_parameters,
)
from customerkit.matching.table import read_records
from customerkit.model import Contact, NewContact, NewCustomer

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def contact(**fields: Any) -> dict[str, Any]:
    return {"first_name": "", "last_name": "", "email": "", "phone": "", **fields}


def only_pair(report: DuplicateReport) -> DuplicatePair:
    assert len(report.pairs) == 1, report.pairs
    return report.pairs[0]


# --- rule M1: signals and reasons -----------------------------------------------------------------


def test_m1_same_email_in_another_case_is_a_duplicate() -> None:
    report = find_duplicates(
        [
            contact(first_name="Ann", last_name="Lee", email="Ann.Lee@Example.COM"),
            contact(first_name="Ann", last_name="Lee", email="ann.lee@example.com"),
        ],
        kind="contact",
    )
    pair = only_pair(report)
    assert (pair.left_id, pair.right_id) == ("0", "1")
    assert "same email" in pair.reasons
    assert pair.score > 0.99


def test_m1_reformatted_phone_is_the_same_phone() -> None:
    report = find_duplicates(
        [
            contact(first_name="Ann", last_name="Lee", phone="(303) 555-0142"),
            contact(first_name="Ann", last_name="Lee", phone="+1 303.555.0142 x12"),
        ],
        kind="contact",
    )
    assert "same phone" in only_pair(report).reasons


def test_m1_nickname_is_a_name_match() -> None:
    report = find_duplicates(
        [
            contact(first_name="Bob", last_name="Miller", phone="303 555 0142"),
            contact(first_name="Robert", last_name="Miller", phone="3035550142"),
        ],
        kind="contact",
    )
    assert only_pair(report).reasons == ("same phone", "nickname bob/robert", "same last name")


def test_m1_swapped_names_match() -> None:
    report = find_duplicates(
        [
            contact(first_name="Miller", last_name="Robert", email="rm@x.com"),
            contact(first_name="Robert", last_name="Miller", email="RM@x.com"),
        ],
        kind="contact",
    )
    assert "names swapped" in only_pair(report).reasons


def test_m1_typo_in_name_gives_similarity_reason() -> None:
    report = find_duplicates(
        [
            contact(first_name="Jonathan", last_name="Smithers", email="js@x.com"),
            contact(first_name="Johnathan", last_name="Smithers", email="js@x.com"),
        ],
        kind="contact",
    )
    reasons = only_pair(report).reasons
    assert reasons[0] == "same email"
    assert reasons[1].startswith("names similar 0.9")


def test_m1_same_common_name_different_people_do_not_match() -> None:
    people = [
        contact(
            first_name="John", last_name="Smith", email=f"john{i}@x.com", phone=f"30355501{i:02}"
        )
        for i in range(5)
    ]
    report = find_duplicates(people, kind="contact")
    assert report.pairs == ()
    assert report.compared == 10


def test_m1_same_surname_different_first_names_do_not_match() -> None:
    report = find_duplicates(
        [
            contact(first_name="Mary", last_name="Garcia", email="mg@x.com"),
            contact(first_name="Luis", last_name="Garcia", email="lg@x.com"),
            contact(first_name="Ana", last_name="Garcia"),
        ],
        kind="contact",
    )
    assert report.pairs == ()


def test_m1_same_name_alone_matches_within_one_customer_only() -> None:
    """A full name two contacts of one customer share is a signal; among many people it is not."""
    two = [
        contact(id="a", customer_id="c1", first_name="Dana", last_name="Scully"),
        contact(id="b", customer_id="c1", first_name="Dana", last_name="Scully"),
    ]
    assert only_pair(find_duplicates(two, kind="contact", scope="customer_id")).reasons == (
        "same name",
    )
    many = [
        contact(id=f"k{i}", customer_id=f"c{i}", first_name="Dana", last_name="Scully")
        for i in range(6)
    ]
    assert find_duplicates(many, kind="contact").pairs == ()


def test_m1_customer_signals() -> None:
    base = {
        "company_name": "Johnson Tires Inc.",
        "customer_number": "C-1001",
        "address_line1": "12 North Main Street",
        "city": "Denver",
        "state": "CO",
        "postal_code": "80202",
    }
    report = find_duplicates(
        [
            base,
            {
                **base,
                "company_name": "Johnson Tires, LLC",
                "customer_number": "c1001",
                "address_line1": "12 N Main St",
                "postal_code": "80202-1234",
            },
        ],
        kind="customer",
    )
    assert only_pair(report).reasons == (
        "same customer number",
        "same company name",
        "same address",
        "same city",
        "same state",
        "same postal code",
    )


def test_m1_customer_suffix_and_typo_without_number() -> None:
    report = find_duplicates(
        [
            {
                "company_name": "Hansen Equipment LLC",
                "address_line1": "10854 Buffalo Street",
                "postal_code": "44197",
                "city": "Cleveland",
                "customer_number": "C-1",
            },
            {
                "company_name": "Hansen Equipmnt",
                "address_line1": "10854 Buffalo St",
                "postal_code": "44197",
                "city": "Cleveland",
                "customer_number": "C-2",
            },
        ],
        kind="customer",
    )
    reasons = only_pair(report).reasons
    assert reasons[0].startswith("company names similar 0.9")
    assert {"same address", "same postal code"} <= set(reasons)


def test_m1_same_company_name_in_other_towns_is_not_a_duplicate() -> None:
    report = find_duplicates(
        [
            {
                "company_name": "Johnson Tires",
                "address_line1": "1 Main St",
                "city": "Denver",
                "postal_code": "80202",
                "phone": "303-555-0100",
            },
            {
                "company_name": "Johnson Tires",
                "address_line1": "9 Elm Ave",
                "city": "Boulder",
                "postal_code": "80301",
                "phone": "720-555-0199",
            },
        ],
        kind="customer",
    )
    assert report.pairs == ()


def test_m1_normalisation_examples() -> None:
    assert given_name_key("Bob") == given_name_key("ROBERT") == "robert"
    assert company_key("The Johnson & Sons Tire Co., L.L.C.") == company_key("Johnson Sons Tire")
    assert address_key("12 North Main Street") == address_key("12 n. main st")
    assert postal_key("80202-1234") == postal_key("80202")
    assert email_key("Bob@Exämple.COM") == "bob@xn--exmple-cua.com"
    assert phone_number_key("+1 (303) 555-0142 ext. 9") == "+13035550142"


_PHONE_FORMATS = st.sampled_from(
    [
        "{a}{b}{c}",
        "({a}) {b}-{c}",
        "{a}.{b}.{c}",
        "1-{a}-{b}-{c}",
        "+1 {a} {b} {c}",
        "{a} {b} {c} x{e}",
        "+1 ({a}) {b}-{c} ext. {e}",
        "{b}-{c}",
        "+44 20 {b} {c}",
        "0{a} {b}",
    ]
)


@given(
    _PHONE_FORMATS,
    st.from_regex(r"[0-9]{3}", fullmatch=True),
    st.from_regex(r"[0-9]{3}", fullmatch=True),
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.from_regex(r"[0-9]{1,4}", fullmatch=True),
)
def test_m1_phone_fast_path_agrees_with_identity(
    template: str, a: str, b: str, c: str, e: str
) -> None:
    value = template.format(a=a, b=b, c=c, e=e)
    try:
        expected = phone_key(value).number
    except ValueError:
        return  # identity refuses it; the matcher keeps the digits
    assert phone_number_key(value) == expected


@given(st.from_regex(r"[A-Za-z0-9._%+\-]{1,12}@[A-Za-z0-9\-]{1,10}\.[A-Za-z]{2,4}", fullmatch=True))
def test_m1_email_fast_path_agrees_with_identity(value: str) -> None:
    try:
        expected = identity_email_key(value)
    except ValueError:
        expected = value.lower()  # refused addresses are folded
    assert email_key(value) == expected


# --- inputs ------------------------------------------------------------------------------------


def test_attrs_records_and_their_ids() -> None:
    made = [
        Contact(
            id="k2",
            customer_id="c",
            first_name="Ann",
            last_name="Lee",
            email="a@x.com",
            created_at=NOW,
            updated_at=NOW,
        ),
        Contact(
            id="k1",
            customer_id="c",
            first_name="Anne",
            last_name="Lee",
            email="A@x.com",
            created_at=NOW,
            updated_at=NOW,
        ),
    ]
    pair = only_pair(find_duplicates(made, kind="contact"))
    assert (pair.left_id, pair.right_id) == ("k1", "k2")
    drafts = [NewContact(first_name="Ann", last_name="Lee", email="a@x.com")] * 2
    assert only_pair(find_duplicates(drafts, kind="contact")).left_id == "0"
    customers = [NewCustomer(company_name="Acme Inc", customer_number="7", postal_code="1")] * 2
    assert "same customer number" in only_pair(find_duplicates(customers, kind="customer")).reasons


def test_dataframe_input_with_missing_values() -> None:
    import pandas as pd  # the test extras install it: a missing pandas fails here, not skips

    frame = pd.DataFrame(
        {
            "id": ["x", "y", "z"],
            "first_name": ["Ann", "Ann", None],
            "last_name": ["Lee", "Lee", float("nan")],
            "email": ["ann@x.com", pd.NA, "ann@x.com"],
            "phone": [None, "303 555 0142", "3035550142"],
        }
    )
    report = find_duplicates(frame, kind="contact")
    pairs = {p.left_id + p.right_id: p.reasons for p in report.pairs}
    assert pairs == {"xz": ("same email",), "yz": ("same phone",), "xy": ("same name",)}
    table = report.to_pandas()
    assert list(table.columns[:6]) == [
        "left_id",
        "right_id",
        "score",
        "reasons",
        "match_weight",
        "evidence",
    ]
    assert table.loc[table["right_id"] == "z", "evidence"].str.contains("email same").any()
    assert "left_first_name" in table.columns
    assert "right_email" in table.columns
    assert table.loc[table["right_id"] == "z", "right_first_name"].isna().all()


def test_duplicate_ids_and_unknown_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate ids"):
        find_duplicates([{"id": 1}, {"id": "1"}], kind="contact")
    with pytest.raises(ValueError, match="kind"):
        find_duplicates([], kind="person")  # type: ignore[arg-type]


def test_empty_input() -> None:
    report = find_duplicates([], kind="customer")
    assert (report.pairs, report.groups, report.compared) == ((), (), 0)
    assert report.to_records() == []


def test_column_keeps_each_distinct_value_once() -> None:
    column = Column.of(["b", "", "a", "b"])
    assert (column.values, column.codes.tolist()) == (["b", "a"], [0, -1, 1, 0])
    assert list(column) == column.tolist() == ["b", "", "a", "b"]
    assert (column[2], column[1:3], len(column)) == ("a", ["", "a"], 4)
    assert column.map(str.upper).tolist() == ["B", "", "A", "B"]
    merged = column.map(lambda value: "x")
    assert (merged.values, merged.codes.tolist()) == (["x"], [0, -1, 0, 0])
    assert column.flags(lambda value: value == "a").tolist() == [0, 0, 1, 0]
    digits = Column.of(["1", "2", "3", "1"])
    assert combine(lambda a, b: a + b, column, digits).tolist() == ["b1", "2", "a3", "b1"]


def test_values_read_once_per_distinct_value_keep_their_own_text() -> None:
    # 1 == 1.0 == True, yet True reads "True": equal values of other types are read one by one.
    numbers = [1, 1.0, True, None, float("nan"), " 7 ", 7]
    records = [{"customer_number": v, "company_name": " Acme "} for v in numbers]
    table = read_records(records, kind="customer", scope=None)
    assert list(table.columns["customer_number"]) == ["1", "1", "True", "", "", "7", "7"]
    assert list(table.columns["company_name"]) == ["Acme"] * 7
    when = datetime(2024, 1, 2, tzinfo=UTC)
    times = [when, when, "2024-01-02T00:00:00+00:00", None, "junk", np.datetime64("NaT")]
    for extra in ([], [1, True], [[1]]):  # hashable times, numbers, something unhashable
        values = times + extra
        table = read_records([{"created_at": v} for v in values], kind="contact", scope=None)
        expected = [when.timestamp()] * 3 + [math.nan] * (len(values) - 3)
        assert np.array_equal(table.created, expected, equal_nan=True)


@given(st.text(alphabet="0123456789 ().-+xXet#\t\u0663\u00b2", min_size=1, max_size=20))
def test_m1_phone_digits_without_regex_agree_with_it(value: str) -> None:
    match = _SIMPLE_PHONE.fullmatch(value)
    expected = None if match is None else re.sub("[^0-9]", "", match["number"])
    assert _simple_digits(value) == expected


# --- report ------------------------------------------------------------------------------------


def test_report_records_html_and_validation() -> None:
    report = find_duplicates(
        [
            contact(id="<b>1</b>", first_name="<script>", last_name="Lee", email="a@x.com"),
            contact(id="2", first_name="Script", last_name="Lee", email="A@x.com"),
        ],
        kind="contact",
    )
    record = report.to_records()[0]
    assert record["left_id"] == "2"  # "2" < "<b>1</b>"
    assert record["right_first_name"] == "<script>"
    page = report._repr_html_()
    assert "<script>" not in page
    assert html.escape("<script>") in page
    assert "class='ck-differs'" not in page  # "<script>" and "Script" are one name to it
    with pytest.raises(ValueError, match="before"):
        DuplicatePair(left_id="b", right_id="a", score=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        DuplicatePair(left_id="a", right_id="b", score=1.5)


# --- rule M2: groups ------------------------------------------------------------------------------


def test_m2_weak_chain_does_not_pull_unrelated_records_together() -> None:
    records = [
        contact(id="a", first_name="Ann", last_name="Lee", email="ann@x.com"),
        contact(id="b", first_name="Ann", last_name="Lee", email="ann@x.com", phone="3035550001"),
        contact(id="c", first_name="Bo", last_name="Park", phone="3035550001"),
        contact(id="d", first_name="Bo", last_name="Park", email="bo@y.com"),
        contact(id="e", first_name="Di", last_name="Ross", email="bo@y.com"),
    ]
    report = find_duplicates(records, kind="contact")
    linked = {(p.left_id, p.right_id) for p in report.pairs}
    assert linked == {("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")}
    groups = [set(group.ids) for group in report.groups]
    assert len(groups) == 2
    assert any({"a", "b"} <= group for group in groups)
    assert any({"d", "e"} <= group for group in groups)


def test_m2_main_is_most_complete_then_recent_then_oldest_then_smallest_id() -> None:
    def person(record_id: str, **more: Any) -> dict[str, Any]:
        return contact(id=record_id, first_name="Ann", last_name="Lee", email="ann@x.com", **more)

    complete = [person("a"), person("b", phone="3035550142")]
    group = find_duplicates(complete, kind="contact").groups[0]
    assert group.main_id == "b"
    assert group.reasons[0] == "main b: most complete (4 of 4 fields)"

    recent = [
        person("a", last_communicated_at=datetime(2024, 1, 1, tzinfo=UTC)),
        person("b", last_communicated_at=datetime(2024, 3, 1, tzinfo=UTC)),
        person("c"),
    ]
    group = find_duplicates(recent, kind="contact").groups[0]
    assert (group.ids, group.main_id) == (("a", "b", "c"), "b")
    assert "most recently contacted (2024-03-01)" in group.reasons[0]

    old = [person("a", created_at="2024-02-01T00:00:00+00:00"), person("b", created_at=NOW)]
    group = find_duplicates(old, kind="contact").groups[0]
    assert group.main_id == "a"
    assert "oldest (created 2024-02-01)" in group.reasons[0]

    group = find_duplicates([person("b"), person("a")], kind="contact").groups[0]
    assert group.main_id == "a"
    assert group.reasons[0].endswith("smallest id")
    assert "same email" in group.reasons


# --- rule M5: blocking ----------------------------------------------------------------------------


def test_m5_oversized_block_costs_near_linear() -> None:
    n = 3000
    people = [contact(first_name="John", last_name="Smith", email=f"j{i}@x.com") for i in range(n)]
    config = MatchConfig()
    report = find_duplicates(people, kind="contact", config=config)
    assert report.pairs == ()
    # Each blocking rule compares a record with at most window - 1 followers.
    assert report.compared <= n * (config.window - 1) * len(rules_for("contact"))


def test_m5_scope_keeps_customers_apart() -> None:
    same = contact(first_name="Ann", last_name="Lee", email="ann@x.com")
    records = [{**same, "id": "1", "customer_id": "c1"}, {**same, "id": "2", "customer_id": "c2"}]
    assert find_duplicates(records, kind="contact", scope="customer_id").compared == 0
    assert len(find_duplicates(records, kind="contact").pairs) == 1
    # Records without the scope value are compared among themselves.
    loose = [{**same, "id": "1"}, {**same, "id": "2", "customer_id": None}]
    assert len(find_duplicates(loose, kind="contact", scope="customer_id").pairs) == 1


# --- hypothesis: properties ------------------------------------------------------------------

_FIRST = ["Ann", "Anne", "Bob", "Robert", "Rob", "John", "Jon", "Kate", "Katherine", "J.", ""]
_LAST = ["Lee", "Li", "Smith", "Smyth", "Miller", "O'Brien", "Obrien", ""]
_EMAIL = ["", "ann@x.com", "ANN@x.com", "bob@y.org", "bob1@y.org", "j.smith@z.net"]
_PHONE = ["", "303 555 0142", "(303) 555-0142", "303.555.0199", "5550142", "+44 20 7946 0958"]
_SCOPES = ["c1", "c2", None]


@st.composite
def contact_lists(draw: st.DrawFn, max_size: int = 12) -> list[dict[str, Any]]:
    size = draw(st.integers(0, max_size))
    out = []
    for i in range(size):
        out.append(
            {
                "id": f"r{i:02}",
                "customer_id": draw(st.sampled_from(_SCOPES)),
                "first_name": draw(st.sampled_from(_FIRST)),
                "last_name": draw(st.sampled_from(_LAST)),
                "email": draw(st.sampled_from(_EMAIL)),
                "phone": draw(st.sampled_from(_PHONE)),
            }
        )
    return out


_COMPANY = ["Johnson Tires Inc", "Johnson Tires", "Johnsen Tires LLC", "Acme Co", "ACME", ""]
_STREET = ["12 Main St", "12 Main Street", "14 Main St", ""]
_POSTAL = ["80202", "80202-1234", "80301", ""]
_NUMBER = ["", "C-1", "c1", "C-2"]


@st.composite
def customer_lists(draw: st.DrawFn, max_size: int = 10) -> list[dict[str, Any]]:
    size = draw(st.integers(0, max_size))
    return [
        {
            "id": f"r{i:02}",
            "company_name": draw(st.sampled_from(_COMPANY)),
            "address_line1": draw(st.sampled_from(_STREET)),
            "postal_code": draw(st.sampled_from(_POSTAL)),
            "customer_number": draw(st.sampled_from(_NUMBER)),
            "email": draw(st.sampled_from(_EMAIL)),
            "phone": draw(st.sampled_from(_PHONE)),
        }
        for i in range(size)
    ]


def _summary(report: DuplicateReport) -> tuple[Any, ...]:
    return report.pairs, report.groups, report.compared


@settings(max_examples=60, deadline=None)
@given(contact_lists(), st.randoms(use_true_random=False), st.sampled_from([None, "customer_id"]))
def test_m1_m2_report_does_not_depend_on_input_order(
    records: list[dict[str, Any]], rnd: random.Random, scope: str | None
) -> None:
    config = MatchConfig(block_cap=3, window=2)  # small blocks exercise sorted neighbourhoods
    first = find_duplicates(records, kind="contact", config=config, scope=scope)
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert _summary(find_duplicates(shuffled, kind="contact", config=config, scope=scope)) == (
        _summary(first)
    )


def test_m1_a_pair_matched_on_close_and_fair_names_says_so() -> None:
    """Close first names and fair last names (no other field) score past the threshold; the
    pair's reasons say which names, where they once came out empty (found by hypothesis)."""
    records = [
        {"id": "r00", "customer_id": "c1", "first_name": "Ann", "last_name": "Smith"},
        {"id": "r01", "customer_id": "c1", "first_name": "Anne", "last_name": "Smyth"},
    ]
    (pair,) = find_duplicates(records, kind="contact").pairs
    assert pair.reasons == ("first names similar 0.86", "last names similar 0.80")


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        contact_lists().map(lambda r: ("contact", r)),
        customer_lists().map(lambda r: ("customer", r)),
    )
)
def test_m1_pairs_are_ordered_and_scores_in_unit_interval(case: tuple[str, list[Any]]) -> None:
    kind, records = case
    report = find_duplicates(records, kind=kind)  # type: ignore[arg-type]
    keys = [(-p.score, p.left_id, p.right_id) for p in report.pairs]
    assert keys == sorted(keys)
    for pair in report.pairs:
        assert 0.0 <= pair.score <= 1.0
        assert pair.left_id < pair.right_id
        assert pair.reasons
    members = [i for g in report.groups for i in g.ids]
    assert len(members) == len(set(members))
    assert [g.main_id for g in report.groups] == sorted(g.main_id for g in report.groups)


def _brute_force(
    records: list[dict[str, Any]], kind: str, config: MatchConfig
) -> dict[tuple[str, str], float]:
    """Score every pair (no blocking); keep those above the threshold sharing a blocking key."""
    table = read_records(records, kind=kind, scope=None)  # type: ignore[arg-type]
    norm = normalize_columns(kind, table.columns)
    features = build_features(kind, norm, config=config)
    names = comparisons_of(kind, config)
    model = Model.of(starting_parameters(kind, config), names)
    n = len(table)
    pairs = list(itertools.combinations(range(n), 2))
    if not pairs:
        return {}
    left = np.array([a for a, _ in pairs], np.int64)
    right = np.array([b for _, b in pairs], np.int64)
    scores = compare(features, left, right, config, model).score
    keys = [
        {key for key, _ in record_keys(rules_for(kind), {k: v[i] for k, v in norm.items()}, None)}
        for i in range(n)
    ]
    out = {}
    for (a, b), score in zip(pairs, scores.tolist(), strict=True):
        if score >= config.threshold and keys[a] & keys[b]:
            out[tuple(sorted((table.ids[a], table.ids[b])))] = score
    return out  # type: ignore[return-value]


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        contact_lists().map(lambda r: ("contact", r)),
        customer_lists().map(lambda r: ("customer", r)),
    )
)
def test_m5_blocking_finds_every_pair_brute_force_finds(case: tuple[str, list[Any]]) -> None:
    """Differential test: within the block cap, blocking misses no pair sharing a key."""
    kind, records = case
    config = MatchConfig(estimate=False)
    report = find_duplicates(records, kind=kind, config=config)  # type: ignore[arg-type]
    found = {(p.left_id, p.right_id): p.score for p in report.pairs}
    oracle = _brute_force(records, kind, config)
    assert oracle.items() <= found.items()


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        contact_lists().map(lambda r: ("contact", r)),
        customer_lists().map(lambda r: ("customer", r)),
    ),
    st.lists(st.sampled_from(["", "loc-1", "loc-2"]), min_size=40, max_size=40),
)
def test_column_keys_are_each_records_keys(case: tuple[str, list[Any]], scopes: list[str]) -> None:
    """Keys of whole columns (once per distinct value) are those of each record, in order."""
    kind, records = case
    table = read_records(records, kind=kind, scope=None)  # type: ignore[arg-type]
    norm = normalize_columns(kind, table.columns)
    rules = rules_for(kind)
    for scoped in (None, scopes[: len(table)]):
        expected = [
            (i, block, order)
            for i in range(len(table))
            for block, order in record_keys(
                rules, {k: v[i] for k, v in norm.items()}, None if scoped is None else scoped[i]
            )
        ]
        at, blocks, orders = column_keys(rules, norm, scoped)
        assert list(zip(at.tolist(), blocks, orders, strict=True)) == expected


@settings(max_examples=60, deadline=None)
@given(contact_lists(), st.sampled_from([None, "customer_id"]), st.booleans())
def test_m6_find_similar_agrees_with_find_duplicates(
    records: list[dict[str, Any]], scope: str | None, small_blocks: bool
) -> None:
    if not records:
        return
    config = MatchConfig(block_cap=3, window=2) if small_blocks else MatchConfig()
    *indexed, candidate = records
    batch = find_duplicates(records, kind="contact", config=config, scope=scope)
    expected = {
        (p.right_id if p.left_id == candidate["id"] else p.left_id, p.score, p.reasons)
        for p in batch.pairs
        if candidate["id"] in (p.left_id, p.right_id)
    }
    index = MatchIndex.build(indexed, kind="contact", config=config, scope=scope)
    matches = find_similar(candidate, index)
    got = {(m.record["id"], m.score, m.reasons) for m in matches}
    assert got == expected
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


@settings(max_examples=40, deadline=None)
@given(customer_lists(max_size=8))
def test_m6_customer_index_agrees_with_batch(records: list[dict[str, Any]]) -> None:
    if not records:
        return
    *indexed, candidate = records
    batch = find_duplicates(records, kind="customer")
    expected = {
        (p.right_id if p.left_id == candidate["id"] else p.left_id, p.score)
        for p in batch.pairs
        if candidate["id"] in (p.left_id, p.right_id)
    }
    index = MatchIndex.build(indexed, kind="customer")
    assert {(m.record["id"], m.score) for m in index.find_similar(candidate)} == expected


def test_m6_index_add_remove_and_scope() -> None:
    ann = contact(id="k1", customer_id="c1", first_name="Ann", last_name="Lee", email="a@x.com")
    index = MatchIndex("contact", scope="customer_id")
    index.add(ann)
    new = NewContact(first_name="Anne", last_name="Lee", email="A@X.com")
    [match] = index.find_similar(new, scope_value="c1")
    assert match.record is ann
    assert "same email" in match.reasons
    assert index.find_similar(new, scope_value="c2") == []
    assert index.candidates(new, scope_value="c1") == ["k1"]
    index.remove("k1")
    assert len(index) == 0
    assert "k1" not in index
    assert index.find_similar(new, scope_value="c1") == []
    with pytest.raises(KeyError):
        index.remove("k1")
    # A record is never its own match, and re-adding an id replaces it.
    index.add(ann)
    index.add({**ann, "email": "other@x.com"})
    assert len(index) == 1
    assert index.find_similar({**ann, "email": "other@x.com"}) == []


def test_m6_ids_without_id_field_are_positions() -> None:
    records = [contact(first_name="Ann", last_name="Lee", email="a@x.com")] * 3
    index = MatchIndex.build(records[:2], kind="contact")
    assert sorted(m.record is records[0] for m in index.find_similar(records[2])) == [True, True]
    assert "0" in index
    assert "1" in index


def test_id_rank_orders_ids_as_strings() -> None:
    assert _id_rank(["b", "a", "10", "9"]).tolist() == [3, 2, 0, 1]


def test_config_is_validated_and_frozen() -> None:
    with pytest.raises(ValueError, match="threshold"):
        MatchConfig(threshold=2.0)
    with pytest.raises(ValueError, match="window"):
        MatchConfig(window=1)
    config = MatchConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.threshold = 0.1  # type: ignore[misc]
    strict = attrs.evolve(config, threshold=1.0)
    records = [contact(first_name="Dana", last_name="Scully")] * 2
    assert find_duplicates(records, kind="contact", config=strict).pairs == ()
    pair = find_duplicates(records, kind="contact").pairs[0]
    assert pair.score == round(1 / (1 + 2**-pair.match_weight), 4)
    assert 0.5 <= pair.score < 1.0


def test_dataframe_ids_keep_their_type_and_index_labels_are_ids() -> None:
    import pandas as pd

    people = {"first_name": ["Ann", "Bo", "Ann"], "last_name": ["Lee", "Park", "Lee"]}
    people["email"] = ["ann@x.com", "bo@y.com", "ann@x.com"]
    with_ids = find_duplicates(pd.DataFrame({"id": [9, 10, 11], **people}), kind="contact")
    table = with_ids.to_pandas()
    assert table[["left_id", "right_id"]].values.tolist() == [[11, 9]]  # "11" < "9" as text
    labelled = pd.DataFrame(people, index=["k-a", "k-b", "k-c"])
    report = find_duplicates(labelled, kind="contact")
    assert {(p.left_id, p.right_id) for p in report.pairs} == {("k-a", "k-c")}
    clusters = report.clusters_to_pandas()
    assert clusters.to_dict("records") == [
        {"id": "k-a", "cluster": "k-a", "is_main": True, "size": 2},
        {"id": "k-c", "cluster": "k-a", "is_main": False, "size": 2},
    ]
    assert len(repr(with_ids)) < 300


def test_submodules_are_attributes_of_the_package() -> None:
    import customerkit as ck

    assert ck.synth.labelled_contacts is not None
    assert ck.convert.to_dict is not None
    with pytest.raises(AttributeError, match="no attribute"):
        _ = ck.no_such_thing
