"""``python -m customerkit``: the command line, or one line saying which extra it needs."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``customerkit`` command; without the ``cli`` extra, say how to install it."""
    try:
        from customerkit.cli import main as cli_main
    except ImportError as error:
        if error.name not in ("typer", "rich", "click"):
            raise
        print(f"customerkit: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    cli_main()


if __name__ == "__main__":
    main()
