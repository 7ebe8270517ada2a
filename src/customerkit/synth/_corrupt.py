"""How duplicates get typed differently: the ``Corruption`` rates and the contact corrupter."""

from __future__ import annotations

import attrs

from customerkit.synth._pieces import (
    NICKNAME_CHOICES,
    EmailBook,
    Person,
    Rand,
    email_typo,
    extra_whitespace,
    recase_email,
    reformat_phone,
    toggle_accents,
    typo,
)
from customerkit.text import fold


def _rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{attribute.name} must be a probability between 0 and 1, got {value!r}"
        raise ValueError(msg)


def _probability(default: float) -> float:
    return attrs.field(default=default, converter=float, validator=_rate)


@attrs.frozen(kw_only=True)
class Corruption:
    """Probabilities with which a duplicate record is typed differently from its original.

    Each rate applies independently to every duplicate (a duplicate can get several). The
    defaults resemble dealer data typed by hand; ``scaled`` makes data cleaner or messier, so
    a matcher tuned on one seed and set of rates can be judged on another.

    Attributes:
        typo: One slip (insert, delete, substitute, transpose a character) in a name.
        nickname: Given name replaced by a nickname or the formal name ("Bob" / "Robert").
        swap_names: First and last name swapped.
        initial: Given name shortened to its initial ("J." for "John").
        case: Names (or the company name) typed in upper or lower case.
        accents: Accents dropped or added ("García" / "Garcia").
        whitespace: A doubled inner space or a stray surrounding space in a text field.
        missing_email: Email left blank (only when the record keeps a phone).
        missing_phone: Phone left blank (only when the record keeps an email).
        phone_format: Phone typed in another format ("(303) 555-0142" / "303.555.0142").
        email_case: Email typed with other capitalisation ("John.Smith@Gmail.com").
        email_typo: One slip in the email's local part (labelled generators only, where the
            result is checked not to be another entity's address).
        abbreviation: Street type, direction, unit, "&"/"and" or job title abbreviated or
            spelled out ("Street" / "St", "Fleet Manager" / "Fleet Mgr").
        company_suffix: Legal suffix or branch city added, dropped or changed
            ("Miller Trucking LLC" / "Miller Trucking").
    """

    typo: float = _probability(0.25)
    nickname: float = _probability(0.15)
    swap_names: float = _probability(0.03)
    initial: float = _probability(0.03)
    case: float = _probability(0.1)
    accents: float = _probability(0.5)
    whitespace: float = _probability(0.1)
    missing_email: float = _probability(0.1)
    missing_phone: float = _probability(0.1)
    phone_format: float = _probability(0.5)
    email_case: float = _probability(0.15)
    email_typo: float = _probability(0.02)
    abbreviation: float = _probability(0.3)
    company_suffix: float = _probability(0.4)

    def scaled(self, factor: float) -> Corruption:
        """Every rate multiplied by ``factor`` (clipped to 1).

        Args:
            factor: 0 gives exact copies, 1 the same rates, 2 twice as messy.

        Returns:
            A new ``Corruption``.
        """
        if factor < 0:
            msg = f"factor must not be negative, got {factor!r}"
            raise ValueError(msg)
        values = attrs.asdict(self)
        return Corruption(**{name: min(1.0, rate * factor) for name, rate in values.items()})

    @classmethod
    def none(cls) -> Corruption:
        """No corruption at all: duplicates are exact copies."""
        return cls().scaled(0.0)


def corrupt_person(
    person: Person, r: Rand, c: Corruption, emails: EmailBook | None
) -> dict[str, str]:
    """A duplicate of ``person``'s contact fields, typed differently as ``c`` says.

    Email typos are applied only when ``emails`` tracks addresses and the result is free.
    """
    first, last = _names(person.first, person.last, r, c)
    email, phone = contact_points(person.email, person.phone, r, c, emails)
    title = person.title_text()
    if title and c.abbreviation and r() < c.abbreviation:
        title = person.title_text(short=not person.title_short)
    if c.whitespace and r() < c.whitespace:
        x = r()
        if x < 0.4:
            first = extra_whitespace(first, r)
        elif x < 0.8:
            last = extra_whitespace(last, r)
        elif title:
            title = extra_whitespace(title, r)
    return {"first_name": first, "last_name": last, "email": email, "phone": phone, "title": title}


def _names(first: str, last: str, r: Rand, c: Corruption) -> tuple[str, str]:
    if c.nickname and r() < c.nickname:
        choices = NICKNAME_CHOICES.get(fold(first))
        if choices:
            first = choices[int(r() * len(choices))]
    if c.accents and r() < c.accents:
        first = toggle_accents(first) or first
        last = toggle_accents(last) or last
    if c.initial and r() < c.initial:
        first = first[0] + ("." if r() < 0.5 else "")
    if c.typo and r() < c.typo:
        if len(first) > 2 and r() < 0.5:
            first = typo(first, r)
        else:
            last = typo(last, r)
    if c.swap_names and r() < c.swap_names:
        first, last = last, first
    if c.case and r() < c.case:
        if r() < 0.7:
            first, last = first.upper(), last.upper()
        else:
            first, last = first.lower(), last.lower()
    return first, last


def contact_points(
    email: str, phone: str, r: Rand, c: Corruption, emails: EmailBook | None
) -> tuple[str, str]:
    """Email and phone of a duplicate: recased, mistyped, reformatted or one of them blank.

    A blank is made only when the other one stays, so a duplicate keeps a way to reach it.
    """
    if email:
        if c.email_case and r() < c.email_case:
            email = recase_email(email, r)
        if emails is not None and c.email_typo and r() < c.email_typo:
            candidate = email_typo(email, r)
            if emails.claim(candidate):
                email = candidate
    text = phone
    if text and c.phone_format and r() < c.phone_format:
        text = reformat_phone(text, r)
    if text and email and c.missing_email and r() < c.missing_email:
        email = ""
    elif text and email and c.missing_phone and r() < c.missing_phone:
        text = ""
    return email, text
