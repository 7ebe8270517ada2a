"""Customer drafts: company names, addresses, numbers, and their near-duplicates."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

import attrs
import numpy as np

from customerkit.model import CustomerKind, NewCustomer
from customerkit.synth import _data
from customerkit.synth._corrupt import Corruption, contact_points
from customerkit.synth._data import ACCENTED_SURNAMES
from customerkit.synth._pieces import (
    BUSINESS_WORDS,
    CITIES,
    FIRST_NAMES,
    FREE_MAIL_DOMAINS,
    N_PHONE_FORMATS,
    REGION_WORDS,
    SURNAMES,
    EmailBook,
    PhoneBook,
    Rand,
    Words,
    below,
    extra_whitespace,
    letters,
    scaled,
    to_list,
    toggle_accents,
    typo,
    words,
)

#: Customer number styles; each location uses one, so numbers never clash after normalising.
NUMBER_FORMATS: tuple[str, ...] = ("C-{}", "{}", "CU{:07d}", "D-{}", "{}A", "K{}")
_COUNTRIES = ("US",) * 12 + ("",) * 5 + ("USA",) * 2 + ("United States",)
_SUFFIXES = _data.LEGAL_SUFFIXES
_MAILBOXES = _data.COMPANY_MAILBOXES
_TLDS = _data.COMPANY_TLDS
_STREETS = _data.STREET_NAMES
_STREET_TYPES = _data.STREET_TYPES
_DIRECTIONS = _data.DIRECTIONS
_UNITS = _data.UNIT_LABELS


@attrs.define(eq=False)
class CustomerDraft:
    """A generated customer: the parts of its fields, so that a near-duplicate can vary them.

    ``direction``, ``street_type`` and ``unit`` index the street-part tables (-1: none); the
    ``short_*`` flags say whether they are abbreviated.
    """

    # Built with positional arguments on purpose (attrs' ``__init__`` takes them in this order):
    # a keyword call with 24 arguments costs several times as much, once per generated customer.
    location: int
    fleet: bool
    number: str
    core: str
    suffix: str
    comma: bool
    branch: str
    street_no: str
    direction: int
    short_dir: bool
    street: str
    street_type: int
    short_type: bool
    unit: int
    unit_no: str
    short_unit: bool
    city: str
    state: str
    postal_code: str
    country: str
    email: str
    phone: str
    extension: str
    fax: str

    def copy(self) -> CustomerDraft:
        """A shallow copy, for building a near-duplicate."""
        return attrs.evolve(self)

    def company_name(self) -> str:
        """The company name as typed: core, legal suffix, branch city."""
        name = self.core
        if self.suffix:
            name = f"{name}, {self.suffix}" if self.comma else f"{name} {self.suffix}"
        if self.branch:
            name = f"{name} - {self.branch}"
        return name

    def address_line1(self) -> str:
        """Street address, e.g. "1234 N Main St"."""
        kind = _STREET_TYPES[self.street_type][1 if self.short_type else 0]
        if self.direction >= 0:
            direction = _DIRECTIONS[self.direction][1 if self.short_dir else 0]
            return f"{self.street_no} {direction} {self.street} {kind}"
        return f"{self.street_no} {self.street} {kind}"

    def address_line2(self) -> str:
        """Suite or unit, e.g. "Suite 200", or blank."""
        if self.unit < 0:
            return ""
        label = _UNITS[self.unit][1 if self.short_unit else 0]
        return f"{label}{self.unit_no}" if label == "#" else f"{label} {self.unit_no}"

    def fields(self) -> dict[str, str]:
        """The NewCustomer text fields (plus ``kind``) as typed."""
        return {
            "kind": "FLEET" if self.fleet else "LOCAL",
            "company_name": self.company_name(),
            "customer_number": self.number,
            "address_line1": self.address_line1(),
            "address_line2": self.address_line2(),
            "city": self.city,
            "state": self.state,
            "postal_code": self.postal_code,
            "country": self.country,
            "email": self.email,
            "phone": self.phone,
            "phone_extension": self.extension,
            "fax": self.fax,
        }

    def new_customer(self) -> NewCustomer:
        """The draft as a ``customerkit.model.NewCustomer``."""
        return new_customer(self.fields())


def new_customer(fields: Mapping[str, str]) -> NewCustomer:
    """A ``customerkit.model.NewCustomer`` of text fields as ``CustomerDraft.fields`` gives them."""
    return NewCustomer(
        company_name=fields["company_name"],
        customer_number=fields["customer_number"],
        kind=CustomerKind.FLEET if fields["kind"] == "FLEET" else CustomerKind.LOCAL,
        address_line1=fields["address_line1"],
        address_line2=fields["address_line2"],
        city=fields["city"],
        state=fields["state"],
        postal_code=fields["postal_code"],
        country=fields["country"],
        email=fields["email"],
        phone=fields["phone"],
        phone_extension=fields["phone_extension"],
        fax=fields["fax"],
    )


def _thresholds(shares: Sequence[float]) -> Words:
    """Cumulative shares as 32-bit thresholds, for ``np.searchsorted`` over raw draws."""
    total = sum(shares)
    acc = 0.0
    out: list[int] = []
    for share in shares:
        acc += share / total
        out.append(round(acc * 2**32))
    out[-1] = 2**32
    return np.array(out, dtype=np.uint64)


def _choose(rng: random.Random, thresholds: Words) -> Words:
    """Per record the index of the share its draw falls in."""
    return np.searchsorted(thresholds, words(rng), side="right").astype(np.uint64)


_PATTERNS = _thresholds((0.55, 0.12, 0.05, 0.05, 0.03, 0.07, 0.05, 0.08))
_EMAIL_STYLES = _thresholds((0.6, 0.25, 0.15))  # company domain, free mail, none
_NEG = np.int64(-1)


class CustomerFactory:
    """Makes distinct customers spread over locations, each location anchored in a home state.

    Random choices are drawn a block of customers at a time (see ``words``), which keeps the
    per-customer cost to list look-ups and string joins.
    """

    def __init__(
        self,
        rng: random.Random,
        locations: Sequence[str],
        *,
        fleet_share: float,
        blank_fleet_number_share: float = 0.3,
        track_emails: bool = False,
    ) -> None:
        if not locations:
            msg = "at least one location is needed"
            raise ValueError(msg)
        if not 0.0 <= fleet_share <= 1.0:
            msg = f"fleet_share must be between 0 and 1, got {fleet_share!r}"
            raise ValueError(msg)
        self._rng = rng
        self.locations = tuple(locations)
        self.fleet_share = fleet_share
        self.blank_fleet_number_share = blank_fleet_number_share
        self.emails = EmailBook(track=track_emails)
        self.phones = PhoneBook(rng)
        self._location_shares = _thresholds([1.0 / (1.0 + 0.3 * i) for i in range(len(locations))])
        hubs = list(_data.HUB_STATES)
        rng.shuffle(hubs)
        flat: list[int] = []
        offsets: list[int] = []
        sizes: list[int] = []
        for i in range(len(self.locations)):
            home = [k for k, city in enumerate(CITIES) if city[1] == hubs[i % len(hubs)]]
            offsets.append(len(flat))
            sizes.append(len(home))
            flat.extend(home)
        flat.append(0)  # keeps the index in range for a location without home cities
        self._home_cities = np.array(flat, dtype=np.uint64)
        self._home_offsets = np.array(offsets, dtype=np.uint64)
        self._home_sizes = np.array(sizes, dtype=np.uint64)
        self._next_number = [100_000 + rng.randrange(900) for _ in self.locations]
        self._rows = self._draw()

    def number(self, location: int) -> str:
        """The next customer number of a location (unique there, in its location's style)."""
        value = self._next_number[location]
        self._next_number[location] = value + 1
        return NUMBER_FORMATS[location % len(NUMBER_FORMATS)].format(value)

    def _draw(self) -> Iterator[tuple[int, ...]]:
        rng = self._rng
        one, two, none = np.uint64(1), np.uint64(2), _NEG
        while True:
            loc = _choose(rng, self._location_shares)
            fleet = below(rng, self.fleet_share)
            kind = np.where(fleet, np.where(below(rng, self.blank_fleet_number_share), 2, 1), 0)
            size = self._home_sizes[loc]
            home = self._home_cities[
                self._home_offsets[loc] + ((words(rng) * size) >> np.uint64(32))
            ]
            city = np.where(below(rng, 0.65) & (size > 0), home, scaled(rng, len(CITIES)))
            zip2 = scaled(rng, 100)
            plus4 = np.where(below(rng, 0.1), scaled(rng, 10_000).astype(np.int64), none)
            country = scaled(rng, len(_COUNTRIES))
            surname = scaled(rng, len(SURNAMES)) * two + below(rng, 0.1)
            word = scaled(rng, len(BUSINESS_WORDS))
            pattern = _choose(rng, _PATTERNS)
            aux = words(rng)
            suffix = np.where(
                below(rng, 0.35),
                (scaled(rng, len(_SUFFIXES)) * two + below(rng, 0.3)).astype(np.int64),
                np.where(below(rng, 0.12), -2, none),
            )
            street_no = (((words(rng) * words(rng)) >> np.uint64(32)) * np.uint64(19_999)) >> (
                np.uint64(32)
            )
            direction = np.where(
                below(rng, 0.15),
                (scaled(rng, len(_DIRECTIONS)) * two + below(rng, 0.7)).astype(np.int64),
                none,
            )
            street = scaled(rng, len(_STREETS))
            street_type = scaled(rng, len(_STREET_TYPES)) * two + below(rng, 0.7)
            unit = np.where(
                below(rng, 0.15),
                (scaled(rng, len(_UNITS)) * two + below(rng, 0.5)).astype(np.int64),
                none,
            )
            unit_no = scaled(rng, 400) + one
            email_style = _choose(rng, _EMAIL_STYLES)
            mailbox = scaled(rng, len(_MAILBOXES))
            tld = scaled(rng, len(_TLDS))
            free = scaled(rng, len(FREE_MAIL_DOMAINS))
            no_phone = below(rng, 0.05)
            fmt = scaled(rng, N_PHONE_FORMATS)
            extension = np.where(below(rng, 0.12), scaled(rng, 390) + np.uint64(10), 0)
            fax = np.where(below(rng, 0.15), scaled(rng, N_PHONE_FORMATS).astype(np.int64), none)
            columns = (
                loc, kind, city, zip2, plus4, country, surname, word, pattern, aux,
                suffix, street_no, direction, street, street_type, unit, unit_no, email_style,
                mailbox, tld, free, no_phone, fmt, extension, fax,
            )  # fmt: skip
            yield from zip(*(to_list(column) for column in columns), strict=True)

    def new(self) -> CustomerDraft:
        """A fresh customer at a random location (earlier locations a little more often)."""
        (loc, kind, city_index, zip2, plus4, country, surname, word, pattern, aux,
         suffix, street_no, direction, street, street_type, unit, unit_no, email_style,
         mailbox, tld, free, no_phone, fmt, extension, fax) = next(self._rows)  # fmt: skip
        city, state, zip3, area = CITIES[city_index]
        core, slug = _company(city, surname, word, pattern, aux)
        email = ""
        if email_style == 0:
            email = self.emails.company(slug, _MAILBOXES[mailbox], None, _TLDS[tld])
        elif email_style == 1:
            email = self.emails.company(slug, "", FREE_MAIL_DOMAINS[free], "")
        phone = ""
        if not no_phone or not email:
            phone = self.phones.new(area, fmt)
        return CustomerDraft(
            loc,  # location
            kind != 0,  # fleet
            self.number(loc) if kind != 2 else "",  # number
            core,  # core
            _SUFFIXES[suffix >> 1] if suffix >= 0 else "",  # suffix
            suffix >= 0 and bool(suffix & 1),  # comma
            city if suffix == -2 else "",  # branch
            str(1 + street_no),  # street_no
            direction >> 1 if direction >= 0 else -1,  # direction
            bool(direction & 1),  # short_dir
            _STREETS[street],  # street
            street_type >> 1,  # street_type
            bool(street_type & 1),  # short_type
            unit >> 1 if unit >= 0 else -1,  # unit
            str(unit_no),  # unit_no
            bool(unit & 1),  # short_unit
            city,  # city
            state,  # state
            f"{zip3}{zip2:02d}" if plus4 < 0 else f"{zip3}{zip2:02d}-{plus4:04d}",  # postal_code
            _COUNTRIES[country],  # country
            email,  # email
            phone,  # phone
            str(extension) if phone and extension else "",  # extension
            self.phones.new(area, fax) if fax >= 0 else "",  # fax
        )


def _company(
    city: str, surname_code: int, word_index: int, pattern: int, aux: int
) -> tuple[str, str]:
    """A company name's core and its email slug (letters only).

    ``aux`` is a raw 32-bit draw whose low and high halves feed the pattern's extra choices.
    """
    surname = SURNAMES[surname_code >> 1]
    if surname_code & 1:
        surname = ACCENTED_SURNAMES.get(surname, surname)
    word = BUSINESS_WORDS[word_index]
    low, high, flag = aux & 0xFFFF, aux >> 16, aux & 1
    if pattern == 0:
        core, slug = f"{surname} {word}", letters(surname) + letters(word)
    elif pattern == 1:
        region = REGION_WORDS[(low * len(REGION_WORDS)) >> 16]
        core, slug = f"{region} {word}", letters(region) + letters(word)
    elif pattern == 2:
        core, slug = f"{surname} & Sons {word}", letters(surname) + "sons" + letters(word)
    elif pattern == 3:
        other = SURNAMES[(low * len(SURNAMES)) >> 16]
        core, slug = f"{surname} & {other} {word}", letters(surname) + letters(other)
    elif pattern == 4:
        core = f"{surname} {'Bros' if flag else 'Brothers'} {word}"
        slug = letters(surname) + "bros"
    elif pattern == 5:
        core, slug = f"{city} {word}", letters(city) + letters(word)
    elif pattern == 6:
        a = letters(FIRST_NAMES[(low * len(FIRST_NAMES)) >> 16])[:1].upper() or "A"
        b = letters(SURNAMES[(high * len(SURNAMES)) >> 16])[:1].upper() or "B"
        core = f"{a}&{b} {word}" if flag else f"{a}{b} {word}"
        slug = (a + b).lower() + letters(word)
    else:
        first = FIRST_NAMES[(low * len(FIRST_NAMES)) >> 16]
        core, slug = f"{first} {surname}", letters(first) + letters(surname)
    return core, slug


def corrupt_customer(
    d: CustomerDraft, r: Rand, c: Corruption, emails: EmailBook | None
) -> tuple[CustomerDraft, dict[str, str]]:
    """A near-duplicate of ``d`` (same company, typed differently) and its fields.

    The caller gives the duplicate its own customer number.
    """
    dup = _corrupt_parts(d, r, c)
    fields = dup.fields()
    name = fields["company_name"]
    if c.case and r() < c.case:
        x = r()
        name = name.upper() if x < 0.6 else name.lower() if x < 0.8 else name.title()
        if r() < 0.3:
            fields["city"] = fields["city"].upper()
    if c.whitespace and r() < c.whitespace:
        if r() < 0.7:
            name = extra_whitespace(name, r)
        else:
            fields["address_line1"] = extra_whitespace(fields["address_line1"], r)
    fields["company_name"] = name
    email, phone = contact_points(fields["email"], dup.phone, r, c, emails)
    fields["email"] = email
    fields["phone"] = phone
    if not phone:
        fields["phone_extension"] = ""
    return dup, fields


def _corrupt_parts(d: CustomerDraft, r: Rand, c: Corruption) -> CustomerDraft:
    """Name suffix, abbreviations, typos and accents changed on a copy of ``d``."""
    dup = d.copy()
    if c.company_suffix and r() < c.company_suffix:
        if dup.suffix:
            dup.suffix = "" if r() < 0.7 else _SUFFIXES[int(r() * len(_SUFFIXES))]
        elif dup.branch:
            dup.branch = ""
        else:
            dup.suffix = _SUFFIXES[int(r() * len(_SUFFIXES))]
            dup.comma = r() < 0.3
    if c.abbreviation and r() < c.abbreviation:
        dup.short_type = not dup.short_type
        dup.short_dir = not dup.short_dir
        dup.short_unit = not dup.short_unit
        if " & " in dup.core and r() < 0.5:
            dup.core = dup.core.replace(" & ", " and ", 1)
    if c.typo and r() < c.typo:
        if r() < 0.75:
            dup.core = typo(dup.core, r)
        else:
            dup.street = typo(dup.street, r)
    if c.accents and r() < c.accents:
        dup.core = _toggle_core_accents(dup.core)
    return dup


def _toggle_core_accents(core: str) -> str:
    words = core.split(" ")
    for i, word in enumerate(words):
        other = toggle_accents(word)
        if other is not None:
            words[i] = other
            break
    return " ".join(words)
