"""Where a bulk load's time goes: CPU per customer by part, beside the floor.

Validation and record building are timed apart, on a sample of the same drafts, with no
database; the statements' time is read from the SQLAlchemy engine's cursor events during the
load (SQLite runs in the process, so its statements are CPU here; PostgreSQL's COPY bypasses
the events and its server works in other processes); the rest of the load's CPU, by difference,
is the unit of work and driver around them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import customerkit as ck
from customerkit.backends.sqlalchemy import _rows, _words
from customerkit.services import customers as service

_ADMIN = ck.Actor(user_id="bench", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
_SAMPLE = 50_000


class StatementTime:
    """CPU seconds of this process inside the driver's execute calls."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def before(self, *_: Any) -> None:
        self._started = time.process_time()

    def after(self, *_: Any) -> None:
        self.seconds += time.process_time() - self._started


@contextlib.contextmanager
def statement_clock(book: ck.Book) -> Iterator[StatementTime]:
    """Time the statements ``book`` runs in the block (none for the memory backend)."""
    clock = StatementTime()
    engine = getattr(book.store, "engine", None)
    if engine is None:
        yield clock
        return
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", clock.before)
    event.listen(engine, "after_cursor_execute", clock.after)
    try:
        yield clock
    finally:
        event.remove(engine, "before_cursor_execute", clock.before)
        event.remove(engine, "after_cursor_execute", clock.after)


class _AnyReference:
    """Reference data that knows every name (the drafts name only existing ones)."""

    def get_company_type(self, name: str) -> Any:
        return ck.CompanyType(name=name)

    def get_category(self, name: str) -> Any:
        return None


def _cpu(action: Any) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def parts_per_row(
    drafts: list[ck.NewCustomer], method: str = "load", backend: str = "sqlite"
) -> dict[str, float]:
    """CPU µs per customer of validation and of each record the load builds."""
    if method.startswith("load"):
        return _load_parts_per_row(drafts, backend)
    sample = drafts[:_SAMPLE]
    reference = service.ReferenceCache(_AnyReference())
    values: list[dict[str, Any]] = []
    validation = _cpu(lambda: values.extend(service.checked_draft(d, reference) for d in sample))
    now = datetime.now(UTC)
    built: list[tuple[ck.Customer, Any]] = []

    def build() -> None:
        for i, (draft, cleaned) in enumerate(zip(sample, values, strict=True)):
            built.append(
                service.created_customer(
                    draft,
                    cleaned,
                    customer_id=f"{i:032x}",
                    password_hash=None,
                    actor=_ADMIN,
                    source=None,
                    now=now,
                )
            )

    customers = _cpu(build)
    row = _cpu(lambda: [_rows.customer_row(c) for c, _ in built])
    history = _cpu(lambda: [_rows.dumps_changes(r.changes) for _, r in built])
    found = _cpu(lambda: [_words.word_rows(c) for c, _ in built])
    per = 1e6 / len(sample)
    return {
        "validation": validation * per,
        "customer": customers * per,
        "row": row * per,
        "history": history * per,
        "words": found * per,
    }


def _load_parts_per_row(drafts: list[ck.NewCustomer], backend: str) -> dict[str, float]:
    """``parts_per_row`` of ``load``: the chunk's columns and the rows built from them.

    The search words as ``backend``'s load writes them: a row per word on PostgreSQL, one
    staged row per customer on SQLite.
    """
    from customerkit.backends.sqlalchemy import _load_rows, _load_words, schema
    from customerkit.ports import NewCustomers
    from customerkit.services._created import new_changes

    sample = drafts[:_SAMPLE]
    reference = service.ReferenceCache(_AnyReference())
    values: list[dict[str, Any]] = []
    validation = _cpu(lambda: values.extend(service.checked_draft(d, reference) for d in sample))
    changes: list[dict[str, Any]] = []

    def columns() -> None:
        for draft, cleaned in zip(sample, values, strict=True):
            password = cleaned.pop("password")
            changes.append(new_changes(draft.kind, cleaned, password=password is not None))

    chunk_s = _cpu(columns)
    chunk = NewCustomers(
        location_id=_ADMIN.location_id,
        actor_id=_ADMIN.user_id,
        action="create",
        source=None,
        at=datetime.now(UTC),
        ids=[f"{i:032x}" for i in range(len(sample))],
        kinds=[d.kind for d in sample],
        values=values,
        password_hashes=[None] * len(sample),
        changes=changes,
    )
    sqlite: Any = SimpleNamespace(dialect=SimpleNamespace(name="sqlite"))
    names = tuple(column.name for column in schema.customers.columns)
    row = _cpu(lambda: _load_rows.customer_rows(sqlite, chunk, names))
    history = _cpu(lambda: _load_rows.history_rows(sqlite, chunk, range(len(sample))))
    stage = _load_words.WordStage()
    words = stage.word_rows if backend == "postgresql" else stage.staged_rows
    found = _cpu(lambda: words(chunk))
    per = 1e6 / len(sample)
    return {
        "validation": validation * per,
        "customer": chunk_s * per,
        "row": row * per,
        "history": history * per,
        "words": found * per,
    }


def profile_lines(result: dict[str, Any]) -> list[str]:
    """The CPU-per-customer table of one backend's load."""
    parts = result.get("parts_us")
    if not parts or "load_s" not in result:
        return []
    size = result["size"]
    total = result["load_cpu_s"] / size * 1e6
    records = parts["customer"] + parts["row"] + parts["history"] + parts["words"]
    names = (
        ("the chunk's columns (values, history changes)", "customer rows", "history rows",
         "search words (staged on SQLite)")
        if result.get("method", "create_many").startswith("load")
        else ("`Customer` and its history record", "its row", "history JSON", "search words")
    )  # fmt: skip
    statements = result.get("statements_s", 0.0) / size * 1e6
    rest = total - parts["validation"] - records - statements
    floor = result["base_load_s"] / size * 1e6
    backend = result["backend"]
    where = "in this process" if backend == "sqlite" else "client side; the server's work is apart"
    return [
        "",
        f"{backend}, {result.get('method', 'create_many')} of {size:,}: CPU per customer by part "
        f"(validation and records timed apart on {min(size, _SAMPLE):,} of the drafts):",
        "",
        "| part | µs per customer |",
        "| --- | ---: |",
        f"| validation, every rule of `create` | {parts['validation']:.1f} |",
        f"| records: {names[0]} {parts['customer']:.1f}, {names[1]} {parts['row']:.1f}, "
        f"{names[2]} {parts['history']:.1f}, {names[3]} {parts['words']:.1f} | {records:.1f} |",
        f"| SQL statements (CPU inside execute, {where}) | {statements:.1f} |",
        f"| the rest: unit of work, COPY, driver, by difference | {rest:.1f} |",
        f"| **all** (load CPU) | {total:.1f} |",
        f"| floor: the drafts' raw values stored plainly (wall) | {floor:.1f} |",
    ]
