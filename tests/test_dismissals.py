"""Dismissed pairs in ``customerkit.find_duplicates`` (rules M1, M2), as a pure function.

The book's side (dismiss, undismiss, merges, permissions, tenancy, history) is in the contract
suite (``DismissalsContract``) and the stateful machine.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import customerkit as ck

FIRST = ["Ann", "Anne", "Bob", "Robert"]
LAST = ["Lee", "Li", "Smith"]
EMAILS = ["", "ann@example.com", "ANN@example.com", "bob@example.org"]
PHONES = ["", "303 555 0142", "(303) 555-0142", "720 555 0199"]

contacts = st.lists(
    st.fixed_dictionaries(
        {
            "first_name": st.sampled_from(FIRST),
            "last_name": st.sampled_from(LAST),
            "email": st.sampled_from(EMAILS),
            "phone": st.sampled_from(PHONES),
        }
    ),
    min_size=2,
    max_size=9,
).map(lambda rows: [{"id": f"k{n}", **row} for n, row in enumerate(rows)])


def _ids(pair: ck.DuplicatePair) -> frozenset[str]:
    return frozenset((pair.left_id, pair.right_id))


@given(records=contacts, data=st.data())
def test_m1_dismissed_pairs_are_dropped_and_the_rest_kept_as_scored(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Rule M1: dismissing pairs removes exactly them (either order); others keep their scores."""
    before = ck.find_duplicates(records, kind="contact")
    chosen = data.draw(st.lists(st.sampled_from(before.pairs), unique=True)) if before.pairs else []
    flipped = [(p.right_id, p.left_id) if n % 2 else (p.left_id, p.right_id) for n, p in
               enumerate(chosen)]  # fmt: skip
    after = ck.find_duplicates(records, kind="contact", dismissed=flipped)
    gone = {_ids(pair) for pair in chosen}
    assert after.pairs == tuple(p for p in before.pairs if _ids(p) not in gone)
    for group in after.groups:
        assert not any(pair <= set(group.ids) for pair in gone), "rule M2: apart, never grouped"


@given(records=contacts)
def test_m2_groups_hold_only_pairs_that_were_not_dismissed(records: list[dict[str, Any]]) -> None:
    """Rule M2: dismissing every pair but one leaves at most that pair as a group."""
    before = ck.find_duplicates(records, kind="contact")
    if not before.pairs:
        return
    best, *rest = before.pairs
    after = ck.find_duplicates(
        records, kind="contact", dismissed=[(p.left_id, p.right_id) for p in rest]
    )
    assert after.pairs == (best,)
    assert [set(g.ids) for g in after.groups] == [{best.left_id, best.right_id}]


def test_unknown_ids_and_self_pairs_change_nothing() -> None:
    """Pairs naming records that are not in the input, or a record with itself, are ignored."""
    records = [
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com"},
        {"id": "b", "first_name": "Anne", "last_name": "Lee", "email": "ANN@example.com"},
    ]
    before = ck.find_duplicates(records, kind="contact")
    assert len(before.pairs) == 1
    ignored = [("a", "zz"), ("zz", "yy"), ("a", "a")]
    assert ck.find_duplicates(records, kind="contact", dismissed=ignored) == before
