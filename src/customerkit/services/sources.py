"""Searching, importing and refreshing customers from a DMS or another source (rules D1-D4)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from customerkit.errors import AlreadyImported, SourceError, ValidationError
from customerkit.model import (
    CUSTOMER_EDITABLE_FIELDS,
    Actor,
    Customer,
    NewCustomer,
    SearchField,
    SourceHit,
    SourceLink,
    SourceRecord,
)
from customerkit.policy import Action, Target
from customerkit.ports import CustomerSource
from customerkit.services._context import (
    Context,
    changes_between,
    checks_actors,
    customer_target,
    live_customer,
    retried,
    save_customer,
)
from customerkit.services._created import HISTORY_FIELDS
from customerkit.services.customers import CustomerService
from customerkit.validation import clean_customer_values, is_secret_name

log = logging.getLogger("customerkit.sources")

#: Customer fields a source may fill (never the login).
SOURCE_FIELDS = tuple(f for f in CUSTOMER_EDITABLE_FIELDS if f not in ("username", "password"))


def _split(record: SourceRecord) -> tuple[dict[str, Any], dict[str, str]]:
    """A record's data as customer fields, and the rest as ``extra``, without secrets.

    A column named like a secret (``password``, ``PIN``, ``api_token``) is dropped, never
    stored: the DMS's export is not the caller's to edit, so refusing it would refuse every
    record. The dropped columns are logged by name.
    """
    fields = {k: v for k, v in record.data.items() if k in SOURCE_FIELDS and k != "extra"}
    rest = {k: v for k, v in record.data.items() if k not in SOURCE_FIELDS}
    dropped = sorted(k for k in rest if isinstance(k, str) and is_secret_name(k))
    if dropped:
        log.warning("dropped %d secret-looking source columns: %s", len(dropped), dropped)
    return fields, {k: v for k, v in rest.items() if k not in dropped}


@checks_actors
@attrs.define
class SourceService:
    """``book.sources``: the external systems a book can search and import customers from."""

    _ctx: Context
    _customers: CustomerService
    _sources: dict[str, CustomerSource] = attrs.field(factory=dict)

    def register(self, source: CustomerSource) -> None:
        """Make a source known to the book (each location still has to enable it)."""
        if not isinstance(source, CustomerSource):
            raise SourceError("a source needs name, search() and fetch()", field="source")
        if not isinstance(source.name, str) or not source.name.strip():
            raise SourceError("a source needs a non-blank name", field="name")
        if source.name in self._sources:
            raise SourceError(f"a source named {source.name!r} is registered", field="name")
        self._sources[source.name] = source

    # Rule D2.
    @retried
    def enable(self, name: str, *, location_id: str, actor: Actor, enabled: bool = True) -> None:
        """Enable (or disable) a source for a location: DEALER_ADMIN only."""
        self._ctx.authorize(actor, Action.SOURCE_ENABLE, Target(location_id=location_id))
        self._get(name)
        with self._ctx.store.unit_of_work() as uow:
            uow.settings.set_source_enabled(name, location_id, enabled)
            uow.commit()
        log.info(
            "source %s %s at location %s", name, "enabled" if enabled else "disabled", location_id
        )

    def search(  # rule D3
        self, name: str, query: str, *, actor: Actor, field: SearchField = SearchField.ALL
    ) -> list[SourceHit]:
        """Search a source; each hit says whether it is a customer already."""
        source = self._enabled(name, actor)
        records = [_as_record(found) for found in source.search(query, field)]
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            hits = []
            for record in records:
                if record is None:
                    continue
                existing = uow.customers.find_by_source(name, record.external_id)
                if existing is not None and existing.location_id != actor.location_id:
                    existing = None  # another location's customer is not this one's
                customer_id = None if existing is None else existing.id
                hits.append(SourceHit(record=record, customer_id=customer_id))
        return hits

    @retried
    def import_customer(self, name: str, external_id: str, *, actor: Actor) -> Customer:
        """Create a customer from the source's data, unchanged; its source fields are read-only.

        Raises:
            AlreadyImported: the record is a customer already (refresh it instead).
            SourceError: the source is not enabled, or has no such record.
        """
        source = self._enabled(name, actor)
        record = self._fetch(source, external_id)
        with self._ctx.store.unit_of_work() as uow:
            existing = uow.customers.find_by_source(name, record.external_id)
        if existing is not None:
            visible = existing.location_id == actor.location_id
            raise AlreadyImported(existing.id if visible else None)
        fields, extra = _split(record)
        try:
            draft = NewCustomer(**fields, extra=extra)
        except TypeError as error:  # a required field missing from the record
            raise ValidationError({"company_name": "the source record has no name"}) from error
        link = SourceLink(
            source=name,
            external_id=record.external_id,
            last_synced_at=self._ctx.now(),
            fields=tuple(sorted(fields)),
        )
        return self._customers.create_many([draft], actor=actor, source=link)[0]

    @retried
    def refresh_customer(self, customer_id: str, *, actor: Actor) -> Customer:  # rule D4
        """Apply the source's current data to an imported customer and record the changes.

        A record gone from the source raises [`SourceError`][customerkit.SourceError] and changes
        nothing.
        """
        with self._ctx.store.unit_of_work() as uow:
            current = live_customer(uow, customer_id)
            self._ctx.authorize(actor, Action.SOURCE_USE, customer_target(current))
            link = current.source
            if link is None:
                raise SourceError("this customer was not imported from a source", field="source")
        source = self._enabled(link.source, actor)
        record = self._fetch(source, link.external_id)
        fields, extra = _split(record)
        with self._ctx.store.unit_of_work() as uow:
            current = live_customer(uow, customer_id)
            values: dict[str, Any] = {name: getattr(current, name) for name in SOURCE_FIELDS}
            values.update({name: "" for name in link.fields if name not in fields})
            values.update(fields)
            values["extra"] = {**current.extra, **extra}
            cleaned = clean_customer_values(
                values, current.kind, uow, self._ctx.config.phone_region
            )
            cleaned.pop("password")
            cleaned.pop("username")
            now = self._ctx.now()
            new_link = attrs.evolve(link, last_synced_at=now, fields=tuple(sorted(fields)))
            updated = attrs.evolve(
                current, **cleaned, source=new_link, updated_at=now, version=current.version + 1
            )
            save_customer(
                self._ctx,
                uow,
                current,
                updated,
                action="refresh",
                actor=actor,
                changes=changes_between(current, updated, HISTORY_FIELDS),
            )
            uow.commit()
        return updated

    def _get(self, name: str) -> CustomerSource:
        source = self._sources.get(name) if isinstance(name, str) else None
        if source is None:
            raise SourceError(f"no source named {name!r}; register it first", field="source")
        return source

    def _enabled(self, name: str, actor: Actor) -> CustomerSource:
        self._ctx.authorize(actor, Action.SOURCE_USE, Target(location_id=actor.location_id))
        source = self._get(name)
        with self._ctx.store.unit_of_work(read_only=True) as uow:
            enabled = uow.settings.source_enabled(name, actor.location_id)
        if not enabled:
            raise SourceError(
                f"source {name!r} is not enabled at this location; a dealer admin can enable it",
                field="source",
            )
        return source

    @staticmethod
    def _fetch(source: CustomerSource, external_id: str) -> SourceRecord:
        if not isinstance(external_id, str) or not external_id:
            raise ValidationError({"external_id": "pass the record's id in the source"})
        record = _as_record(source.fetch(external_id))
        if record is None:
            raise SourceError(
                f"source {source.name!r} no longer has record {external_id!r}; nothing changed",
                field="external_id",
            )
        return record


def _as_record(value: object) -> SourceRecord | None:
    """Accept a ``SourceRecord`` or a mapping with ``external_id`` and ``data`` from a source."""
    if value is None or isinstance(value, SourceRecord):
        return value
    if isinstance(value, Mapping) and "external_id" in value:
        return SourceRecord(external_id=str(value["external_id"]), data=value.get("data", {}))
    raise SourceError("the source returned something that is not a SourceRecord", field="source")
