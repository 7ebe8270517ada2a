"""The synthetic data generator: determinism, shapes, uniqueness, labelled truth, nicknames."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from itertools import islice

import attrs
import phonenumbers
import pytest
from email_validator import validate_email

from customerkit import synth
from customerkit.data.nicknames import NICKNAME_GROUPS, NICKNAMES, nicknames_of, same_given_name
from customerkit.model import CustomerKind, NewContact, NewCustomer, Role
from customerkit.synth import _data
from customerkit.text import digits, fold, number_key

PHONE_RE = re.compile(r"^[+(]?[0-9][0-9 ().+\-]*[0-9]( (x|ext\.?|Ext\.) ?[0-9]+)?$")
ZIP_BY_CITY = {(city.casefold(), state): zip3 for city, state, zip3, _ in _data.CITIES}


def phone_digits(phone: str) -> str:
    """The 10-digit US number of a generated phone (extension and country code dropped)."""
    main = re.split(r" (?:x|ext|Ext)", phone)[0]
    return digits(main)[-10:]


def customer_rows(n: int, **kwargs: object) -> list[tuple[str, NewCustomer]]:
    return list(synth.customers(n, **kwargs))  # type: ignore[arg-type]


# --- determinism --------------------------------------------------------------------------


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    assert customer_rows(300, seed=5) == customer_rows(300, seed=5)
    assert customer_rows(300, seed=5) != customer_rows(300, seed=6)
    assert list(synth.contacts(50, seed=5)) == list(synth.contacts(50, seed=5))
    assert list(synth.contacts(50, seed=5)) != list(synth.contacts(50, seed=6))
    assert synth.users(seed=5) == synth.users(seed=5)
    for make in (synth.labelled_contacts, synth.labelled_customers):
        first, again, other = make(500, seed=5), make(500, seed=5), make(500, seed=6)
        assert first.records == again.records
        assert first.truth == again.truth
        assert first.records != other.records


def test_a_longer_run_starts_with_the_shorter_one() -> None:
    assert customer_rows(2_500, seed=3)[:700] == customer_rows(700, seed=3)
    short = list(synth.contacts(300, seed=3))
    assert list(synth.contacts(400, seed=3))[: len(short)] == short
    assert list(islice(synth.customers(10**9, seed=3), 5)) == customer_rows(5, seed=3)


_DIGEST_SCRIPT = """
import hashlib
from customerkit import synth
h = hashlib.sha256()
for loc, c in synth.customers(400, seed=9):
    h.update(repr((loc, c)).encode())
for cid, k in synth.contacts(100, seed=9):
    h.update(repr((cid, k)).encode())
d = synth.labelled_contacts(400, seed=9)
h.update(repr((d.records, sorted(d.truth.items()))).encode())
print(h.hexdigest())
"""


def test_same_data_whatever_the_hash_seed() -> None:
    """Nothing depends on str hashing (PYTHONHASHSEED) or on process state."""
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _DIGEST_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=120,
        )
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1


# --- customers ----------------------------------------------------------------------------


def test_customers_count_locations_and_valid_drafts() -> None:
    locations = ("north", "south", "east", "west")
    rows = customer_rows(4_000, seed=1, locations=locations)
    assert len(rows) == 4_000
    assert {loc for loc, _ in rows} == set(locations)
    for _, c in rows:
        assert isinstance(c, NewCustomer)
        assert c.company_name.strip()
        if c.kind is CustomerKind.LOCAL:
            assert c.customer_number.strip()
        assert re.fullmatch(r"[A-Z]{2}", c.state)
        zip3 = ZIP_BY_CITY[(c.city.casefold(), c.state)]
        assert re.fullmatch(rf"{zip3}\d\d(-\d{{4}})?", c.postal_code)
        for phone in (c.phone, c.fax):
            if phone:
                assert PHONE_RE.match(phone), phone
        assert c.phone_extension.isdigit() or not c.phone_extension
        assert c.email or c.phone
    fleet = [c for _, c in rows if c.kind is CustomerKind.FLEET]
    assert 0.07 * len(rows) < len(fleet) < 0.13 * len(rows)
    assert any(not c.customer_number for c in fleet)
    assert any(c.customer_number for c in fleet)


def test_phone_area_codes_match_the_city() -> None:
    area_of = {(city, state): area for city, state, _, area in _data.CITIES}
    for _, c in customer_rows(1_000, seed=2, duplicate_share=0.0):
        if c.phone:
            assert phone_digits(c.phone)[:3] == area_of[(c.city, c.state)]


def test_customer_numbers_unique_per_location_after_normalising() -> None:
    seen: set[tuple[str, str]] = set()
    for location, c in synth.customers(20_000, seed=4, duplicate_share=0.2):
        if c.customer_number:
            key = (location, number_key(c.customer_number))
            assert key not in seen
            seen.add(key)


def test_distinct_customers_share_no_email_or_phone_and_near_duplicates_exist() -> None:
    clean = customer_rows(5_000, seed=8, duplicate_share=0.0)
    emails = [c.email.lower() for _, c in clean if c.email]
    phones = [phone_digits(c.phone) for _, c in clean if c.phone]
    assert len(emails) == len(set(emails))
    assert len(phones) == len(set(phones))

    messy = customer_rows(5_000, seed=8, duplicate_share=0.2)
    by_phone = Counter((loc, phone_digits(c.phone)) for loc, c in messy if c.phone)
    shared = sum(count - 1 for count in by_phone.values())
    assert 0.1 * len(messy) < shared < 0.25 * len(messy)


def test_company_names_look_like_dealer_customers() -> None:
    names = [c.company_name for _, c in customer_rows(3_000, seed=3, duplicate_share=0.0)]
    assert any(" - " in name for name in names)  # "Johnson Tires - Denver"
    assert any(name.endswith(("LLC", "Inc", "Inc.")) for name in names)
    assert any(word in name for name in names for word in ("Tires", "Trucking", "Farms"))
    assert len(set(names)) > 0.8 * len(names)


# --- contacts -----------------------------------------------------------------------------


def test_contacts_per_customer_and_valid() -> None:
    ids = [f"cust-{i}" for i in range(300)]
    rows = list(synth.contacts(ids, seed=2, per_customer=(2, 6), duplicate_share=0.0))
    per = Counter(customer_id for customer_id, _ in rows)
    assert set(per) == set(ids)
    assert all(2 <= count <= 6 for count in per.values())
    assert list(dict.fromkeys(customer_id for customer_id, _ in rows)) == ids  # grouped, in order
    for _, k in rows:
        assert isinstance(k, NewContact)
        assert k.first_name.strip()
        assert k.last_name.strip()
        assert k.email or k.phone
        if k.phone:
            assert PHONE_RE.match(k.phone), k.phone
    emails = [k.email.lower() for _, k in rows if k.email]
    assert len(emails) == len(set(emails))
    assert any(k.external_user for _, k in rows)
    assert all(k.email for _, k in rows if k.external_user)


def test_contacts_near_duplicates_are_never_external_users() -> None:
    rows = list(synth.contacts(500, seed=3, duplicate_share=0.5, external_share=0.5))
    external = [k.email.lower() for _, k in rows if k.external_user]
    assert len(external) == len(set(external))  # Rule K3 holds when loading them all
    assert len(rows) > 500 * 4 * 1.3  # copies came on top of the 2-6 people each


def test_generated_emails_and_phones_parse() -> None:
    data = synth.labelled_contacts(800, seed=12, corruption=synth.Corruption().scaled(2))
    customers = synth.labelled_customers(400, seed=12)
    records = data.records + customers.records
    for record in records:
        if record["email"]:
            validate_email(record["email"].strip(), check_deliverability=False)
        if record["phone"]:
            main = re.split(r" (?:x|ext|Ext)", record["phone"].strip())[0]
            number = phonenumbers.parse(main, "US")
            assert phonenumbers.is_possible_number(number), record["phone"]


# --- users --------------------------------------------------------------------------------


def test_users_cover_every_role_with_and_without_login() -> None:
    users = synth.users(("loc-1", "loc-2"), fleet_customers=[("loc-1", "cust-7")])
    assert len({u.id for u in users}) == len(users)
    assert len({u.email.lower() for u in users}) == len(users)
    assert {u.role for u in users} == set(Role)
    for location in ("loc-1", "loc-2"):
        staff = [u for u in users if u.location_id == location and u.role is not Role.FLEET_USER]
        assert {u.role for u in staff} == set(Role) - {Role.FLEET_USER}
        assert any(u.has_login for u in staff)
        assert any(not u.has_login for u in staff)
        assert all(re.fullmatch(rf"u-{location}-\d+", u.id) for u in staff)
    fleet = [u for u in users if u.role is Role.FLEET_USER]
    assert fleet
    assert all(u.fleet_customer_id == "cust-7" and u.has_login for u in fleet)
    assert "u-loc-1-3" in {u.id for u in users}


# --- labelled data ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [synth.labelled_contacts, synth.labelled_customers])
def test_labelled_shape_and_duplicate_rate(make: object) -> None:
    data = make(10_000, seed=21, dup_rate=0.2)  # type: ignore[operator]
    assert len(data.records) == 10_000
    ids = [r["id"] for r in data.records]
    assert len(set(ids)) == len(ids)
    assert set(data.truth) == set(ids)
    entities = Counter(data.truth.values())
    copies = len(ids) - len(entities)
    assert 0.18 < copies / len(ids) < 0.22
    assert all(count <= 4 for count in entities.values())
    groups = data.groups()
    assert len(groups) == sum(1 for count in entities.values() if count > 1)
    assert data.true_pair_count() == len(data.true_pairs())


def test_labelled_contacts_keys_and_scope() -> None:
    data = synth.labelled_contacts(3_000, seed=2)
    expected = ["id", "customer_id", "first_name", "last_name", "email", "phone", "title"]
    assert all(list(r) == expected for r in data.records)
    customer_of: dict[str, set[str]] = defaultdict(set)
    for record in data.records:
        customer_of[data.truth[record["id"]]].add(record["customer_id"])
    assert all(len(customers) == 1 for customers in customer_of.values())


def test_labelled_customers_keys_numbers_and_scope() -> None:
    data = synth.labelled_customers(3_000, seed=2)
    fields = [f.name for f in attrs.fields(NewCustomer)]
    for record in data.records:
        assert set(record) - {"id", "location_id"} <= set(fields)
        assert record["kind"] in {"LOCAL", "FLEET"}
        if record["kind"] == "LOCAL":
            assert record["customer_number"]
    numbers = [
        (r["location_id"], r["customer_number"]) for r in data.records if r["customer_number"]
    ]
    assert len(numbers) == len(set(numbers))
    location_of: dict[str, set[str]] = defaultdict(set)
    for record in data.records:
        location_of[data.truth[record["id"]]].add(record["location_id"])
    assert all(len(locations) == 1 for locations in location_of.values())


@pytest.mark.parametrize("make", [synth.labelled_contacts, synth.labelled_customers])
def test_distinct_entities_share_no_email_or_phone(make: object) -> None:
    data = make(20_000, seed=13, corruption=synth.Corruption().scaled(1.5))  # type: ignore[operator]
    owner: dict[str, str] = {}
    for record in data.records:
        entity = data.truth[record["id"]]
        keys = []
        if record["email"]:
            keys.append("e:" + record["email"].strip().lower())
        if record["phone"]:
            keys.append("p:" + phone_digits(record["phone"]))
        for key in keys:
            assert owner.setdefault(key, entity) == entity, key


def test_distinct_people_do_share_names() -> None:
    data = synth.labelled_contacts(20_000, seed=3, dup_rate=0.0)
    names = Counter(
        (fold(r["first_name"]).strip(), fold(r["last_name"]).strip()) for r in data.records
    )
    assert names.most_common(1)[0][1] >= 5
    surnames = Counter(fold(r["last_name"]).strip() for r in data.records)
    assert surnames.most_common(1)[0][1] > 100


def test_no_corruption_gives_exact_copies() -> None:
    data = synth.labelled_contacts(3_000, seed=4, corruption=synth.Corruption.none())
    by_entity: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for record in data.records:
        by_entity[data.truth[record["id"]]].add(tuple(v for k, v in record.items() if k != "id"))
    assert all(len(versions) == 1 for versions in by_entity.values())


def test_corruptions_are_the_ones_asked_for() -> None:
    only_nicknames = attrs.evolve(synth.Corruption.none(), nickname=1.0)
    data = synth.labelled_contacts(5_000, seed=6, dup_rate=0.4, corruption=only_nicknames)
    by_id = {r["id"]: r for r in data.records}
    changed = 0
    for group in data.groups():
        records = [by_id[record_id] for record_id in group]
        firsts = {fold(r["first_name"]) for r in records}
        assert len({(r["last_name"], r["email"], r["phone"]) for r in records}) == 1
        if len(firsts) > 1:
            changed += 1
            # Every copy is a nickname of the original (copies of "Kate" may be "Catherine"
            # and "Kathleen", which are not nicknames of each other).
            assert any(all(same_given_name(a, b) for b in firsts) for a in firsts)
    assert changed > 50

    messy = synth.labelled_contacts(4_000, seed=6, dup_rate=0.4)
    by_id = {r["id"]: r for r in messy.records}
    differing = sum(
        1
        for group in messy.groups()
        if len({tuple(by_id[record_id].values())[2:] for record_id in group}) > 1
    )
    assert differing > 0.6 * len(messy.groups())


def test_corruption_rates_are_checked_and_scale() -> None:
    with pytest.raises(ValueError, match="typo"):
        synth.Corruption(typo=1.5)
    with pytest.raises(ValueError, match="factor"):
        synth.Corruption().scaled(-1)
    doubled = synth.Corruption().scaled(2)
    assert doubled.typo == pytest.approx(2 * synth.Corruption().typo)
    assert max(attrs.asdict(synth.Corruption().scaled(100)).values()) == 1.0
    assert set(attrs.asdict(synth.Corruption.none()).values()) == {0.0}


def test_evaluate_scores_pairs_and_groups() -> None:
    data = synth.labelled_contacts(2_000, seed=8)
    perfect = data.evaluate(data.true_pairs())
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)
    assert data.evaluate_groups(data.groups()).recall == 1.0
    half = sorted(data.true_pairs())[::2]
    wrong = [(data.records[0]["id"], r["id"]) for r in data.records[1:50]]
    wrong = [p for p in wrong if data.truth[p[0]] != data.truth[p[1]]]
    score = data.evaluate([*half, *[(b, a) for a, b in half], *wrong])
    assert score.true_positives == len(half)
    assert score.false_positives == len(wrong)
    assert score.false_negatives == data.true_pair_count() - len(half)
    nothing = data.evaluate([])
    assert nothing.precision == 1.0
    assert nothing.recall == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="dup_rate"):
        synth.labelled_contacts(10, dup_rate=0.9)
    with pytest.raises(ValueError, match="n must not be negative"):
        synth.customers(-1)
    with pytest.raises(ValueError, match="location"):
        synth.customers(5, locations=())
    with pytest.raises(ValueError, match="per_customer"):
        synth.contacts(5, per_customer=(3, 2))
    with pytest.raises(TypeError, match="seed"):
        synth.customers(5, seed="x")  # type: ignore[arg-type]
    assert synth.labelled_customers(0).records == []


# --- nicknames ----------------------------------------------------------------------------


def test_nickname_table_is_symmetric_folded_and_covers_the_usual_pairs() -> None:
    assert len(NICKNAME_GROUPS) >= 60
    for name, others in NICKNAMES.items():
        assert name == fold(name)
        assert name not in others
        for other in others:
            assert name in NICKNAMES[other]
    for short, formal in [
        ("Bob", "Robert"),
        ("Bill", "William"),
        ("Liz", "Elizabeth"),
        ("Jim", "James"),
        ("Kate", "Katherine"),
        ("Peggy", "Margaret"),
    ]:
        assert same_given_name(short, formal)
        assert same_given_name(formal.upper(), short)
        assert fold(formal) in nicknames_of(short)
    assert same_given_name("José", "pepe")
    assert not same_given_name("Albert", "Alfred")  # both "Al", yet not each other
    assert nicknames_of("Zebulon") == frozenset()


def test_synth_exports() -> None:
    assert set(synth.__all__) >= {
        "Corruption",
        "LabelledData",
        "contacts",
        "customers",
        "labelled_contacts",
        "labelled_customers",
        "users",
    }
