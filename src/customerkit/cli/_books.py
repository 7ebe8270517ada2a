"""Opening the book ``--db`` names, as a dealer admin of ``--location``."""

from __future__ import annotations

import re
from pathlib import Path

import customerkit as ck
from customerkit.book import MEMORY_URLS
from customerkit.cli._app import DEMO_DB, _Failure
from customerkit.services import accelerators


def book_url(db: str) -> str:
    """The URL of the book ``--db`` names: a plain path is an SQLite file, ``postgres://`` works.

    >>> book_url("dealer.db"), book_url("postgres://u@h/ck")
    ('sqlite:///dealer.db', 'postgresql+psycopg://u@h/ck')
    """
    if db in MEMORY_URLS:
        return "memory://"
    scheme, separator, rest = db.partition("://")
    if not separator:
        return f"sqlite:///{db}"
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return db


def _shown(db: str) -> str:
    """``--db`` as it may be printed: a password in the URL is masked."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", db)


def _sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL, or None (not SQLite, or an in-memory database)."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite" or not rest.startswith("/"):
        return None
    database = rest[1:].split("?", 1)[0]
    return None if database in ("", ":memory:") else Path(database)


def _open(db: str, *, create: bool = False) -> ck.Book:
    """Open the book; unless ``create``, a missing SQLite file is an error, never a new book."""
    url = book_url(db)
    path = _sqlite_file(url)
    if not create and path is not None and not path.exists():
        hint = "create one with 'customerkit import', or try 'customerkit demo'"
        if Path(DEMO_DB).exists():
            hint = f"for the demo's book pass --db {DEMO_DB}"
        raise _Failure(f"there is no book at {str(path)!r}; check --db, or {hint}")
    try:
        return ck.open_book(url)
    except ck.StorageError as error:  # the database failed or is not a book: say which one
        raise _Failure(f"cannot open the book {_shown(db)!r}: {error}") from error
    except (ck.CustomerKitError, ImportError):
        raise
    except Exception as error:  # SQLAlchemy refusing the URL or the driver failing
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise _Failure(f"cannot open the book {_shown(db)!r}: {first_line}") from error


def _admin(location: str, user: str = "cli") -> ck.Actor:
    return ck.Actor(user_id=user, role=ck.Role.DEALER_ADMIN, location_id=location)


def _customer_count(book: ck.Book, location: str) -> int:
    with book.store.unit_of_work(read_only=True) as uow:
        return accelerators.count(uow.customers, location)


def _require_location(book: ck.Book, location: str, db: str) -> None:
    if _customer_count(book, location) == 0:
        where = _shown(db)
        raise _Failure(f"location {location!r} has no customers in {where}; check --location")
