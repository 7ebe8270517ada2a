"""Labelled duplicates: records plus the truth of which ones are the same entity."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

import attrs

from customerkit.synth._corrupt import Corruption, corrupt_person
from customerkit.synth._customers import CustomerFactory, corrupt_customer
from customerkit.synth._pieces import (
    EmailBook,
    PersonFactory,
    PhoneBook,
    company_domain,
    derive_rng,
)

#: Copies an entity with duplicates gets beyond its first record: 1 (75 %), 2 (20 %), 3 (5 %).
_MEAN_EXTRA = 0.75 * 1 + 0.20 * 2 + 0.05 * 3
_MAX_DUP_RATE = 0.5


class PairLike(Protocol):
    """Anything with ``left_id`` and ``right_id``, such as a ``DuplicatePair``."""

    @property
    def left_id(self) -> object:
        """Id of one record of the pair."""

    @property
    def right_id(self) -> object:
        """Id of the other record of the pair."""


@attrs.frozen(kw_only=True)
class MatchScore:
    """Pairwise precision and recall of a duplicate matcher against the truth.

    Attributes:
        true_positives: Predicted pairs that are the same entity.
        false_positives: Predicted pairs that are different entities.
        false_negatives: Same-entity pairs that were not predicted.
    """

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Share of predicted pairs that are right (1.0 when nothing was predicted)."""
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        """Share of true pairs that were found (1.0 when there are none)."""
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@attrs.frozen(kw_only=True, eq=False)
class LabelledData:
    """Synthetic records with known duplicates.

    Attributes:
        kind: ``"contact"`` or ``"customer"``.
        records: Plain dicts, in random order: ``id`` plus model field names (contacts also
            carry ``customer_id``; customers carry ``location_id`` and ``kind``). Values are
            strings as typed, blanks as ``""``.
        truth: Every record id mapped to its true entity id; duplicates share an entity.
    """

    kind: Literal["contact", "customer"]
    records: list[dict[str, str]]
    truth: dict[str, str]

    def groups(self) -> list[list[str]]:
        """Ids of every entity with more than one record (the duplicate groups), in order."""
        by_entity: dict[str, list[str]] = {}
        for record_id, entity in self.truth.items():
            by_entity.setdefault(entity, []).append(record_id)
        return [ids for ids in by_entity.values() if len(ids) > 1]

    def true_pair_count(self) -> int:
        """Number of record pairs that are the same entity."""
        return sum(k * (k - 1) // 2 for k in Counter(self.truth.values()).values() if k > 1)

    def true_pairs(self) -> set[tuple[str, str]]:
        """Every same-entity pair of record ids, each as ``(smaller, larger)``."""
        pairs: set[tuple[str, str]] = set()
        for ids in self.groups():
            ordered = sorted(ids)
            for i, left in enumerate(ordered):
                pairs.update((left, right) for right in ordered[i + 1 :])
        return pairs

    def evaluate(self, pairs: Iterable[tuple[object, object] | PairLike]) -> MatchScore:
        """Score predicted duplicate pairs (tuples of ids, or ``DuplicatePair``-like objects).

        Args:
            pairs: Predicted pairs; order within a pair and repeats do not matter.

        Returns:
            The pairwise ``MatchScore``.

        Raises:
            KeyError: A pair names an id that is not in ``records``.
        """
        seen: set[tuple[str, str]] = set()
        truth = self.truth
        tp = fp = 0
        for pair in pairs:
            if isinstance(pair, tuple):
                left, right = str(pair[0]), str(pair[1])
            else:
                left, right = str(pair.left_id), str(pair.right_id)
            if left == right:
                continue
            key = (left, right) if left < right else (right, left)
            if key in seen:
                continue
            seen.add(key)
            if truth[left] == truth[right]:
                tp += 1
            else:
                fp += 1
        return MatchScore(
            true_positives=tp,
            false_positives=fp,
            false_negatives=self.true_pair_count() - tp,
        )

    def evaluate_groups(self, groups: Iterable[Iterable[object]]) -> MatchScore:
        """Score predicted duplicate groups (disjoint sets of ids) by the pairs they imply.

        Args:
            groups: Predicted groups, e.g. ``[g.ids for g in report.groups]``.

        Returns:
            The pairwise ``MatchScore`` of all pairs within each group.

        Raises:
            KeyError: A group names an id that is not in ``records``.
        """
        tp = predicted = 0
        truth = self.truth
        for group in groups:
            ids = {str(record_id) for record_id in group}
            predicted += len(ids) * (len(ids) - 1) // 2
            counts = Counter(truth[record_id] for record_id in ids)
            tp += sum(k * (k - 1) // 2 for k in counts.values())
        return MatchScore(
            true_positives=tp,
            false_positives=predicted - tp,
            false_negatives=self.true_pair_count() - tp,
        )


def _copy_probability(dup_rate: float) -> float:
    """Chance that an entity gets duplicates so that ``dup_rate`` of all records are copies."""
    if not 0.0 <= dup_rate <= _MAX_DUP_RATE:
        msg = f"dup_rate must be between 0 and {_MAX_DUP_RATE}, got {dup_rate!r}"
        raise ValueError(msg)
    return dup_rate / (_MEAN_EXTRA * (1.0 - dup_rate))


def _check_count(n: int) -> None:
    if n < 0:
        msg = f"n must not be negative, got {n!r}"
        raise ValueError(msg)


def labelled_contacts(
    n: int,
    *,
    seed: int = 0,
    dup_rate: float = 0.2,
    corruption: Corruption | None = None,
    contacts_per_customer: float = 4.0,
) -> LabelledData:
    """Contact records with known duplicates, for measuring a duplicate matcher.

    Distinct people may share first names, last names or both (common names repeat thousands of
    times at scale), but never an email address or a phone number. Duplicates of a person stay at
    the same customer and are typed differently as ``corruption`` says.

    Args:
        n: Number of records.
        seed: Same seed and arguments, same data (on every platform).
        dup_rate: Share of records that are extra copies of a person already present
            (0 to 0.5). Groups have 2 to 4 records.
        corruption: How copies differ from the original (default ``Corruption``).
        contacts_per_customer: Average number of distinct people per ``customer_id``.

    Returns:
        Records with keys ``id, customer_id, first_name, last_name, email, phone, title`` and
        the truth.
    """
    _check_count(n)
    copy_p = _copy_probability(dup_rate)
    if contacts_per_customer < 1:
        msg = f"contacts_per_customer must be at least 1, got {contacts_per_customer!r}"
        raise ValueError(msg)
    c = corruption or Corruption()
    rng = derive_rng(seed, "labelled-contacts")
    r = rng.random
    emails = EmailBook(track=True)
    people = PersonFactory(rng, emails, PhoneBook(rng))
    spread = 2.0 * contacts_per_customer - 1.0

    records: list[dict[str, str]] = []
    owners: list[int] = []
    entity = 0
    customer = -1
    left = 0
    customer_id = ""
    domain: str | None = None
    family: str | None = None
    while len(records) < n:
        if left <= 0:
            customer += 1
            customer_id = f"cust-{customer}"
            left = 1 + int(r() * spread)
            domain, family = company_domain(r)
        left -= 1
        person = people.new(family, domain)
        records.append({"id": "", "customer_id": customer_id, **person.record()})
        owners.append(entity)
        if r() < copy_p:
            x = r()
            for _ in range(1 if x < 0.75 else 2 if x < 0.95 else 3):
                dup = corrupt_person(person, r, c, emails)
                records.append({"id": "", "customer_id": customer_id, **dup})
                owners.append(entity)
        entity += 1
    return _finish("contact", "k", records[:n], owners[:n], rng)


def labelled_customers(
    n: int,
    *,
    seed: int = 0,
    locations: Sequence[str] = ("loc-1", "loc-2", "loc-3"),
    dup_rate: float = 0.2,
    corruption: Corruption | None = None,
    fleet_share: float = 0.1,
) -> LabelledData:
    """Customer records with known duplicates, for measuring a duplicate matcher.

    Distinct companies may share a name ("Johnson Tires" in two towns) but never an email
    address or a phone number. Duplicates stay in their location and get their own customer
    number (blank when the original's is blank), as duplicates that got past rule C2 do.

    Args:
        n: Number of records.
        seed: Same seed and arguments, same data (on every platform).
        locations: Location ids the customers are spread over.
        dup_rate: Share of records that are extra copies of a company already present (0 to 0.5).
        corruption: How copies differ from the original (default ``Corruption``).
        fleet_share: Share of FLEET customers (a third of them with a blank number).

    Returns:
        Records with keys ``id``, ``location_id``, ``kind`` and the NewCustomer text fields
        (``company_name``, ``customer_number``, address fields, ``email``, ``phone``,
        ``phone_extension``, ``fax``), and the truth.
    """
    _check_count(n)
    copy_p = _copy_probability(dup_rate)
    c = corruption or Corruption()
    locations = _locations(locations)
    rng = derive_rng(seed, "labelled-customers")
    r = rng.random
    factory = CustomerFactory(rng, locations, fleet_share=fleet_share, track_emails=True)
    records: list[dict[str, str]] = []
    owners: list[int] = []
    entity = 0
    while len(records) < n:
        draft = factory.new()
        location_id = locations[draft.location]
        records.append({"id": "", "location_id": location_id, **draft.fields()})
        owners.append(entity)
        if r() < copy_p:
            x = r()
            for _ in range(1 if x < 0.75 else 2 if x < 0.95 else 3):
                _, fields = corrupt_customer(draft, r, c, factory.emails)
                if draft.number:
                    fields["customer_number"] = factory.number(draft.location)
                records.append({"id": "", "location_id": location_id, **fields})
                owners.append(entity)
        entity += 1
    return _finish("customer", "c", records[:n], owners[:n], rng)


def _locations(locations: Sequence[str]) -> tuple[str, ...]:
    out = (locations,) if isinstance(locations, str) else tuple(locations)
    if not out:
        msg = "at least one location is needed"
        raise ValueError(msg)
    return out


def _finish(
    kind: Literal["contact", "customer"],
    prefix: str,
    records: list[dict[str, str]],
    owners: list[int],
    rng: random.Random,
) -> LabelledData:
    """Shuffle, number the records in their new order and build the truth."""
    order = list(range(len(records)))
    rng.shuffle(order)
    width = len(str(max(len(records) - 1, 0)))
    out: list[dict[str, str]] = []
    truth: dict[str, str] = {}
    for position, source in enumerate(order):
        record = records[source]
        record_id = f"{prefix}-{position:0{width}d}"
        record["id"] = record_id
        truth[record_id] = f"e-{owners[source]}"
        out.append(record)
    return LabelledData(kind=kind, records=out, truth=truth)
