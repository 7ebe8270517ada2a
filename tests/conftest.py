"""Shared fixtures: the contract suite's ``make_book`` over every backend."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

pytest.register_assert_rewrite("customerkit.testing.contract")

import customerkit as ck  # noqa: E402 - after registering assertion rewriting
from customerkit.testing import FakeClock  # noqa: E402

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TEST_HASHER = ck.PasswordHasher.for_tests()
BACKENDS = ["memory"]


@pytest.fixture(params=BACKENDS)
def make_book(request: pytest.FixtureRequest) -> Callable[[FakeClock], ck.Book]:
    """A factory of empty books on each backend."""
    backend = request.param

    def make(clock: FakeClock) -> ck.Book:
        if backend == "memory":
            return ck.open_book(clock=clock, hasher=TEST_HASHER)
        raise AssertionError(backend)

    return make
