"""A throwaway PostgreSQL server for tests, started from the local PostgreSQL binaries.

The server lives in a temporary folder, listens on a Unix socket only, runs with durability
off (it is thrown away), and is stopped and deleted afterwards. Set
``CUSTOMERKIT_TEST_POSTGRES_URL`` to use a running server instead; its user must be allowed
to create databases.

Plain functions for any test runner, and pytest fixtures built on them::

    # conftest.py
    from customerkit.testing.postgres import postgres_server_url, postgres_url  # noqa: F401

    def test_something(postgres_url):  # a new, empty database per test
        book = customerkit.open_book(postgres_url)

When no binaries are found the fixtures skip the test with a message, except under
``CI=true``, where a missing PostgreSQL is an error: CI must run these tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "ENV_URL",
    "PostgresUnavailable",
    "create_database",
    "drop_database",
    "find_postgres_bin",
    "new_database",
    "postgres_server",
    "postgres_server_url",
    "postgres_url",
]

#: Environment variable naming a running server to use instead of starting one.
ENV_URL = "CUSTOMERKIT_TEST_POSTGRES_URL"
# Stops the server and deletes its folder once the process that started it is gone, so a test
# run killed outright (SIGTERM, SIGKILL: no finally blocks run) leaves no server behind.
_REAPER = """
import os, shutil, subprocess, sys, time
owner, user, pg_ctl, data, folder = int(sys.argv[1]), *sys.argv[2:]
while True:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
stop = [pg_ctl, "-D", data, "-m", "immediate", "stop"]
subprocess.run(stop, capture_output=True, user=user or None)
shutil.rmtree(folder, ignore_errors=True)
"""
_SERVER_SETTINGS = (
    "listen_addresses = ''",
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "max_connections = 200",
    "shared_buffers = 128MB",
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries were found, or the server would not start."""


def in_ci() -> bool:
    """Whether we run in CI, where PostgreSQL tests must run, never skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: ``$PG_BIN``, ``pg_config``, or Debian's."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(  # noqa: S603 - a path found by shutil.which, no shell
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _server_user() -> str | None:
    """Who runs the server: initdb and postgres refuse to run as root."""
    if getattr(os, "geteuid", lambda: -1)() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable("running as root and found no unprivileged user to run PostgreSQL")


def _run(args: list[str], user: str | None) -> None:
    # Our own arguments (binaries found on disk, our temp folder); no shell involved.
    result = subprocess.run(args, capture_output=True, text=True, check=False, user=user)  # noqa: S603
    if result.returncode != 0:
        raise PostgresUnavailable(f"{Path(args[0]).name} failed: {result.stderr.strip()}")


def _folder(user: str | None) -> Path:
    # Unix socket paths are limited to ~100 bytes: keep the folder short.
    base = "/tmp" if Path("/tmp").is_dir() else None  # noqa: S108
    folder = Path(tempfile.mkdtemp(prefix="ck-pg-", dir=base))
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway server and yield an SQLAlchemy URL of its ``postgres`` database.

    Uses ``CUSTOMERKIT_TEST_POSTGRES_URL`` as is when it is set.

    Raises:
        PostgresUnavailable: no binaries were found, or the server would not start.
    """
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries found (install postgresql and postgresql-contrib, "
            f"set PG_BIN, or set {ENV_URL} to a running server)"
        )
    user = _server_user()
    folder = _folder(user)
    data = folder / "data"
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            user,
        )
        settings = [*_SERVER_SETTINGS, f"unix_socket_directories = '{folder}'"]
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n".join(settings) + "\n")
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
        _run([*pg_ctl, "-t", "60", "-l", str(folder / "server.log"), "start"], user)
        try:
            # Runs as we do (the server's user may not read our interpreter); it switches
            # user for pg_ctl only. Its own session: a Ctrl-C to the tests must not stop it.
            arguments = [str(os.getpid()), user or "", pg_ctl[0], str(data), str(folder)]
            reaper = subprocess.Popen(  # noqa: S603 - our own script and paths, no shell
                [sys.executable, "-c", _REAPER, *arguments],
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                yield f"postgresql+psycopg://postgres@/postgres?host={folder}"
            finally:
                reaper.kill()
                reaper.wait()
        finally:
            with contextlib.suppress(PostgresUnavailable):
                _run([*pg_ctl, "-m", "immediate", "stop"], user)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _execute(url: str, statement: str) -> None:
    """Run one statement outside a transaction (databases are created and dropped so)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database (with ``pg_trgm``) on the server; return its URL."""
    import sqlalchemy

    name = name or f"ck_{uuid.uuid4().hex[:16]}"
    _execute(server_url, f'CREATE DATABASE "{name}"')
    url = sqlalchemy.engine.make_url(server_url).set(database=name)
    _execute(url.render_as_string(hide_password=False), "CREATE EXTENSION IF NOT EXISTS pg_trgm")
    return url.render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    """Drop a database ``create_database`` made, closing its connections first."""
    import sqlalchemy

    name = sqlalchemy.engine.make_url(url).database
    _execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def new_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server (``create_database``), dropped when the block ends."""
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a throwaway server for the whole session (skips without PostgreSQL, unless CI)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as error:
            if in_ci():
                pytest.fail(f"PostgreSQL is required in CI: {error}", pytrace=False)
            pytest.skip(f"PostgreSQL tests skipped: {error}")
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """URL of a new, empty database on the session's server, dropped after the test."""
    with new_database(postgres_server_url) as url:
        yield url
