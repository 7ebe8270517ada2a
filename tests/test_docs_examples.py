"""The Python blocks of README.md and of the docs pages run as written, top to bottom.

Each page's blocks run in order in one namespace, in a fresh folder. A block that is not meant
to run on its own (it continues a story the prose tells, or stands for the reader's data or
server) is listed in ``FRAGMENTS`` with the reason; it is still compiled, so its syntax is
checked. Every other block runs: a new page's blocks run unless someone lists them here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Blocks not meant to run alone, by page and block number (from 0), with the reason.
FRAGMENTS: dict[str, dict[int, str]] = {
    "README.md": {1: "`records` and `known_pairs` stand for the reader's data"},
    "docs/backends.md": {
        0: "opens the reader's PostgreSQL server",
        1: "`url` is the reader's database",
        2: "`url` is the reader's database",
    },
    "docs/contacts.md": {0: "`book`, `customer` and `advisor` come from the reader's app"},
    "docs/customers.md": {1: "the records and actors come from the reader's app"},
    "docs/duplicates.md": {
        0: "`book`, `customer` and `advisor` come from the reader's app",
        1: "`book` and `advisor` come from the reader's app",
        2: "`a`, `b` and `advisor` come from the reader's app",
        3: "`report`, `left_id` and `right_id` come from the reader's app",
        4: "`report` and `true_pairs` come from the reader's data",
        5: "`records` stands for the reader's data, with those extra columns",
        6: "`records` and the labelled ids stand for the reader's data",
        7: "`report` comes from the reader's app",
        9: "`book`, `staff` and `customer` come from the reader's app",
        10: "`book`, the ids and the actors come from the reader's app",
    },
    "docs/how-to/spark.md": {
        0: "reads the reader's data on their Spark cluster",
        1: "`contacts` is the reader's Spark DataFrame",
    },
    "docs/notebook.md": {
        3: "`people` stands for the reader's data with a date of birth",
        4: "`known_pairs` stands for duplicates the reader knows",
    },
    "docs/scale.md": {0: "`book` and `admin` come from the reader's app"},
    "docs/search.md": {0: "`book` and `actor` come from the reader's app"},
    "docs/sources.md": {0: "`book` comes from the reader's app"},
    # The kit's guide is run by tests/test_testing_kit.py, as a third party would run it.
    "docs/reference/testing.md": {
        0: "tests/test_testing_kit.py runs it as a test module",
        1: "tests/test_testing_kit.py runs it as a conftest",
        2: "tests/test_testing_kit.py runs it as a test module",
    },
}
#: Lines run before a page's blocks, with the reason.
PRELUDES: dict[str, str] = {
    # The page shows a policy class; the import is the one every other page shows.
    "docs/permissions.md": "import customerkit as ck\n",
}
#: Files a page's blocks read, made in the folder they run in.
FILES: dict[str, dict[str, str]] = {
    "docs/how-to/dms-import.md": {
        "procede-export.csv": (
            "Customer #,Company Name,City,State\n"
            "P-100,Miller Trucking LLC,Denver,CO\n"
            "P-101,Johnson Tires,Boulder,CO\n"
        )
    },
}
#: Pages whose blocks take seconds (the FEBRL example matches 5,000 records).
SLOW: frozenset[str] = frozenset({"docs/duplicates.md"})


def python_blocks(page: str) -> list[str]:
    """The page's Python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text("utf-8"), re.S)


def pages() -> list[str]:
    """README.md and every docs page with a Python block, relative to the repository."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [path.relative_to(ROOT).as_posix() for path in found if python_blocks(str(path))]


def runnable(page: str) -> list[str]:
    """The blocks of a page that run."""
    skipped = FRAGMENTS.get(page, {})
    return [block for at, block in enumerate(python_blocks(page)) if at not in skipped]


def test_the_lists_name_real_pages_and_blocks() -> None:
    """A block listed here that moved or went away fails, so the lists follow the docs."""
    for page, fragments in FRAGMENTS.items():
        count = len(python_blocks(page))
        assert all(at < count for at in fragments), (page, count)
    for page in [*PRELUDES, *FILES, *SLOW]:
        assert runnable(page), page


@pytest.mark.parametrize("page", pages())
def test_fragments_compile(page: str) -> None:
    """Blocks that do not run are still Python."""
    blocks = python_blocks(page)
    for at in FRAGMENTS.get(page, {}):
        compile(blocks[at], f"{page} block {at}", "exec")


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(page, marks=[pytest.mark.slow] if page in SLOW else [])
        for page in pages()
        if runnable(page)
    ],
)
def test_page_python_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in FILES.get(page, {}).items():
        (tmp_path / name).write_text(text, "utf-8")
    monkeypatch.chdir(tmp_path)  # pages write files (portal.db, review.html) where they run
    source = PRELUDES.get(page, "") + "\n".join(runnable(page))
    namespace: dict[str, object] = {}
    exec(compile(source, page, "exec"), namespace)  # noqa: S102 - our own docs
