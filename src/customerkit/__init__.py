"""customerkit: customer profiles and contacts for dealer software, kept right.

Search a customer in three keystrokes, catch duplicates, merge them reversibly, clean out
unused contacts, and keep usernames, customer numbers and DMS records consistent::

    import customerkit as ck

    book = ck.open_book()
    admin = ck.Actor(user_id="u1", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    book.customers.create(ck.NewCustomer(company_name="Johnson Tires - Denver",
                                         customer_number="C-1001"), actor=admin)
    book.customers.search("john den", actor=admin)

Optional integrations live in their own modules and never load with this one.
"""

from customerkit.book import Book, open_book
from customerkit.config import BookConfig
from customerkit.errors import (
    AlreadyImported,
    BookBusy,
    ConcurrentModification,
    ConflictError,
    CsvError,
    CustomerKitError,
    DismissError,
    DuplicateCustomerNumber,
    DuplicateExternalUser,
    DuplicateUsername,
    ImmutableField,
    MatchConfigError,
    MatchingError,
    MergeError,
    NotFound,
    PermissionDenied,
    QueryTooShort,
    ReadOnlyCustomer,
    SchemaError,
    SourceError,
    StorageError,
    StorageUnavailable,
    ValidationError,
)
from customerkit.identity import PasswordHasher
from customerkit.matching import (
    DuplicateGroup,
    DuplicatePair,
    DuplicateReport,
    Evaluation,
    Evidence,
    ExtraComparison,
    MatchConfig,
    Parameters,
    SimilarMatch,
    UnknownColumnsWarning,
    find_duplicates,
    fit,
)
from customerkit.model import (
    Actor,
    CaseRef,
    Category,
    ChangeRecord,
    CompanyType,
    Contact,
    Customer,
    CustomerKind,
    Dismissal,
    ManagedBy,
    MergeResult,
    NewContact,
    NewCustomer,
    Recipient,
    RecordStatus,
    Role,
    SearchField,
    SearchHit,
    SourceHit,
    SourceLink,
    SourceRecord,
    Survivorship,
    UnusedContacts,
    User,
)
from customerkit.policy import Action, Policy, RolePolicy, Target
from customerkit.ports import CustomerSource
from customerkit.sources import CsvSource, InMemorySource

__version__ = "0.1.0.dev0"

_SUBMODULES = frozenset({"convert", "synth", "testing"})


def __getattr__(name: str) -> object:
    """``ck.convert``, ``ck.synth`` and ``ck.testing`` without importing them explicitly."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"customerkit.{name}")
    msg = f"module 'customerkit' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "Action",
    "Actor",
    "AlreadyImported",
    "Book",
    "BookBusy",
    "BookConfig",
    "CaseRef",
    "Category",
    "ChangeRecord",
    "CompanyType",
    "ConcurrentModification",
    "ConflictError",
    "Contact",
    "CsvError",
    "CsvSource",
    "Customer",
    "CustomerKind",
    "CustomerKitError",
    "CustomerSource",
    "DismissError",
    "Dismissal",
    "DuplicateCustomerNumber",
    "DuplicateExternalUser",
    "DuplicateGroup",
    "DuplicatePair",
    "DuplicateReport",
    "DuplicateUsername",
    "Evaluation",
    "Evidence",
    "ExtraComparison",
    "ImmutableField",
    "InMemorySource",
    "ManagedBy",
    "MatchConfig",
    "MatchConfigError",
    "MatchingError",
    "MergeError",
    "MergeResult",
    "NewContact",
    "NewCustomer",
    "NotFound",
    "Parameters",
    "PasswordHasher",
    "PermissionDenied",
    "Policy",
    "QueryTooShort",
    "ReadOnlyCustomer",
    "Recipient",
    "RecordStatus",
    "Role",
    "RolePolicy",
    "SchemaError",
    "SearchField",
    "SearchHit",
    "SimilarMatch",
    "SourceError",
    "SourceHit",
    "SourceLink",
    "SourceRecord",
    "StorageError",
    "StorageUnavailable",
    "Survivorship",
    "Target",
    "UnknownColumnsWarning",
    "UnusedContacts",
    "User",
    "ValidationError",
    "__version__",
    "find_duplicates",
    "fit",
    "open_book",
]
