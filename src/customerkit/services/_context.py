"""What every service shares: the store, the clock, the policy, the configuration, history."""

from __future__ import annotations

import enum
import functools
import inspect
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import attrs

from customerkit.config import BookConfig
from customerkit.errors import NotFound, ValidationError
from customerkit.identity import PasswordHasher
from customerkit.merging import CONTACT_MERGE, CUSTOMER_MERGE, MergeKind
from customerkit.model import Actor, ChangeRecord, Contact, Customer, Role
from customerkit.policy import Action, Policy, Target
from customerkit.ports import Clock, Store, UnitOfWork

P = ParamSpec("P")
T = TypeVar("T")


def utc_now() -> datetime:
    """The default clock: now, aware, in UTC."""
    return datetime.now(UTC)


@attrs.define(kw_only=True)
class Context:
    """The collaborators of a book's services."""

    store: Store
    clock: Clock
    policy: Policy
    config: BookConfig
    hasher: PasswordHasher
    _running: threading.local = attrs.field(init=False, factory=threading.local)

    def run(self, work: Callable[[], T]) -> T:
        """Run a use-case through the store, which may run it again after a transient failure.

        A use-case called from inside another runs as part of the outer one: retrying it alone
        would repeat only half of the work.
        """
        if getattr(self._running, "active", False):
            return work()
        self._running.active = True
        try:
            return self.store.run(work)
        finally:
            self._running.active = False

    def now(self) -> datetime:
        """The clock's time, checked to be timezone-aware and converted to UTC."""
        moment = self.clock()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValidationError({"clock": "the clock must return timezone-aware datetimes"})
        return moment.astimezone(UTC)

    @staticmethod
    def new_id() -> str:
        """A new library-generated id, the same kind on every backend."""
        return uuid.uuid4().hex

    def authorize(self, actor: Actor, action: Action, target: Target) -> None:
        """Ask the policy; raises ``PermissionDenied``."""
        check_actor(actor)
        self.policy.authorize(actor, action, target)


def check_actor(actor: object) -> None:
    """Refuse anything but a well-formed ``Actor``, with ``ValidationError``.

    Every backend then answers a bad actor the same way, before anything is read or written.
    """
    if not isinstance(actor, Actor):
        raise ValidationError({"actor": "pass an Actor (user, role, location)"})
    errors = {}
    for name in ("user_id", "location_id"):
        value = getattr(actor, name)
        if not isinstance(value, str) or not value.strip():
            errors[f"actor.{name}"] = "must be non-empty text"
    # Typed, but callers may build an Actor of anything: read the fields untyped.
    role: Any = getattr(actor, "role")  # noqa: B009
    if not isinstance(role, Role):
        errors["actor.role"] = "must be a Role"
    fleet: Any = getattr(actor, "fleet_customer_id")  # noqa: B009
    if fleet is not None and (not isinstance(fleet, str) or not fleet.strip()):
        errors["actor.fleet_customer_id"] = "must be None or a customer id"
    if errors:
        raise ValidationError(errors)


def checks_actors(cls: type[T]) -> type[T]:
    """Check the ``actor`` of every public method of a service first (``check_actor``).

    A method whose ``actor`` defaults to ``None`` accepts ``None`` (the call is then made on
    the library's own behalf); any other value must be a well-formed actor.
    """
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(method):
            continue
        parameter = inspect.signature(method).parameters.get("actor")
        if parameter is not None:
            setattr(cls, name, _checking_actor(method, optional=parameter.default is None))
    return cls


def _checking_actor(method: Callable[..., T], *, optional: bool) -> Callable[..., T]:
    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> T:
        actor = kwargs.get("actor")
        if not (optional and actor is None):
            check_actor(actor)
        return method(*args, **kwargs)

    return checked


class _Service(Protocol):
    _ctx: Context


S = TypeVar("S", bound=_Service)


def retried(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Make a service method one retryable unit: the store may run all of it again.

    RELIABILITY decision 5: a serialization failure or deadlock rolls the whole unit of work
    back, so the method runs again from its first read. Every write use-case carries this;
    its only effects are in the store (and the clock, ids and hashing it may use again).
    Arguments that can be read only once (generators, iterators) are read into tuples before
    the first attempt, so that a second attempt sees the same arguments as the first.
    """

    @functools.wraps(method)
    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        args = tuple(_replayable(arg) for arg in args)  # type: ignore[assignment]
        kwargs = {name: _replayable(value) for name, value in kwargs.items()}  # type: ignore[assignment]
        return self._ctx.run(lambda: method(self, *args, **kwargs))

    return run


def _replayable(value: T) -> T:
    """``value``, or its items in a tuple when iterating it would use it up."""
    if isinstance(value, Iterator):
        return tuple(value)  # type: ignore[return-value]
    return value


def customer_target(customer: Customer) -> Target:
    """The policy's view of a customer."""
    return Target(
        location_id=customer.location_id, customer_id=customer.id, customer_kind=customer.kind
    )


def live_customer(uow: UnitOfWork, customer_id: str) -> Customer:
    """The live customer with this id, or ``NotFound`` (merged ids do not resolve here)."""
    customer = uow.customers.get(customer_id) if isinstance(customer_id, str) else None
    if customer is None or not customer.is_live:
        raise NotFound("customer", str(customer_id))
    return customer


def visible_customer(
    ctx: Context, uow: UnitOfWork, customer_id: str, actor: Actor, action: Action
) -> Customer:
    """A live customer the actor may act on; unknown and forbidden look different on purpose.

    ``NotFound`` for ids that do not exist, ``PermissionDenied`` for other locations' records:
    ids are random, so naming the denial leaks nothing useful.
    """
    customer = live_customer(uow, customer_id)
    ctx.authorize(actor, action, customer_target(customer))
    return customer


def changes_between(
    old: Customer | Contact | None, new: Customer | Contact, fields: Iterable[str]
) -> dict[str, tuple[Any, Any]]:
    """``{field: (old, new)}`` for the fields whose values differ."""
    changes: dict[str, tuple[Any, Any]] = {}
    for name in fields:
        before = None if old is None else getattr(old, name)
        after = getattr(new, name)
        if isinstance(after, Mapping):
            after = dict(after)
            before = None if before is None else dict(before)
        if before != after and not (old is None and after in ("", (), {}, None, False)):
            changes[name] = (before, after)
    return changes


def record_history(
    ctx: Context,
    uow: UnitOfWork,
    record: Customer | Contact,
    *,
    action: str,
    actor: Actor | None,
    changes: Mapping[str, tuple[Any, Any]],
    at: datetime | None = None,
) -> ChangeRecord:
    """Append the history entry of a change to one customer or contact (rule C5).

    The entry is filed under the record's customer, inside the caller's unit of work.
    """
    kind: MergeKind[Any] = CONTACT_MERGE if isinstance(record, Contact) else CUSTOMER_MERGE
    return uow.history.append(
        ChangeRecord(
            entity=kind.name,
            entity_id=record.id,
            customer_id=kind.customer_of(record),
            action=action,
            actor_id=None if actor is None else actor.user_id,
            at=at or ctx.now(),
            changes={name: (_plain(old), _plain(new)) for name, (old, new) in changes.items()},
        )
    )


def _plain(value: Any) -> Any:
    """History holds plain data: enums by their value."""
    return value.value if isinstance(value, enum.Enum) else value


def save_customer(
    ctx: Context,
    uow: UnitOfWork,
    current: Customer,
    updated: Customer,
    *,
    action: str,
    actor: Actor | None,
    changes: Mapping[str, tuple[Any, Any]],
) -> None:
    """Write a changed customer (version-guarded) and its history entry in one unit of work."""
    uow.customers.update(updated, expected_version=current.version)
    record_history(
        ctx,
        uow,
        updated,
        action=action,
        actor=actor,
        changes=changes,
        at=updated.updated_at,
    )
