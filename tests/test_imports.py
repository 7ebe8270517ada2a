"""SPEC §1: `import customerkit` never imports an optional dependency."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'sqlalchemy', 'psycopg', 'pandas', 'typer', 'rich'}:
            raise ImportError(f'blocked {name}', name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, check=False
    )


def test_core_imports_without_extras() -> None:
    result = run(
        "import customerkit as ck\n"
        "b = ck.open_book()\n"
        "assert 'sqlalchemy' not in sys.modules and 'pandas' not in sys.modules\n"
    )
    assert result.returncode == 0, result.stderr


def test_missing_extra_names_it() -> None:
    result = run(
        "import customerkit as ck\n"
        "try:\n    ck.open_book('sqlite:///x.db')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    assert "customerkit[sqlalchemy]" in result.stdout, result.stderr
    cli = run("import customerkit.cli")
    assert "customerkit[cli]" in cli.stderr
