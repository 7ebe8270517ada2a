"""``python -m customerkit.cli``: the command line."""

from customerkit.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
