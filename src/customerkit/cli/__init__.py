"""The ``customerkit`` command line (extra ``cli``).

The CLI acts as a dealer admin of one location (``--location``) on the book ``--db`` names.
Data goes to standard output (``--format table|csv|json`` where it is a list); progress, notes
and errors go to standard error. An error is one line and exit status 1 (2 for a wrong command
line); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

# First, before any module of the package imports them: without the extra, say which one it is.
try:
    import rich  # noqa: F401
    import typer  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the customerkit command line needs the 'cli' extra: pip install 'customerkit[cli]'",
        name=error.name,
    ) from error

from customerkit.cli import contacts, customers, demo, duplicates, sources, transfer
from customerkit.cli._app import (
    DEFAULT_DB,
    DEMO_DB,
    DEMO_MARK,
    DEMO_USER,
    app,
    contacts_app,
    source_app,
)
from customerkit.cli._books import book_url
from customerkit.cli._output import Format
from customerkit.cli.duplicates import Kind
from customerkit.cli.transfer import IMPORT_FIELDS

__all__ = [
    "DEFAULT_DB",
    "DEMO_DB",
    "DEMO_MARK",
    "DEMO_USER",
    "IMPORT_FIELDS",
    "Format",
    "Kind",
    "app",
    "book_url",
    "main",
]

# The command line in the order its help lists it: registered here, in one place.
app.command()(demo.demo)
app.command()(duplicates.duplicates)
app.command()(customers.search)
app.command("export")(transfer.export_customers)
app.command("import")(transfer.import_customers)
app.command("merge")(customers.merge)
app.command("unmerge")(customers.unmerge)
app.command("history")(customers.history)
contacts_app.command("list")(contacts.contacts_list)
contacts_app.command("export")(contacts.contacts_export)
contacts_app.command("unused")(contacts.contacts_unused)
contacts_app.command("merge")(contacts.contacts_merge)
contacts_app.command("unmerge")(contacts.contacts_unmerge)
source_app.command("import")(sources.source_import)


def main() -> None:
    """Entry point of the ``customerkit`` command."""
    app(prog_name="customerkit")
