"""Run the shipped contract suite against every backend and the example third-party store."""

import pytest

from conftest import CONTRACT_BACKENDS
from customerkit.testing.contract import *  # noqa: F403
from customerkit.testing.contract import book, clock  # noqa: F401 - fixtures

pytestmark = pytest.mark.parametrize("make_book", CONTRACT_BACKENDS, indirect=True)
