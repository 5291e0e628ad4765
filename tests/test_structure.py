"""The package rule (README "Layout"), read from the source with `ast`: `hub` imports none of rest,
workers, domain (except hub/__main__.py, which composes the process); `domain` imports neither rest
nor workers; rest and workers never import each other; and no modules import each other in a cycle.

Every import counts for the package rule: module-level, inside functions, and under
`if TYPE_CHECKING:`. The cycle check leaves out the TYPE_CHECKING ones (they never run) but keeps
imports inside functions: a cycle deferred to call time is still a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from domain.errors import CODES
from rest.errors import STATUS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "rest", "workers", "domain")
# importer package -> the packages it must never import
FORBIDDEN = {
    "hub": {"rest", "workers", "domain"},
    "domain": {"rest", "workers"},
    "rest": {"workers"},
    "workers": {"rest"},
}
COMPOSERS = {"hub.__main__"}  # modules that wire the packages together, exempt from FORBIDDEN


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` (both dotted module names) at `path`:`line`."""

    source: str
    target: str
    path: str
    line: int
    typing_only: bool

    def __str__(self) -> str:
        only = " (TYPE_CHECKING)" if self.typing_only else ""
        return f"{self.path}:{self.line}: {self.source} -> {self.target}{only}"


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of PACKAGES under `root` (a package is its __init__)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules of `known` an import statement in module `name` loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        package = name.split(".") if is_package else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # `from pkg import mod` loads pkg.mod when that is a module, else a name of pkg.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _imports(node: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under `node`, anywhere (functions included), with whether it sits under
    `if TYPE_CHECKING:`."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _imports(stmt, True)
        for stmt in node.orelse:
            yield from _imports(stmt, typing_only)
    elif isinstance(node, ast.Import | ast.ImportFrom):
        yield node, typing_only
    else:
        for child in ast.iter_child_nodes(node):
            yield from _imports(child, typing_only)


def edges(root: Path) -> list[Edge]:
    """Every import between modules of PACKAGES under `root`."""
    known = modules(root)
    found: list[Edge] = []
    for name, path in known.items():
        relative = str(path.relative_to(root))
        is_package = path.name == "__init__.py"
        for node, typing_only in _imports(ast.parse(path.read_text(), filename=str(path))):
            for target in _imported(node, name, is_package, set(known)):
                if target.split(".")[0] in PACKAGES:
                    found.append(Edge(name, target, relative, node.lineno, typing_only))
    return found


def forbidden(found: list[Edge]) -> list[Edge]:
    """The edges that break the package rule."""
    return [
        e
        for e in found
        if e.source not in COMPOSERS
        and e.target.split(".")[0] in FORBIDDEN.get(e.source.split(".")[0], set())
    ]


def cycles(found: list[Edge]) -> Iterator[list[Edge]]:
    """One cycle (as its edges, closing on its first module) per strongly connected group of modules,
    over the edges that run (TYPE_CHECKING ones left out)."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in found:
        if not e.typing_only and e.source != e.target:
            graph.setdefault(e.source, {}).setdefault(e.target, e)
    # Tarjan's strongly connected components (recursion depth is bounded by the module count).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    for group in groups:
        yield _path_within(graph, group)


def _path_within(graph: dict[str, dict[str, Edge]], group: set[str]) -> list[Edge]:
    """A cycle through the group's first module, found breadth-first (so it is a shortest one)."""
    start = min(group)
    came: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for v in frontier:
            for w, e in sorted(graph.get(v, {}).items()):
                if w == start:
                    path = [e]
                    while path[0].source != start:
                        path.insert(0, came[path[0].source])
                    return path
                if w in group and w not in came:
                    came[w] = e
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group always has one


def test_no_forbidden_import() -> None:
    bad = forbidden(edges(ROOT))
    assert not bad, "imports that break the package rule (README, Layout):\n" + "\n".join(map(str, bad))


def test_no_import_cycle() -> None:
    found = list(cycles(edges(ROOT)))
    assert not found, "import cycles:\n" + "\n\n".join("\n".join(map(str, c)) for c in found)


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """Against a made-up tree: a lazy import from rest into workers, a TYPE_CHECKING import from
    domain into rest, and a cycle through a function-level import are all caught; a TYPE_CHECKING
    import alone makes no cycle."""
    files = {
        "hub/__init__.py": "",
        "hub/__main__.py": "import rest\nimport workers\n",
        "domain/__init__.py": "",
        "domain/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rest.x import Y\n",
        "domain/b.py": "from domain import c\n",
        "domain/c.py": "def f():\n    from domain.b import g\n",
        "domain/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from domain import e\n",
        "domain/e.py": "from . import d\n",
        "rest/__init__.py": "",
        "rest/x.py": "def f():\n    import workers.y\n",
        "workers/__init__.py": "",
        "workers/y.py": "from domain.b import g\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = edges(tmp_path)
    assert sorted(str(e) for e in forbidden(found)) == [
        "domain/a.py:3: domain.a -> rest.x (TYPE_CHECKING)",
        "rest/x.py:2: rest.x -> workers.y",
    ]
    assert [[str(e) for e in c] for c in cycles(found)] == [
        ["domain/b.py:1: domain.b -> domain.c", "domain/c.py:2: domain.c -> domain.b"]
    ]


def test_domain_error_codes_are_the_rest_error_table() -> None:
    assert set(CODES) == set(STATUS)


MAX_MODULE_LINES = 420
"""About 400 lines a module (docs/architecture.md): a module past this is doing more than one thing."""


def test_no_module_over_about_400_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these modules (lines): {too_long}"
