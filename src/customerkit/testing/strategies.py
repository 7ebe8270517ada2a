"""Hypothesis strategies for customerkit's inputs (extra ``testing``).

Small vocabularies on purpose: names that share words and prefixes, numbers that are the same
number typed differently, usernames that fold to the same key, so that generated programs hit
the interesting rules (uniqueness, duplicates, search ranking) instead of unrelated random text.
Our own state-machine test draws from these; a store's own property tests can too::

    from hypothesis import given
    from customerkit.testing import strategies


    @given(strategies.new_customers())
    def test_my_store_keeps_what_it_is_given(draft): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

import customerkit as ck

__all__ = [
    "BAD_USERNAMES",
    "CITIES",
    "EMAILS",
    "FIRST_NAMES",
    "LAST_NAMES",
    "NAMES",
    "NUMBERS",
    "PHONES",
    "QUERIES",
    "STATES",
    "TITLES",
    "USERNAME_KEYS",
    "contact_changes",
    "contact_values",
    "customer_changes",
    "customer_values",
    "new_contacts",
    "new_customers",
    "queries",
    "usernames",
]

#: Company names sharing words, prefixes and punctuation the search folds away.
NAMES = [
    "Johnson Tires",
    "Johnson Tires - Denver",
    "John Deere",
    "Big John's Hauling",
    "Denver Tire Co",
    "Smith-Jones Farms",
    "ÉCOLE Auto",
    "50%_off Tires",
]
#: Customer numbers, some the same number typed differently (``C-1`` / ``c1``).
NUMBERS = ["C-1", "c1", " C-2 ", "N-3", "TIRES-9", "den-4"]
CITIES = ["", "Denver", "Aurora", "Johnstown"]
STATES = ["", "CO", "KS"]
#: Usernames and their canonical keys; three spellings of ``bob`` are one username.
USERNAME_KEYS: Mapping[str, str] = {
    "bob": "bob",
    "Bob": "bob",
    "ＢＯＢ": "bob",
    "alice": "alice",
    "carol": "carol",
}
#: Usernames every book refuses ("admin" is reserved).
BAD_USERNAMES = ["admin"]
FIRST_NAMES = ["Ann", "Anne", "Bob", ""]
LAST_NAMES = ["Lee", "Smith", ""]
#: Emails, two of them the same address in another case.
EMAILS = ["", "ann@example.com", "ANN@example.com", "bob@example.org"]
#: Phones, two of them the same number with and without its area code.
PHONES = ["", "303 555 0142", "5550142"]
TITLES = ["", "Owner"]
#: Searches hitting the names above: exact or prefix on names, prefix on a city, infix.
QUERIES = ["john", "den", "ohn"]


def customer_values() -> st.SearchStrategy[dict[str, Any]]:
    """The fields of a new customer, as a dict (blank names and numbers included)."""
    return st.fixed_dictionaries(
        {
            "company_name": st.sampled_from([*NAMES, ""]),
            "customer_number": st.sampled_from([*NUMBERS, ""]),
            "city": st.sampled_from(CITIES),
            "state": st.sampled_from(STATES),
            "kind": st.sampled_from(["LOCAL", "FLEET"]),
            "username": st.sampled_from([*[None] * 8, *USERNAME_KEYS, *BAD_USERNAMES]),
        }
    )


def customer_changes() -> st.SearchStrategy[dict[str, Any]]:
    """Changes to a customer, as ``customers.update`` takes them (possibly none)."""
    return st.fixed_dictionaries(
        {},
        optional={
            "company_name": st.sampled_from([*NAMES, ""]),
            "customer_number": st.sampled_from([*NUMBERS, ""]),
            "city": st.sampled_from(CITIES),
            "state": st.sampled_from(STATES),
            "username": st.sampled_from([None, *USERNAME_KEYS, *BAD_USERNAMES]),
        },
    )


def contact_values() -> st.SearchStrategy[dict[str, Any]]:
    """The fields of a new contact, as a dict."""
    return st.fixed_dictionaries(
        {
            "first_name": st.sampled_from(FIRST_NAMES),
            "last_name": st.sampled_from(LAST_NAMES),
            "email": st.sampled_from(EMAILS),
            "phone": st.sampled_from(PHONES),
            "title": st.sampled_from(TITLES),
        }
    )


def contact_changes() -> st.SearchStrategy[dict[str, Any]]:
    """Changes to a contact, as ``contacts.update`` takes them (possibly none)."""
    return st.fixed_dictionaries(
        {},
        optional={
            "first_name": st.sampled_from(FIRST_NAMES),
            "last_name": st.sampled_from(LAST_NAMES),
            "phone": st.sampled_from(PHONES),
            "title": st.sampled_from(TITLES),
            "email": st.sampled_from(EMAILS),
        },
    )


def _new_customer(values: Mapping[str, Any]) -> ck.NewCustomer:
    return ck.NewCustomer(
        company_name=values["company_name"],
        customer_number=values["customer_number"],
        city=values["city"],
        state=values["state"],
        kind=ck.CustomerKind(values["kind"]),
        username=values["username"],
    )


def new_customers() -> st.SearchStrategy[ck.NewCustomer]:
    """Drafts for ``customers.create``; some are refused (blank name, reserved username)."""
    return customer_values().map(_new_customer)


def new_contacts() -> st.SearchStrategy[ck.NewContact]:
    """Drafts for ``contacts.add``, blank fields included."""
    return contact_values().map(lambda values: ck.NewContact(**values))


def usernames() -> st.SearchStrategy[str]:
    """Usernames, several of them the same username spelled differently, and reserved ones."""
    return st.sampled_from([*USERNAME_KEYS, *BAD_USERNAMES])


def queries() -> st.SearchStrategy[str]:
    """Search texts: the ones that hit the names above, and short or odd text around them."""
    return st.sampled_from(QUERIES) | st.text(alphabet="johnsdeTr -'é%_", min_size=0, max_size=8)
