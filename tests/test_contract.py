"""Run the shipped contract suite against every backend (see conftest's ``make_book``)."""

from customerkit.testing.contract import *  # noqa: F403
from customerkit.testing.contract import book, clock  # noqa: F401 - fixtures
