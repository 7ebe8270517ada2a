"""Dealer staff and fleet users (staff assignment, recipients, permissions: rules C7, K4, P1)."""

from __future__ import annotations

import builtins

import attrs

from customerkit.errors import NotFound, ValidationError
from customerkit.model import Actor, Role, User
from customerkit.policy import Action, Target
from customerkit.services._context import Context, checks_actors, retried
from customerkit.validation import FieldErrors, clean_email_field, clean_text


@checks_actors
@attrs.define
class UserService:
    """``book.users``: add and look up the people who use the dealer system."""

    _ctx: Context

    @retried
    def add(self, user: User, *, actor: Actor) -> User:
        """Add a user to the actor's location (DEALER_ADMIN only)."""
        if not isinstance(user, User):
            raise ValidationError({"user": "pass a User"})
        self._ctx.authorize(actor, Action.USER_ADMIN, Target(location_id=user.location_id))
        errors = FieldErrors()
        user_id = errors.check("id", "", clean_text, user.id, "id")
        name = errors.check("name", "", clean_text, user.name, "name")
        email = errors.check("email", "", clean_email_field, user.email)
        if not user_id:
            errors.add("id", "is required")
        role: object = user.role
        if not isinstance(role, Role):
            errors.add("role", "must be a Role")
        if user.role is Role.FLEET_USER and not user.fleet_customer_id:
            errors.add("fleet_customer_id", "a fleet user needs the id of its fleet customer")
        errors.raise_if_any()
        cleaned = attrs.evolve(user, id=user_id, name=name, email=email)
        with self._ctx.store.unit_of_work() as uow:
            uow.users.add(cleaned)
            uow.commit()
        return cleaned

    def get(self, user_id: str, *, actor: Actor) -> User:
        """The user with this id, if of the actor's location."""
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            user = uow.users.get(user_id) if isinstance(user_id, str) else None
        if user is None or user.location_id != actor.location_id:
            raise NotFound("user", str(user_id))
        self._ctx.authorize(actor, Action.CUSTOMER_READ, Target(location_id=user.location_id))
        return user

    def list(self, *, actor: Actor) -> builtins.list[User]:
        """Users of the actor's location, by id."""
        self._ctx.authorize(actor, Action.CUSTOMER_READ, Target(location_id=actor.location_id))
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            return uow.users.for_location(actor.location_id)
