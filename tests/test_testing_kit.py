"""The contract kit works for a third party exactly as its guide says (outside our conftest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given

import customerkit as ck
from customerkit.testing import FakeClock, strategies
from customerkit.testing.contract import BookContract, ContractBase, SearchContract

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "testing.md"
SRC = Path(ck.__file__).resolve().parents[1]


def guide_block(first_line: str) -> str:
    """The guide's Python block that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text("utf-8"), re.S)
    found = [block for block in blocks if block.startswith(first_line)]
    assert len(found) == 1, f"the guide has no single block starting {first_line!r}"
    return found[0]


def contract_tests(cls: type) -> int:
    """How many tests a subclass of ``cls`` runs (a parametrised test counts once per case)."""
    names = [name for name in dir(cls) if name.startswith("test_")]
    count = 0
    for name in names:
        marks = getattr(getattr(cls, name), "pytestmark", [])
        cases = [len(mark.args[1]) for mark in marks if mark.name == "parametrize"]
        count += cases[0] if cases else 1
    return count


def run_pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    """pytest in a clean folder: no conftest, no configuration, only customerkit importable."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(  # noqa: S603 - our own interpreter on our own files
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_the_guides_example_passes_in_a_clean_folder(tmp_path: Path) -> None:
    """The documented ``class TestMyStore(BookContract)`` runs the whole contract and passes."""
    (tmp_path / "test_my_store.py").write_text(guide_block("# test_my_store.py"), "utf-8")
    run = run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"{contract_tests(BookContract)} passed" in run.stdout, run.stdout[-2000:]


@pytest.mark.slow
def test_a_missing_make_book_fails_every_test_saying_what_to_define(tmp_path: Path) -> None:
    """A subclass without ``make_book`` fails loudly, naming the method, instead of passing."""
    (tmp_path / "test_incomplete.py").write_text(
        "from customerkit.testing.contract import UsernamesContract\n\n\n"
        "class TestIncomplete(UsernamesContract):\n    pass\n",
        "utf-8",
    )
    run = run_pytest(tmp_path)
    assert run.returncode == 1
    assert "TestIncomplete must define make_book(self, clock)" in run.stdout
    assert " passed" not in run.stdout


def test_the_parts_are_not_collected_on_their_own() -> None:
    """Importing the suite's classes collects nothing: only a ``Test`` subclass runs them."""
    assert not any(name.startswith("Test") for name in vars(ck.testing.contract))
    assert issubclass(SearchContract, ContractBase)
    assert issubclass(BookContract, SearchContract)


@given(strategies.new_customers())
def test_strategies_give_drafts_the_book_accepts_or_refuses_by_name(
    draft: ck.NewCustomer,
) -> None:
    """Every generated draft is created or refused with a ``CustomerKitError``, nothing else."""
    admin = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    with ck.open_book(clock=FakeClock(), hasher=ck.PasswordHasher.for_tests()) as book:
        try:
            created = book.customers.create(draft, actor=admin)
        except ck.CustomerKitError:
            return
        assert book.customers.get(created.id, actor=admin) == created


@pytest.mark.slow
def test_the_guides_strategies_example_runs(tmp_path: Path) -> None:
    """The guide's hypothesis example runs as written."""
    code = guide_block("from hypothesis import given")
    (tmp_path / "test_generated.py").write_text(code, "utf-8")
    run = run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
