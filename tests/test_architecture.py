"""The package's import graph points one way: from the edges down to the domain, never back.

Layers, lowest first; a module may import its own layer and the layers below it:

1. domain: the model, errors, text folding and settings (``config``, the matching settings).
2. rules: pure rules over the domain (identity, validation, merging, search, matching,
   policy, and the export format, whose record type the ports and backends name).
3. ports: the protocols a store implements.
4. services: the use-cases, which reach storage through the ports only.
5. backends: the stores, and the other adapters to the outside (the shipped DMS sources and
   the CSV reading they share).
6. book: wires a store to the services.
7. edges: the public façade (``customerkit/__init__``), the command line, plain-data
   conversion, synthetic data and the testing kit.

How imports are read (with ``ast``, so nothing is executed):

* Every ``import`` and ``from ... import`` counts, at module level or inside a function: a
  deferred import is still a dependency, only a later one.
* ``from package import name`` counts as an import of ``package.name`` when that is a module,
  else of ``package``. Importing ``a.b.c`` counts as an edge to ``a.b.c`` only, although
  Python runs the ``__init__`` of ``a`` and ``a.b`` first: every module imports
  ``customerkit.<something>``, so counting the façade would make every module depend on it.
* An import under ``if TYPE_CHECKING:`` never runs; it serves annotations only (with
  ``from __future__ import annotations`` a runtime use of such a name fails at once). It may
  point upward, but never from the rules to the services or above.

Cycles are checked between modules (strongly connected components, a package's ``__init__``
counted as a module), in any layer, annotation-only imports included: a cycle through
annotations still means neither module can be read or changed without the other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import customerkit

PACKAGE = Path(customerkit.__file__).resolve().parent

#: Module prefixes of each layer, lowest first; a module belongs to its longest prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "domain",
        (
            "customerkit.model",
            "customerkit.errors",
            "customerkit.text",
            "customerkit.config",
            "customerkit.data",
            "customerkit.matching.config",
        ),
    ),
    (
        "rules",
        (
            "customerkit.identity",
            "customerkit.validation",
            "customerkit.merging",
            "customerkit.search",
            "customerkit.matching",
            "customerkit.policy",
            "customerkit.export",
        ),
    ),
    ("ports", ("customerkit.ports",)),
    ("services", ("customerkit.services",)),
    ("backends", ("customerkit.backends", "customerkit.sources", "customerkit.csvfile")),
    ("book", ("customerkit.book",)),
    (
        "edges",
        (
            "customerkit",
            "customerkit.__main__",
            "customerkit.cli",
            "customerkit.convert",
            "customerkit.synth",
            "customerkit.testing",
        ),
    ),
)

#: Import cycles that exist, each one strongly connected component exactly; a new cycle fails,
#: and so does an entry here once its cycle is gone (delete it then: it must not excuse another).
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset(
    {
        # Being removed: the ports name the export's record type and the export names the
        # ports' progress callback (both for annotations only); one of the two types moves.
        frozenset({"customerkit.export", "customerkit.ports"}),
        # The HTML view is typed against the report it renders, which calls it lazily.
        frozenset({"customerkit.matching.report", "customerkit.matching.review"}),
    }
)


@attrs.frozen
class Edge:
    """One import: who imports what, on which line, and whether only type checkers see it."""

    source: str
    target: str
    line: int
    typing_only: bool


def module_name(path: Path) -> str:
    parts = ("customerkit", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The index of the layer of the longest prefix ``module`` starts with."""
    best = (-1, -1)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    if best[1] < 0:
        pytest.fail(f"{module} is in no layer: add it to LAYERS")
    return best[1]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:  # relative: resolved against the importing module's package
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        origin = ".".join([*base, *([node.module] if node.module else [])])
    else:
        origin = node.module or ""
    for alias in node.names:
        candidate = f"{origin}.{alias.name}"
        yield candidate if candidate in MODULES else origin


def imports_of(module: str) -> list[Edge]:
    """Every import of a ``customerkit`` module by ``module``, wherever it stands."""
    tree = ast.parse(MODULES[module].read_text("utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            typing_only |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return [
        Edge(module, target, node.lineno, id(node) in typing_only)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in _targets(node, module)
        if target == "customerkit" or target.startswith("customerkit.")
    ]


EDGES = [edge for module in MODULES for edge in imports_of(module)]


def cycles(edges: list[Edge]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for edge in edges:
        if edge.target in graph and edge.target != edge.source:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_is_in_a_layer() -> None:
    assert MODULES
    for module in MODULES:
        layer_of(module)  # fails naming the module when it is in none


def test_no_module_imports_a_higher_layer() -> None:
    """Lower layers never import higher ones at run time."""
    upward = [
        f"{edge.source} ({LAYERS[layer_of(edge.source)][0]}) imports {edge.target} "
        f"({LAYERS[layer_of(edge.target)][0]}) on line {edge.line}"
        for edge in EDGES
        if not edge.typing_only and layer_of(edge.target) > layer_of(edge.source)
    ]
    assert upward == []


def test_no_import_cycles_beyond_the_known_ones() -> None:
    """Modules do not import each other in a circle, except the listed cycles."""
    assert cycles(EDGES) == KNOWN_CYCLES


def test_the_rules_import_no_service_or_store() -> None:
    """The domain and the rules name no service or store, even for type checkers."""
    names = [name for name, _ in LAYERS]
    reaching = [
        f"{edge.source} imports {edge.target} on line {edge.line}"
        for edge in EDGES
        if layer_of(edge.source) <= names.index("rules")
        and layer_of(edge.target) > names.index("ports")
    ]
    assert reaching == []


#: The SQL backend's modules, highest first: each imports only modules listed after it. The
#: store opens units of work, a unit of work builds the repositories, the repositories reach
#: their unit of work through the session protocol and use the search, key and row helpers.
SQL_BACKEND = "customerkit.backends.sqlalchemy"
SQL_BACKEND_ORDER = (
    "store",
    "unit_of_work",
    "_load",
    "_load_rows",
    "_load_words",
    "_customers",
    "_repositories",
    "_session",
    "_export_rows",
    "_match_keys",
    "_words",
    "search",
    "_pg_session",
    "_search_pages",
    "_search_lookup",
    "_search_rank",
    "_search_plan",
    "_search_limits",
    "anchors",
    "_word_starts",
    "_rows",
    "_bulk",
    "schema",
    "_errors",
    "_retry",
)


def sql_backend_rank(module: str) -> int:
    """The module's place in ``SQL_BACKEND_ORDER``; a module missing from it fails the test."""
    return SQL_BACKEND_ORDER.index(module.removeprefix(f"{SQL_BACKEND}."))


def test_the_sql_backend_imports_one_way() -> None:
    """No SQL backend module imports one above it, not even for annotations."""
    inside = [
        edge
        for edge in EDGES
        if edge.source.startswith(f"{SQL_BACKEND}.") and edge.target.startswith(f"{SQL_BACKEND}.")
    ]
    assert inside, "the SQL backend's imports were not found"
    modules = {module for edge in inside for module in (edge.source, edge.target)}
    assert (
        sorted(m for m in modules if m.removeprefix(f"{SQL_BACKEND}.") not in SQL_BACKEND_ORDER)
        == []
    )
    upward = [
        f"{edge.source} imports {edge.target} on line {edge.line}"
        for edge in inside
        if sql_backend_rank(edge.target) <= sql_backend_rank(edge.source)
    ]
    assert upward == []


def test_the_checks_can_fail() -> None:
    """The graph checks catch an upward import and a cycle when there is one."""
    upward = Edge("customerkit.model", "customerkit.services.merge", 1, typing_only=False)
    assert layer_of(upward.target) > layer_of(upward.source)
    loop = [
        Edge("customerkit.text", "customerkit.errors", 1, typing_only=False),
        Edge("customerkit.errors", "customerkit.text", 1, typing_only=False),
    ]
    assert frozenset({"customerkit.text", "customerkit.errors"}) in cycles(loop)
    assert "customerkit.sources" in {
        edge.target for edge in imports_of("customerkit.cli.duplicates")
    }
    assert sql_backend_rank(f"{SQL_BACKEND}.schema") > sql_backend_rank(f"{SQL_BACKEND}.store")
