"""PostgreSQL connections that the server dropped: a restart, an idle timeout, a killed backend.

After a server restart every pooled connection is dead. The first call used to take one from
the pool, fail with the driver's error, and only the next call worked. The pool now pings a
connection before handing it out when it sat idle a while or the server sent it anything (its
goodbye); a connection lost during a call gives ``StorageUnavailable``; a server that cannot be
reached at all gives it at ``open_book``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import customerkit as ck
from customerkit.backends.sqlalchemy import SqlStore, _pg_session
from customerkit.testing import FakeClock

pytestmark = pytest.mark.postgres

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
HASHER = ck.PasswordHasher.for_tests()


def terminate_other_backends(url: str) -> int:
    """What a server restart does to a database's connections: end every other session.

    Waits until those sessions have ended: ``pg_terminate_backend`` only signals a backend,
    which says goodbye to its client a moment later. A call made in that moment runs on a
    session still alive, about to end; a restart's calls come after its sessions ended.
    """
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    others = "datname = current_database() AND pid <> pg_backend_pid()"
    try:
        with engine.connect() as admin:
            pids = admin.execute(text(f"SELECT pid FROM pg_stat_activity WHERE {others}")).all()
            ended = [pid for (pid,) in pids]
            for pid in ended:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
            deadline = time.monotonic() + 10
            while admin.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": ended},
            ).scalar_one():
                admin.rollback()  # a fresh snapshot of the activity view
                assert time.monotonic() < deadline, "the terminated sessions did not end"
                time.sleep(0.01)
            return len(ended)
    finally:
        engine.dispose()


def test_first_calls_after_the_server_dropped_every_connection_succeed(postgres_url: str) -> None:
    """Reads and writes right after every pooled connection was killed work the first time."""
    book = ck.open_book(postgres_url, clock=FakeClock(), hasher=HASHER)
    try:
        customer = book.customers.create(
            ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
        )
        assert terminate_other_backends(postgres_url) >= 1
        assert book.customers.get(customer.id, actor=ADMIN) == customer
        assert terminate_other_backends(postgres_url) >= 1
        updated = book.customers.update(customer.id, {"city": "Denver"}, actor=ADMIN)
        assert updated.city == "Denver"
    finally:
        book.close()


def test_a_connection_lost_during_a_call_is_storage_unavailable(postgres_url: str) -> None:
    """A connection killed inside a unit of work gives ``StorageUnavailable``; nothing lands,
    and the book works again at the next call."""
    book = ck.open_book(postgres_url, clock=FakeClock(), hasher=HASHER)
    try:
        store = book.store
        assert isinstance(store, SqlStore)

        def call_losing_its_connection() -> None:
            with store.unit_of_work() as uow:
                uow.connection.execute(text("SELECT 1"))
                terminate_other_backends(postgres_url)
                uow.customers.get("x")

        with pytest.raises(ck.StorageUnavailable):
            call_losing_its_connection()
        assert book.customers.recent(actor=ADMIN) == []
    finally:
        book.close()


def test_an_unreachable_server_is_storage_unavailable(tmp_path: object) -> None:
    """No server behind the URL: ``open_book`` says so with ``StorageUnavailable``."""
    url = f"postgresql+psycopg://nobody@/customerkit?host={tmp_path}"
    with pytest.raises(ck.StorageUnavailable, match="cannot be reached"):
        ck.open_book(url, clock=FakeClock(), hasher=HASHER)


def test_search_settings_hold_on_every_connection_even_a_new_one(postgres_url: str) -> None:
    """The search settings are set when a connection is made (not per search), survive the
    pool's rollback, and hold again on the connection that replaces a dropped one."""
    store = SqlStore(postgres_url)
    show = text("SELECT current_setting('jit'), current_setting('plan_cache_mode')")
    expected = ("off", "force_custom_plan")
    try:
        for _ in range(2):
            with store.unit_of_work() as uow:
                assert tuple(uow.connection.execute(show).one()) == expected
            assert terminate_other_backends(postgres_url) >= 1
        with store.unit_of_work() as uow:
            parallel = uow.connection.execute(
                text("SELECT current_setting('max_parallel_workers_per_gather')")
            ).scalar_one()
            assert parallel == "0"
    finally:
        store.close()


def pings(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each ping of a pooled connection."""
    seen: list[int] = []
    do_ping = store.engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        seen.append(1)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(store.engine.dialect, "do_ping", counted)
    return seen


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-to-back units of work cost no round trip for a connection check."""
    store = SqlStore(postgres_url)
    try:
        seen = pings(store, monkeypatch)
        for _ in range(3):
            with store.unit_of_work() as uow:
                uow.connection.execute(text("SELECT 1"))
        assert seen == []
    finally:
        store.close()


def test_a_connection_idle_a_while_is_pinged_and_replaced_when_dead(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the idle limit a connection is pinged before use; a dead one is replaced."""
    store = SqlStore(postgres_url)
    try:
        seen = pings(store, monkeypatch)
        with store.unit_of_work() as uow:
            uow.connection.execute(text("SELECT 1"))
        monkeypatch.setattr(_pg_session, "PING_AFTER_IDLE_S", 0.0)
        with store.unit_of_work() as uow:
            uow.connection.execute(text("SELECT 1"))
        assert seen == [1]
        assert terminate_other_backends(postgres_url) >= 1
        with store.unit_of_work() as uow:
            assert uow.connection.execute(text("SELECT 1")).scalar_one() == 1
        assert len(seen) == 2
    finally:
        store.close()
