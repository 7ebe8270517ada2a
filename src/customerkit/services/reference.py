"""Reference data: company types and customer categories (rule C4)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from customerkit.errors import ValidationError
from customerkit.model import Actor, Category, CompanyType
from customerkit.policy import Action, Target
from customerkit.services._context import Context, checks_actors, retried
from customerkit.validation import clean_text


@checks_actors
@attrs.define
class ReferenceService:
    """``book.reference``: the lists customers pick their company type and category from."""

    _ctx: Context

    @retried
    def add_company_type(self, name: str, *, actor: Actor) -> CompanyType:
        """Add a company type (DEALER_ADMIN)."""
        self._ctx.authorize(actor, Action.REFERENCE_ADMIN, Target())
        company_type = CompanyType(name=_required_name(name))
        with self._ctx.store.unit_of_work() as uow:
            uow.reference.add_company_type(company_type)
            uow.commit()
        return company_type

    @retried
    def add_category(
        self, name: str, *, required_fields: Iterable[str] = (), actor: Actor
    ) -> Category:
        """Add a category; customers in it must fill ``required_fields`` (DEALER_ADMIN).

        A required field is a customer field (``"email"``, ``"postal_code"``, ...) or a key of the
        customer's ``extra`` mapping.
        """
        self._ctx.authorize(actor, Action.REFERENCE_ADMIN, Target())
        if isinstance(required_fields, str):
            raise ValidationError({"required_fields": "pass a list of field names"})
        fields = tuple(dict.fromkeys(clean_text(f, "required_fields") for f in required_fields))
        if "" in fields or {"username", "password"} & set(fields):
            raise ValidationError({"required_fields": "name customer fields or extra keys"})
        category = Category(name=_required_name(name), required_fields=fields)
        with self._ctx.store.unit_of_work() as uow:
            uow.reference.add_category(category)
            uow.commit()
        return category

    def company_types(self) -> list[CompanyType]:
        """Every company type, by name."""
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            return uow.reference.company_types()

    def categories(self) -> list[Category]:
        """Every category, by name."""
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            return uow.reference.categories()


def _required_name(name: str) -> str:
    cleaned = clean_text(name, "name")
    if not cleaned:
        raise ValidationError({"name": "is required"})
    return cleaned
