"""The contract suite: every rule of the SPEC, run against any backend.

Subclass ``BookContract`` (or one of its parts, such as ``SearchContract``) in a test module
and define ``make_book(self, clock)`` returning an empty book on the store under test; see
``customerkit.testing``. Test names cite the rule they check.
"""

from __future__ import annotations

from customerkit.testing.contract._base import ContractBase, MakeBook
from customerkit.testing.contract.contacts import ContactsContract
from customerkit.testing.contract.customers import CustomersContract
from customerkit.testing.contract.dismissals import DismissalsContract
from customerkit.testing.contract.duplicates import DuplicatesContract
from customerkit.testing.contract.entry_points import EntryPointsContract
from customerkit.testing.contract.export import ExportContract
from customerkit.testing.contract.permissions import PermissionsContract
from customerkit.testing.contract.search import SearchContract
from customerkit.testing.contract.sources import SourcesContract
from customerkit.testing.contract.usernames import UsernamesContract

__all__ = [
    "BookContract",
    "ContactsContract",
    "ContractBase",
    "CustomersContract",
    "DismissalsContract",
    "DuplicatesContract",
    "EntryPointsContract",
    "ExportContract",
    "MakeBook",
    "PermissionsContract",
    "SearchContract",
    "SourcesContract",
    "UsernamesContract",
]


class BookContract(
    CustomersContract,
    EntryPointsContract,
    UsernamesContract,
    SearchContract,
    PermissionsContract,
    ContactsContract,
    SourcesContract,
    ExportContract,
    DuplicatesContract,
    DismissalsContract,
):
    """The whole contract: every rule, as every shipped backend passes it.

    Subclass it in a test module and give it ``make_book``::

        class TestMyStore(BookContract):
            def make_book(self, clock):
                return customerkit.Book(
                    MyStore(), clock=clock, hasher=customerkit.PasswordHasher.for_tests()
                )
    """
