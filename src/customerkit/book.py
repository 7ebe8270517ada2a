"""A book: one customer database and the services that keep it right."""

from __future__ import annotations

from typing import Self

from customerkit.config import BookConfig
from customerkit.identity import PasswordHasher
from customerkit.policy import Policy, RolePolicy
from customerkit.ports import Clock, Store
from customerkit.services._context import Context, utc_now
from customerkit.services.contacts import ContactService
from customerkit.services.customers import CustomerService
from customerkit.services.history import HistoryService
from customerkit.services.reference import ReferenceService
from customerkit.services.sources import SourceService
from customerkit.services.users import UserService

MEMORY_URLS = ("", "memory", "memory://")


class Book:
    """Customers, contacts, users, history, reference data and sources over one store.

    Make one with [`open_book()`][customerkit.open_book]. Every method takes the acting
    [`Actor`][customerkit.Actor] and checks the book's policy.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = utc_now,
        policy: Policy | None = None,
        config: BookConfig | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self.config = config or BookConfig()
        self.policy: Policy = policy or RolePolicy()
        self._ctx = Context(
            store=store,
            clock=clock,
            policy=self.policy,
            config=self.config,
            hasher=hasher or PasswordHasher(),
        )
        self.customers = CustomerService(self._ctx)
        self.contacts = ContactService(self._ctx)
        self.users = UserService(self._ctx)
        self.history = HistoryService(self._ctx)
        self.reference = ReferenceService(self._ctx)
        self.sources = SourceService(self._ctx, self.customers)

    def close(self) -> None:
        """Release the store's connections and files."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_book(
    url: str | None = None,
    *,
    clock: Clock = utc_now,
    policy: Policy | None = None,
    config: BookConfig | None = None,
    hasher: PasswordHasher | None = None,
    share: bool = False,
) -> Book:
    """Open a book: in memory by default, or in a database named by an SQLAlchemy URL.

    ``"sqlite:///dealer.db"`` needs the ``sqlalchemy`` extra and ``"postgresql+psycopg://..."``
    the ``postgres`` extra; the schema is created on first open.

    Args:
        url: ``None`` or ``"memory://"`` for an embedded in-memory book, else a database URL.
        clock: Zero-argument callable returning an aware UTC ``datetime`` (inject one in tests).
        policy: Who may do what; defaults to [`RolePolicy`][customerkit.RolePolicy].
        config: Thresholds and settings; defaults to [`BookConfig`][customerkit.BookConfig].
        hasher: Password hasher; defaults to argon2id at OWASP's parameters.
        share: SQLite only: accept a file that already holds another application's tables and
            add the book's tables beside them (the file is switched to WAL mode). Without it
            such a file is refused with ``SchemaError`` and left untouched.
    """
    store: Store
    if url is None or url in MEMORY_URLS:
        from customerkit.backends.memory import MemoryStore

        store = MemoryStore()
    else:
        try:
            from customerkit.backends.sqlalchemy import SqlStore
        except ImportError as error:
            if error.name in ("sqlalchemy", "psycopg"):
                extra = "postgres" if "postgres" in url else "sqlalchemy"
                raise ImportError(
                    f"opening {url.split(':', 1)[0]!r} books needs the {extra!r} extra: "
                    f"pip install 'customerkit[{extra}]'",
                    name=error.name,
                ) from error
            raise
        store = SqlStore(url, share=share)
    return Book(store, clock=clock, policy=policy, config=config, hasher=hasher)
