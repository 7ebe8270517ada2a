"""Field validation shared by every service: trim, refuse what no field may hold, check lengths.

Rule U4: surrounding whitespace is trimmed from every text field before validation and storage.
A ``FieldErrors`` collects the problems of one call so they are reported together (rule C1).
Messages name the field and never repeat its value. The cleaning of a whole customer (rules C1, C4,
U1) and of a contact (rule K1) lives here too, so creating, updating and importing clean alike.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import attrs

from customerkit import identity
from customerkit.errors import CustomerKitError, ValidationError
from customerkit.identity import check_password, clean_username
from customerkit.model import (
    CUSTOMER_ADDRESS_FIELDS,
    Category,
    CompanyType,
    CustomerKind,
    NewCustomer,
)
from customerkit.text import number_key

if TYPE_CHECKING:
    from customerkit.ports import UnitOfWork

T = TypeVar("T")
P = ParamSpec("P")

#: Words that make a column name a secret's (``password``, ``User PIN``, ``api_token``, ...).
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passcode",
        "passphrase",
        "pin",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "otp",
        "cvv",
        "hash",
        "salt",
    }
)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def is_secret_name(name: str) -> bool:
    """Whether a field name looks like a secret's: one of its words is in ``SECRET_WORDS``.

    Words are split at separators and case changes (``userPassword``, ``API_TOKEN``), and the
    whole name is tried joined too (``apikey``, ``api-key``).
    """
    words = [word.casefold() for word in _NAME_WORDS.findall(name)]
    return any(w in SECRET_WORDS for w in words) or "".join(words) in SECRET_WORDS


#: Longest value, in code points, of each text field.
MAX_LENGTH: dict[str, int] = {
    "company_name": 200,
    "customer_number": 64,
    "address_line1": 200,
    "address_line2": 200,
    "city": 100,
    "state": 100,
    "postal_code": 32,
    "country": 100,
    "email": 254,
    "phone": 64,
    "phone_extension": 16,
    "fax": 64,
    "first_name": 100,
    "last_name": 100,
    "title": 100,
    "company_type": 100,
    "category": 100,
    "one_time_case_id": 100,
    "extra": 1000,
}
DEFAULT_MAX_LENGTH = 200


class FieldErrors:
    """Collects field errors and raises them together as one ``ValidationError``."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        """Record a problem (the first one per field wins)."""
        self.errors.setdefault(field, message)

    def check(
        self, field: str, default: T, clean: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``clean(*args, **kwargs)``, or ``default`` with its error recorded against ``field``."""
        try:
            return clean(*args, **kwargs)
        except ValidationError as error:
            self.add(field, error.errors.get(field) or next(iter(error.errors.values())))
        except CustomerKitError as error:
            self.add(field, error.message)
        return default

    def raise_if_any(self) -> None:
        """Raise the collected errors, if any."""
        if self.errors:
            raise ValidationError(self.errors)


_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls other than tab, LF and CR (those are judged by the multiline rule).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile("[\t\n\r]")


def _bad_character(value: str) -> str | None:
    if _SURROGATE.search(value):
        return "contains a lone surrogate, which no text can hold"
    if "\x00" in value:
        return "contains a NUL character"
    if _CONTROL.search(value):
        return "contains a control character"
    return None


def clean_text(value: Any, field: str, *, multiline: bool = False) -> str:
    """Trim a text field and refuse values no field may hold (rule U4).

    Raises:
        ValidationError: not a string, a NUL, a lone surrogate, a control character (line breaks
            and tabs too unless ``multiline``), or longer than the field allows.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field: "must be text"})
    text: str = value.strip()
    # Printable text has no surrogate, control character, tab or line break: nothing to find.
    if not text.isprintable():
        problem = _bad_character(text)
        if problem is None and not multiline and _LINE_BREAK.search(text):
            problem = "must be on one line"
        if problem is not None:
            raise ValidationError({field: f"{problem}; remove it and try again"})
    limit = MAX_LENGTH.get(field, DEFAULT_MAX_LENGTH)
    if len(text) > limit:
        raise ValidationError({field: f"is longer than {limit} characters; shorten it"})
    return text


def clean_optional(value: Any, field: str) -> str | None:
    """Like ``clean_text``, but blank becomes ``None``."""
    return clean_text(value, field) or None


def clean_email_field(value: Any, field: str = "email") -> str:
    """Trim and validate an email (rule U4); blank stays blank."""
    return identity.clean_email(clean_text(value, field), field=field)


def clean_phone_field(value: Any, field: str = "phone") -> str:
    """Trim and validate a phone number (rule U4); blank stays blank."""
    return identity.clean_phone(clean_text(value, field), field=field)


# -- customers ---------------------------------------------------------------------------------

#: Customer fields cleaned as plain one-line text (the email and phones have their own rules).
CUSTOMER_TEXT_FIELDS: tuple[str, ...] = (
    "company_name",
    "customer_number",
    *CUSTOMER_ADDRESS_FIELDS,
    "phone_extension",
)
_CUSTOMER_TEXT_LIMITS = tuple(
    (name, MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH)) for name in CUSTOMER_TEXT_FIELDS
)


def _clean_extra(value: Any, errors: FieldErrors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.add("extra", "must be a mapping of field name to text")
        return {}
    cleaned: dict[str, str] = {}
    for key, item in value.items():
        name = errors.check("extra", "", clean_text, key, "extra")
        if name and is_secret_name(name):
            # Stored, it would show in exports, history and reprs: never keep one.
            errors.add(
                "extra",
                f"{name!r} looks like a secret (password, PIN, token); customerkit never "
                "stores secrets in extra: leave it out",
            )
        elif name:
            cleaned[name] = errors.check("extra", "", clean_text, item, "extra")
    return cleaned


def clean_customer_values(
    values: Mapping[str, Any], kind: CustomerKind, uow: UnitOfWork, region: str
) -> dict[str, Any]:
    """Validate every customer field at once (rules C1, C4, U1, U4); raise all errors together.

    Returns the cleaned values to store; ``password`` stays in clear text for the caller to
    hash and is ``None`` when not given.
    """
    return clean_customer_fields(values, kind, uow.reference)


def clean_customer_fields(
    values: Mapping[str, Any], kind: CustomerKind, reference: ReferenceLookup
) -> dict[str, Any]:
    """``clean_customer_values`` with the reference data looked up in ``reference``.

    Raises:
        ValidationError: with every invalid field at once.
    """
    errors = FieldErrors()
    out: dict[str, Any] = {}
    for name, limit in _CUSTOMER_TEXT_LIMITS:
        value = values.get(name)
        if type(value) is str:  # clean_text's own shortcut, without its call (14 a row)
            text = value.strip()
            if text.isprintable() and len(text) <= limit:
                out[name] = text
                continue
        out[name] = errors.check(name, "", clean_text, value, name)
    out["email"] = errors.check("email", "", clean_email_field, values.get("email"))
    for name in ("phone", "fax"):
        out[name] = errors.check(name, "", clean_phone_field, values.get(name), name)
    out["extra"] = _clean_extra(values.get("extra"), errors)
    if not out["company_name"]:
        errors.add("company_name", "is required; enter the company's name")
    if out["customer_number"] and not number_key(out["customer_number"]):
        errors.add("customer_number", "needs at least one letter or digit")
    elif not out["customer_number"] and kind is CustomerKind.LOCAL:
        errors.add("customer_number", "is required for a local customer; enter it as in your DMS")
    _clean_reference(values, reference, out, errors)
    _clean_login(values, out, errors)
    errors.raise_if_any()
    return out


class ReferenceLookup(Protocol):
    """The reference data validation needs (``uow.reference`` or ``ReferenceCache``)."""

    def get_company_type(self, name: str) -> CompanyType | None:
        """The company type with this name."""

    def get_category(self, name: str) -> Category | None:
        """The category with this name."""


class ReferenceCache:
    """Reference data looked up once per name: a bulk load names the same few again and again.

    A bulk create writes no reference data, so what it reads stays true for the whole call.
    """

    def __init__(self, reference: ReferenceLookup) -> None:
        self._reference = reference
        self._types: dict[str, CompanyType | None] = {}
        self._categories: dict[str, Category | None] = {}

    def get_company_type(self, name: str) -> CompanyType | None:
        """The company type with this name, read once."""
        if name not in self._types:
            self._types[name] = self._reference.get_company_type(name)
        return self._types[name]

    def get_category(self, name: str) -> Category | None:
        """The category with this name, read once."""
        if name not in self._categories:
            self._categories[name] = self._reference.get_category(name)
        return self._categories[name]


def _clean_reference(
    values: Mapping[str, Any], reference: ReferenceLookup, out: dict[str, Any], errors: FieldErrors
) -> None:
    company_type = errors.check(
        "company_type", None, clean_optional, values.get("company_type"), "company_type"
    )
    if company_type is not None and reference.get_company_type(company_type) is None:
        errors.add("company_type", "is not a known company type; add it to the reference data")
    category_name = errors.check(
        "category", None, clean_optional, values.get("category"), "category"
    )
    category = None if category_name is None else reference.get_category(category_name)
    if category_name is not None and category is None:
        errors.add("category", "is not a known category; add it to the reference data")
    for required in () if category is None else category.required_fields:
        value = out.get(required, out["extra"].get(required, ""))
        if not value:
            errors.add(required, f"is required by category {category_name!r}")
    out["company_type"], out["category"] = company_type, category_name


def _clean_login(values: Mapping[str, Any], out: dict[str, Any], errors: FieldErrors) -> None:
    username = values.get("username")
    out["username"] = None
    if isinstance(username, str):
        out["username"] = errors.check("username", None, clean_username, username)
    elif username is not None:
        errors.add("username", "must be text")
    password = values.get("password")
    out["password"] = password
    if password is not None:
        if not isinstance(password, str):
            errors.add("password", "must be text")
            out["password"] = None
        else:
            errors.check("password", None, check_password, password)
    if out["password"] is not None and out["username"] is None:
        errors.add("password", "needs a username to log in with; set a username too")


_DRAFT_FIELDS = tuple(field.name for field in attrs.fields(NewCustomer))
_draft_values = operator.attrgetter(*_DRAFT_FIELDS)


def checked_draft(draft: Any, reference: ReferenceLookup) -> dict[str, Any]:
    """The cleaned values of a draft (see ``clean_customer_values``)."""
    if not isinstance(draft, NewCustomer):
        raise ValidationError({"draft": "pass a NewCustomer"})
    if not isinstance(draft.kind, CustomerKind):
        raise ValidationError({"kind": "must be CustomerKind.LOCAL or CustomerKind.FLEET"})
    values = dict(zip(_DRAFT_FIELDS, _draft_values(draft), strict=True))
    return clean_customer_fields(values, draft.kind, reference)


# -- contacts ----------------------------------------------------------------------------------


def clean_contact_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a contact's names, title, email and phone at once (rules K1, U4).

    Raises:
        ValidationError: with every invalid field at once; a contact needs a first or last name.
    """
    errors = FieldErrors()
    out: dict[str, Any] = {}
    for name in ("first_name", "last_name", "title"):
        out[name] = errors.check(name, "", clean_text, values.get(name), name)
    out["email"] = errors.check("email", "", clean_email_field, values.get("email"))
    out["phone"] = errors.check("phone", "", clean_phone_field, values.get("phone"))
    if not (out["first_name"] or out["last_name"]):
        errors.add("last_name", "a contact needs a first or a last name")
    errors.raise_if_any()
    return out
