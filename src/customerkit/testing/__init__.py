"""Testing helpers shipped with customerkit (extra ``testing``).

* [`FakeClock`][customerkit.testing.FakeClock]: an injectable clock you move by hand.
* `customerkit.testing.contract`: the contract suite every backend passes. To run it against
  your own store, subclass ``BookContract`` in a test module and give it ``make_book``::

      import customerkit as ck
      from customerkit.testing.contract import BookContract


      class TestMyStore(BookContract):
          def make_book(self, clock):
              return ck.Book(MyStore(), clock=clock, hasher=ck.PasswordHasher.for_tests())

* `customerkit.testing.strategies`: hypothesis strategies for customers, contacts, usernames
  and search texts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock for tests: returns a fixed aware UTC time until moved with `advance()`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 15, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by ``timedelta(**delta)``; return the new time."""
        self.now += timedelta(**delta)
        return self.now
