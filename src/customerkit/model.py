"""The domain model: frozen attrs records, knowing nothing about storage.

Records change through `attrs.evolve()`; services validate before they build one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs


class Role(enum.IntEnum):  # rule P1
    """Roles in ascending order of power."""

    FLEET_USER = 10
    STAFF = 20
    SERVICE_ADVISOR = 30
    SERVICE_MANAGER = 40
    DEALER_ADMIN = 50


class CustomerKind(enum.Enum):
    """A LOCAL customer belongs to the dealer; a FLEET customer manages its own contacts."""

    LOCAL = "LOCAL"
    FLEET = "FLEET"


class SearchField(enum.Enum):  # rule S1
    """Which fields a customer search looks at."""

    NAME = "NAME"
    CITY = "CITY"
    STATE = "STATE"
    NUMBER = "NUMBER"
    ALL = "ALL"


class RecordStatus(enum.Enum):
    """Life cycle of customers and contacts: merged and deleted records stay as tombstones."""

    ACTIVE = "ACTIVE"
    MERGED = "MERGED"
    DELETED = "DELETED"


class Survivorship(enum.Enum):  # rule K2 for the contact's email
    """How a merge picks a field's surviving value; configure per field in ``BookConfig``.

    ``MAIN`` (the default): the main's value, or when blank the first non-blank value of the
    others in the order given. ``MOST_RECENT``: the non-blank value of the most recently updated
    record. ``LONGEST``: the longest non-blank value. Blank values never win over non-blank
    ones, and a contact's email always follows ``MAIN`` (a merge only fills a blank email).
    Whatever rule picks the email and the phone, the union of the values that did not survive
    is kept in ``alternate_emails`` and ``alternate_phones`` (one per address or number).
    """

    MAIN = "main"
    MOST_RECENT = "most_recent"
    LONGEST = "longest"


class ManagedBy(enum.Enum):  # rule K1
    """Who manages a contact."""

    PROVIDER = "PROVIDER"
    FLEET = "FLEET"


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping that hashes: the free-form values of frozen records.

    ``Customer.extra``, history ``changes`` and merge ``provenance`` hold one, so a record read
    from a book cannot be changed behind the book's back and can go in a set. Nested mappings,
    lists and sets are frozen too (into ``FrozenMapping``, tuples and frozensets). It compares
    equal to a ``dict`` with the same items; ``dict(mapping)`` gives a mutable copy.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        if isinstance(items, FrozenMapping):
            self._data: dict[str, Any] = items._data  # already frozen all the way down
        else:
            data = dict(items) if items else {}
            if not _all_immutable(data.values()):
                data = {key: _frozen(value) for key, value in data.items()}
            self._data = data
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMapping):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == (other if isinstance(other, dict) else dict(other.items()))
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenMapping], tuple[dict[str, Any]]]:
        return type(self), (self._data,)


#: Types whose values never change: frozen as they are, without a look inside.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, datetime})


def _all_immutable(values: Iterable[Any]) -> bool:
    """Whether every value is immutable, or a tuple of immutable values (history's pairs).

    The fast path of a bulk load, which freezes a million history entries: no call per value.
    """
    for value in values:
        kind = type(value)
        if kind is tuple:
            if len(value) == 2 and type(value[0]) in _IMMUTABLE and type(value[1]) in _IMMUTABLE:
                continue
            if all(type(item) in _IMMUTABLE for item in value):
                continue
            return False
        if kind not in _IMMUTABLE:
            return False
    return True


def _frozen(value: Any) -> Any:
    """``value`` with every mapping, list and set in it made read-only."""
    kind = type(value)
    if kind in _IMMUTABLE or isinstance(value, enum.Enum):
        return value
    if kind is tuple and _all_immutable(value):
        return value
    if isinstance(value, Mapping):
        return FrozenMapping(value)
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, set | frozenset):
        return frozenset(_frozen(item) for item in value)
    return value


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return value if type(value) is FrozenMapping else FrozenMapping(value)


@attrs.frozen(kw_only=True)
class Actor:
    """Who performs a call: a user with a role at a location (fleet users also name their fleet)."""

    user_id: str
    role: Role
    location_id: str
    fleet_customer_id: str | None = None


@attrs.frozen(kw_only=True)
class NewCustomer:  # rule C1
    """What a caller supplies to create a customer."""

    company_name: str
    customer_number: str = ""
    kind: CustomerKind = CustomerKind.LOCAL
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    email: str = ""
    phone: str = ""
    phone_extension: str = ""
    fax: str = ""
    company_type: str | None = None
    category: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    extra: Mapping[str, str] = attrs.field(factory=FrozenMapping, converter=_frozen_mapping)


@attrs.frozen(kw_only=True)
class NewContact:
    """What a caller supplies to add a contact to a customer."""

    first_name: str
    last_name: str
    email: str = ""
    phone: str = ""
    title: str = ""
    external_user: bool = False
    one_time_case_id: str | None = None


@attrs.frozen(kw_only=True)
class SourceLink:  # rule D4
    """Where an imported customer came from."""

    source: str
    external_id: str
    last_synced_at: datetime
    #: The customer fields that came from the source: read-only locally.
    fields: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Customer:
    """A customer profile of one location."""

    id: str
    location_id: str
    kind: CustomerKind
    company_name: str
    customer_number: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    email: str = ""
    phone: str = ""
    phone_extension: str = ""
    fax: str = ""
    #: Emails and phones the customer had besides the current ones: a merge keeps the values
    #: that did not survive here, so none is lost (rule M3).
    alternate_emails: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    alternate_phones: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    company_type: str | None = None
    category: str | None = None
    username: str | None = None
    password_hash: str | None = attrs.field(default=None, repr=False)
    assigned_staff: tuple[str, ...] = ()
    source: SourceLink | None = None
    extra: Mapping[str, str] = attrs.field(factory=FrozenMapping, converter=_frozen_mapping)
    created_at: datetime
    updated_at: datetime
    version: int = 1
    status: RecordStatus = RecordStatus.ACTIVE
    merged_into: str | None = None

    @property
    def is_live(self) -> bool:
        """True unless the customer was deleted or merged away."""
        return self.status is RecordStatus.ACTIVE


#: A customer's address fields, in the order forms show them.
CUSTOMER_ADDRESS_FIELDS: tuple[str, ...] = (
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
)
#: How to reach a customer: the fields besides the address, in the order forms show them.
CUSTOMER_REACH_FIELDS: tuple[str, ...] = ("email", "phone", "phone_extension", "fax")
#: The customer fields that name reference data (rule C4).
CUSTOMER_REFERENCE_FIELDS: tuple[str, ...] = ("company_type", "category")
#: Customer fields a merge fills from the merged records where the main has none (rule M3).
CUSTOMER_FILL_FIELDS: tuple[str, ...] = (
    "customer_number",
    *CUSTOMER_ADDRESS_FIELDS,
    *CUSTOMER_REACH_FIELDS,
    *CUSTOMER_REFERENCE_FIELDS,
)
#: Customer fields a caller may set through ``update`` (everything else is managed).
CUSTOMER_EDITABLE_FIELDS: tuple[str, ...] = (
    "company_name",
    *CUSTOMER_FILL_FIELDS,
    "username",
    "password",
    "extra",
)


@attrs.frozen(kw_only=True)
class Contact:
    """A person to talk to at a customer."""

    id: str
    customer_id: str
    first_name: str
    last_name: str
    email: str = ""
    phone: str = ""
    #: Emails and phones kept from contacts merged into this one (rule M3); never recipients.
    alternate_emails: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    alternate_phones: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    title: str = ""
    managed_by: ManagedBy = ManagedBy.PROVIDER
    added_by_fleet: bool = False
    external_user: bool = False
    one_time_case_id: str | None = None
    last_communicated_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    status: RecordStatus = RecordStatus.ACTIVE
    merged_into: str | None = None

    @property
    def is_live(self) -> bool:
        """True unless the contact was deleted or merged away."""
        return self.status is RecordStatus.ACTIVE

    @property
    def full_name(self) -> str:
        """First and last name joined by a space."""
        return f"{self.first_name} {self.last_name}".strip()


#: Contact fields a caller may set through ``update`` (the email is not among them: rule K2).
CONTACT_EDITABLE_FIELDS: tuple[str, ...] = ("first_name", "last_name", "phone", "title")


@attrs.frozen(kw_only=True)
class User:
    """Dealer staff or a fleet user: for staff assignment, recipients and permissions."""

    id: str
    name: str
    email: str
    role: Role
    location_id: str
    has_login: bool = True
    fleet_customer_id: str | None = None


@attrs.frozen(kw_only=True)
class ChangeRecord:
    """One entry of the change history: who changed what, when, from which value to which.

    ``changes`` maps a field name to ``(old, new)``. Password values never appear: a password
    change is recorded as ``("", "(changed)")``.
    """

    entity: str
    entity_id: str
    customer_id: str
    action: str
    actor_id: str | None
    at: datetime
    changes: Mapping[str, tuple[Any, Any]] = attrs.field(
        factory=FrozenMapping, converter=_frozen_mapping
    )
    seq: int = 0


@attrs.frozen(kw_only=True)
class Dismissal:
    """A person's decision that two contacts, or two customers, are not duplicates.

    Duplicate detection never reports the pair again, nor puts the two in one group.

    Attributes:
        kind: ``"contact"`` or ``"customer"``.
        location_id: The location both records belong to.
        left_id: The smaller of the two ids.
        right_id: The larger.
        actor_id: Who decided.
        at: When.
    """

    kind: str
    location_id: str
    left_id: str
    right_id: str
    actor_id: str | None
    at: datetime


@attrs.frozen(kw_only=True)
class CompanyType:  # rule C4
    """Reference data: a kind of company a customer can be."""

    name: str


@attrs.frozen(kw_only=True)
class Category:  # rule C4
    """Reference data: a customer category, possibly requiring extra fields."""

    name: str
    required_fields: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class SearchHit:
    """One customer found by a search, with its score in [0, 1] and the field that matched."""

    customer: Customer
    score: float
    field: SearchField


@attrs.frozen
class CaseRef:
    """A service case, as far as recipients care: its id and whether it is open."""

    id: str
    open: bool = True


@attrs.frozen(kw_only=True)
class Recipient:  # rule K4
    """Someone a case note can be sent to: a contact or a fleet user."""

    email: str
    name: str
    contact_id: str | None = None
    user_id: str | None = None


@attrs.frozen(kw_only=True)
class UnusedContacts:  # rule K5
    """Contacts nobody talked to lately, and whether to prompt the actor to clean up."""

    contacts: tuple[Contact, ...]
    should_prompt: bool


def _as_str_dict(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen(kw_only=True)
class SourceRecord:
    """One customer as the source has it: its id there and its fields (customer field names)."""

    external_id: str
    data: Mapping[str, str] = attrs.field(converter=_as_str_dict)


@attrs.frozen(kw_only=True)
class SourceHit:
    """A source record found by a search; ``customer_id`` is set when it is a customer already."""

    record: SourceRecord
    customer_id: str | None = None


#: The kind of record a merge took: ``MergeResult[Contact]`` or ``MergeResult[Customer]``.
Merged = TypeVar("Merged", bound=Contact | Customer)


@attrs.frozen(kw_only=True)
class MergeResult(Generic[Merged]):  # rules M3, M4
    """What a merge did, or (with ``merge_id=None``) what a dry run would do.

    ``main`` is the merged main record (a ``Contact`` or a ``Customer``, as merged).
    ``provenance`` maps each field of the resulting main record to the id of the record its
    value came from.
    """

    merge_id: str | None
    main: Merged
    merged_ids: tuple[str, ...]
    provenance: Mapping[str, str] = attrs.field(factory=FrozenMapping, converter=_frozen_mapping)
