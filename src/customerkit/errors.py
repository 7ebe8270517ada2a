"""The errors customerkit raises.

Every error derives from [`CustomerKitError`][customerkit.CustomerKitError], carries the
``field`` it is about (or ``None``) and a message a person can act on. Each also subclasses the
nearest built-in so generic handlers (``except ValueError``, ``except LookupError``) keep
working. Messages never contain personal data: they name fields and ids, never the values of
names, emails or phones.
"""

from __future__ import annotations

from collections.abc import Mapping


class CustomerKitError(Exception):
    """Base class of every error raised by customerkit.

    Attributes:
        field: The field the error is about, or ``None`` when it is about the whole call.
        message: What went wrong and what to do about it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message if self.field is None else f"{self.field}: {self.message}"


class ValidationError(CustomerKitError, ValueError):
    """One or more fields are invalid; ``errors`` maps every bad field to its message.

    All the problems of one call are reported together, so a form can show them at once.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        fields = sorted(self.errors)
        summary = "; ".join(f"{name}: {self.errors[name]}" for name in fields)
        super().__init__(summary, field=fields[0] if len(fields) == 1 else None)

    def __str__(self) -> str:
        return self.message


class QueryTooShort(ValidationError):  # rule S3
    """A search query has no word of at least three characters."""

    def __init__(self, message: str = "type at least 3 characters of one word") -> None:
        super().__init__({"query": message})


class NotFound(CustomerKitError, LookupError):
    """No live record with that id is visible to the actor."""

    def __init__(self, entity: str, entity_id: str) -> None:
        super().__init__(
            f"no {entity} with id {entity_id!r}; check the id, or whether it was deleted",
            field="id",
        )
        self.entity = entity
        self.entity_id = entity_id


class PermissionDenied(CustomerKitError, PermissionError):  # rules P1, P2
    """The actor's role or location does not allow this operation."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class ReadOnlyCustomer(CustomerKitError, PermissionError):  # rule D4
    """The fields came from an external source; change them there and refresh."""


class ImmutableField(CustomerKitError, ValueError):  # rules U1 (usernames), K2 (contact emails)
    """The field can never change once set (usernames, contact emails)."""


class ConflictError(CustomerKitError, ValueError):
    """Base class of errors about a value another record already holds."""


class DuplicateUsername(ConflictError):  # rule U1
    """Another customer already holds this username, compared canonically."""

    def __init__(self, username: str | None = None) -> None:
        super().__init__(
            "this username is taken (compared ignoring case and width); choose another, "
            "for example with suggest_username()",
            field="username",
        )
        #: The username that was refused, as the caller gave it (never the holder's), or
        #: ``None`` when the store does not say: a bulk call finds its row by it.
        self.username = username


class DuplicateCustomerNumber(ConflictError):  # rule C2
    """Another live customer of the location has this number."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(
            f"customer {existing_id} already has this customer number at this location "
            "(case and separators are ignored); use that customer or another number",
            field="customer_number",
        )
        self.existing_id = existing_id


class DuplicateExternalUser(ConflictError):  # rule K3
    """Another external-user contact already has this email."""

    def __init__(self, existing_id: str | None) -> None:
        holder = "another contact" if existing_id is None else f"contact {existing_id}"
        super().__init__(
            f"{holder} is already an external user with this email; "
            "an external user's email is unique across the book",
            field="email",
        )
        #: The holder's id, or ``None`` when it belongs to another location (rule P2).
        self.existing_id = existing_id


class AlreadyImported(ConflictError):  # rule D4
    """The source record is already a customer; refresh it instead."""

    def __init__(self, existing_id: str | None) -> None:
        where = (
            "a customer of another location"
            if existing_id is None
            else f"customer {existing_id}; use refresh_customer() to apply the source's data"
        )
        super().__init__(f"this source record is already {where}", field="external_id")
        #: The existing customer's id, or ``None`` when it belongs to another location (rule P2).
        self.existing_id = existing_id


class ConcurrentModification(CustomerKitError, RuntimeError):  # rule C5
    """The record changed since it was read; reload it and apply the change again."""

    def __init__(self, entity: str, entity_id: str | None = None) -> None:
        what = entity if entity_id is None else f"{entity} {entity_id}"
        super().__init__(
            f"{what} was changed by someone else since you read it; "
            "reload it and apply your change again",
            field="version",
        )


class StorageError(CustomerKitError, RuntimeError):
    """The database failed or refused the call; nothing of the call was written.

    The driver's error is chained as ``__cause__`` for the logs (with the statement's
    parameters hidden); the message names the kind of failure, never a stored value.

    Attributes:
        code: The database's error code when it gave one (PostgreSQL's SQLSTATE, SQLite's
            result code name such as ``SQLITE_IOERR``), else ``None``.
    """

    def __init__(
        self,
        message: str = "the database refused or failed the call; nothing was written. "
        "Check the database (disk, permissions, server log) and run the call again",
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message if code is None else f"{message} (database error {code})")
        self.code = code


class StorageUnavailable(StorageError, ConnectionError):
    """The connection to the database was lost or could not be made; nothing was written."""

    def __init__(self, *, code: str | None = None) -> None:
        super().__init__(
            "the database cannot be reached or dropped the connection; nothing was written. "
            "Check that the server is up, then run the call again",
            code=code,
        )


class BookBusy(StorageError, TimeoutError):
    """Another writer held the book longer than this call would wait; nothing was written.

    SQLite lets one writer in at a time and waits 5 s for the lock; run the call again.
    """

    def __init__(self) -> None:
        super().__init__(
            "the book is busy: another writer held it longer than the 5 s wait; nothing was "
            "written, run the call again"
        )


class MergeError(CustomerKitError, ValueError):  # rules M3, M4
    """A merge or unmerge cannot be carried out as asked."""


class DismissError(CustomerKitError, ValueError):
    """A pair cannot be marked "not a duplicate": a record with itself, or never compared.

    Contacts are compared only with contacts of the same customer, so only those pairs can be
    dismissed.
    """


class SourceError(CustomerKitError, RuntimeError):  # rules D1-D4
    """An external customer source is unknown, disabled, or gave unusable data."""


class CsvError(SourceError, ValueError):
    """A CSV file cannot be read safely: not UTF-8 text, malformed, cut off, or over a limit.

    The message names the file and the line; fix the file (or export it again) and retry.
    """


class SchemaError(StorageError):
    """The database is not a customerkit book this release can open (schema, foreign file)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class MatchingError(CustomerKitError, ValueError):
    """Records given to duplicate matching cannot be matched as given (kind, ids, columns)."""


class MatchConfigError(MatchingError):
    """A matching setting is out of range, or a saved configuration cannot be read."""
