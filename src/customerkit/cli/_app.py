"""The command line's frame: its apps, shared options, and errors reported in one line."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from typer import TyperException as _ClickError  # typer carries its own click
from typer.core import TyperGroup

import customerkit as ck
from customerkit.cli._output import Format, _err

#: The embedded default: an SQLite file in the current folder.
DEFAULT_DB = "customerkit.db"
#: The demo's own book, so the demo never touches the one the other commands use.
DEMO_DB = "customerkit-demo.db"
#: A category only the demo creates: it marks a book the demo may delete and build again.
DEMO_MARK = "customerkit demo data"
#: The user the demo acts as: a change by anyone else makes the book more than a demo.
DEMO_USER = "customerkit-demo"
_DEBUG = "customerkit.debug"


class _Failure(Exception):
    """A failure the CLI reports in one line with exit status 1 (2 when ``usage``)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def _message(error: BaseException) -> str:
    if isinstance(error, ck.ValidationError) and len(error.errors) > 1:
        return _summary(error.errors)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    if isinstance(error, (ck.CustomerKitError, _Failure, ImportError)):
        return str(error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{error.__class__.__name__}: {first_line} (run with --debug for the details)"


def _summary(errors: Mapping[str, str], shown: int = 5) -> str:
    items = [f"{key}: {value}" for key, value in errors.items()]
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return f"{len(items)} problems: " + "; ".join(items[:shown]) + more


class _Group(TyperGroup):
    """Turns every error of a command into one line on standard error (unless ``--debug``)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (_ClickError, typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # Whoever read the output stopped (``| head``): stop quietly, as Unix tools do.
            _silence_stdout()
            raise typer.Exit(code=1) from None
        except Exception as error:
            if ctx.meta.get(_DEBUG):
                raise
            _err().print(f"error: {_message(error)}", markup=False, highlight=False, soft_wrap=True)
            usage = isinstance(error, _Failure) and error.usage
            raise typer.Exit(code=2 if usage else 1) from error


def _silence_stdout() -> None:
    """Point standard output at the null device, so exiting flushes nowhere instead of failing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # no real file (a test runner)
        pass


app = typer.Typer(
    cls=_Group,
    help="Customer profiles and contacts for dealer software.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
contacts_app = typer.Typer(
    help="List, merge and clean up a customer's contacts.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
source_app = typer.Typer(
    help="Import customers from an external source (DMS).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(contacts_app, name="contacts")
app.add_typer(source_app, name="source")


DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="The book: a file (book.db), sqlite:///book.db, postgresql://…, or memory://.",
    ),
]
LocationOption = Annotated[str, typer.Option("--location", help="Location to act for.")]
OutArgument = Annotated[str, typer.Argument(help="File to write; - for standard output.")]


def _flag(name: str, help: str, **extra: Any) -> Any:  # noqa: A002 - typer's word
    """An on/off option shown as just its name in help (no ``--no-…`` twin, no ``<bool>``)."""
    return typer.Option(name, help=help, metavar="", **extra)


FormatOption = Annotated[Format, typer.Option("--format", help="table, csv or json.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"customerkit {ck.__version__}")
        raise typer.Exit


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        _flag("--version", "Show the version and exit.", callback=_version, is_eager=True),
    ] = False,
    debug: Annotated[bool, _flag("--debug", "Show the traceback of an error.")] = False,
) -> None:
    """Customer profiles and contacts for dealer software."""
    ctx.meta[_DEBUG] = debug
