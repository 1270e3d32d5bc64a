"""The import graph of pg_ha: no cycles, and the layers of DESIGN.md import only downwards.

Every ``import`` statement of every module counts, also those inside functions and under
``TYPE_CHECKING``: a lazy import hides a cycle from Python, not from the reader. Importing
``pg_ha.a.b`` also runs ``pg_ha/a/__init__.py``, so the edge goes to both modules (except to
the importer's own packages, which are already being imported)."""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Mapping, Set
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"
PACKAGE = "pg_ha"

Graph = Mapping[str, frozenset[str]]

# A cycle that may exist for now (none): the test fails when one listed here is gone.
KNOWN_CYCLES_TO_REMOVE: frozenset[frozenset[str]] = frozenset()

# (modules whose name starts with the prefix, prefixes they must not import)
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pg_ha.core.", ("pg_ha.node", "pg_ha.dcs", "pg_ha.api", "pg_ha.ctl", "pg_ha.postgresql")),
    ("pg_ha.dcs.", ("pg_ha.node", "pg_ha.api", "pg_ha.ctl")),
    ("pg_ha.config.", ("pg_ha.node", "pg_ha.dcs", "pg_ha.api", "pg_ha.ctl", "pg_ha.postgresql")),
    ("pg_ha.postgresql.", ("pg_ha.node", "pg_ha.dcs", "pg_ha.api", "pg_ha.ctl")),
    ("pg_ha.api.", ("pg_ha.node", "pg_ha.ctl")),
    ("pg_ha.ctl.", ("pg_ha.node", "pg_ha.api")),
    ("pg_ha.watchdog.", ("pg_ha.node", "pg_ha.dcs", "pg_ha.api", "pg_ha.ctl")),
)
# What the Ansible modules import inside AnsiballZ (pg_ha_api.py: client.py; pg_ha_config: the defaults).
STDLIB_ONLY: tuple[str, ...] = ("pg_ha", "pg_ha.client", "pg_ha.config", "pg_ha.config.defaults")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(importer: str, package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in `importer`."""
    if level == 0:
        return name or ""
    base = importer.split(".")
    base = base[:len(base) - level + (1 if package else 0)]
    return ".".join(base + ([name] if name else []))


def imported_names(tree: ast.AST, importer: str, package: bool, modules: Set[str]) -> Iterator[str]:
    """The module each import statement of `tree` names (``from X import y``: X.y if it is
    a module, else X)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(importer, package, node.level, node.module)
            yield from (f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)


def with_packages(name: str) -> Iterator[str]:
    """The packages Python initialises to import `name`, outermost first, then `name`."""
    parts = name.split(".")
    yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def edges_of(importer: str, names: Iterable[str], modules: Set[str]) -> frozenset[str]:
    """The package modules `importer` loads: each named module and its packages, but not
    the importer's own packages (already initialising) unless named themselves."""
    own = set(with_packages(importer))
    named = {name for name in names if name in modules}
    implied = {p for name in named for p in with_packages(name) if p in modules and p not in own}
    return frozenset((named | implied) - {importer})


def imports_of(path: Path, root: Path, modules: Set[str]) -> set[str]:
    """Absolute names of everything `path` imports (inside or outside the package)."""
    tree = ast.parse(path.read_text(), str(path))
    return set(imported_names(tree, module_name(path, root), is_package(path), modules))


def build_graph(root: Path = ROOT, package: str = PACKAGE) -> tuple[Graph, dict[str, set[str]]]:
    """(module -> the package modules it imports, module -> every name it imports)."""
    paths = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    raw = {name: imports_of(path, root, paths.keys()) for name, path in paths.items()}
    graph = {name: edges_of(name, raw[name], paths) for name in paths}
    return graph, raw


def strongly_connected(graph: Graph) -> list[frozenset[str]]:
    """Tarjan's components of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_cycle(graph: Graph, component: frozenset[str]) -> list[str]:
    """A shortest cycle through the first module of `component`, as a path a -> ... -> a."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"no cycle in {sorted(component)}")


def cycles(graph: Graph, allowed: frozenset[frozenset[str]] = frozenset()) -> list[str]:
    """One line per cycle (strongly connected component) not in `allowed`."""
    return [" -> ".join(one_cycle(graph, c)) for c in strongly_connected(graph) if c not in allowed]


def layer_violations(graph: Graph, layers: Iterable[tuple[str, tuple[str, ...]]]) -> list[str]:
    return [f"{m} imports {t}" for prefix, banned in layers for m in sorted(graph) if m.startswith(prefix)
            for t in sorted(graph[m]) if any(t == b or t.startswith(b + ".") for b in banned)]


def non_stdlib(raw: Mapping[str, set[str]], module: str) -> list[str]:
    tops = {name.split(".")[0] for name in raw[module]}
    return sorted(t for t in tops if t and t != "__future__" and t not in sys.stdlib_module_names)


GRAPH, RAW = build_graph()


def test_the_graph_sees_the_package() -> None:
    assert len(GRAPH) > 50
    assert "pg_ha.dcs.base" in GRAPH["pg_ha.dcs"]  # from .base import ...
    assert "pg_ha.postgresql.config" in GRAPH["pg_ha.postgresql"]  # from . import config
    assert "pg_ha.dcs.etcd3" in GRAPH["pg_ha.dcs"]  # imported inside get_dcs()


def test_no_import_cycles() -> None:
    assert cycles(GRAPH, KNOWN_CYCLES_TO_REMOVE) == []


def test_known_cycles_still_exist() -> None:
    """A known cycle that is gone must leave KNOWN_CYCLES_TO_REMOVE too."""
    gone = KNOWN_CYCLES_TO_REMOVE - set(strongly_connected(GRAPH))
    assert not gone, f"no longer cycles, delete them from KNOWN_CYCLES_TO_REMOVE: {[sorted(c) for c in gone]}"


def test_layers_import_downwards() -> None:
    assert layer_violations(GRAPH, LAYERS) == []


@pytest.mark.parametrize("module", STDLIB_ONLY)
def test_stdlib_only(module: str) -> None:
    assert non_stdlib(RAW, module) == []
    assert GRAPH[module] == frozenset()


# ------------------------------------------------------------ the checks can fail

SYNTHETIC = {
    "p.a": frozenset({"p.b"}),
    "p.b": frozenset({"p.c"}),
    "p.c": frozenset({"p.a"}),
    "p.d": frozenset({"p.a", "p.e"}),
    "p.e": frozenset({"p.d"}),
    "p.f": frozenset({"p.f"}),
    "p.g": frozenset(),
}


def test_cycles_are_found_and_named() -> None:
    assert sorted(cycles(SYNTHETIC)) == ["p.a -> p.b -> p.c -> p.a", "p.d -> p.e -> p.d", "p.f -> p.f"]


def test_only_the_exact_known_cycle_is_allowed() -> None:
    allowed = frozenset({frozenset({"p.d", "p.e"})})
    assert sorted(cycles(SYNTHETIC, allowed)) == ["p.a -> p.b -> p.c -> p.a", "p.f -> p.f"]
    grown = dict(SYNTHETIC, **{"p.e": frozenset({"p.d", "p.g"}), "p.g": frozenset({"p.d"})})
    assert "p.d -> p.e -> p.d" in cycles(grown, allowed)  # p.g joined the known cycle


def test_layer_violations_are_named() -> None:
    graph = {"p.core.x": frozenset({"p.node.y", "p.nodes"}), "p.node.y": frozenset({"p.core.x"})}
    assert layer_violations(graph, (("p.core.", ("p.node",)),)) == ["p.core.x imports p.node.y"]


def test_imports_are_parsed_everywhere(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__", "a", "b", "c", "sub/__init__", "sub/d"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "sub" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .. import a\nif TYPE_CHECKING:\n    from ..b import X\n"
        "def f():\n    import p.c\n    import yaml\n")
    (pkg / "c.py").write_text("from . import sub\nfrom .sub import d\n")
    (pkg / "b.py").write_text("from .sub import f\n")
    (pkg / "sub" / "__init__.py").write_text("from .d import f\n")
    graph, raw = build_graph(tmp_path, "p")
    assert graph["p.sub.d"] == {"p.a", "p.b", "p.c"}
    assert graph["p.sub"] == {"p.sub.d"}
    assert graph["p.c"] == {"p.sub", "p.sub.d"}
    assert graph["p.b"] == {"p.sub"}
    assert cycles(graph) == ["p.b -> p.sub -> p.sub.d -> p.b"]  # through a package __init__
    assert non_stdlib(raw, "p.sub.d") == ["p", "yaml"]


def unresolved_imports(root: Path = ROOT) -> list[str]:
    """Relative imports (also lazy ones inside functions) naming a module that does not exist."""
    paths = sorted((root / PACKAGE).rglob("*.py"))
    modules = {module_name(p, root) for p in paths}
    found = []
    for path in paths:
        importer = module_name(path, root)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                target = resolve(importer, is_package(path), node.level, node.module)
                if target not in modules:
                    found.append(f"{importer}:{node.lineno}: {target}")
    return found


def test_every_relative_import_names_a_module() -> None:
    assert unresolved_imports() == []


def test_an_unresolved_import_is_seen(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .gone import x\n")
    assert unresolved_imports(tmp_path) == [f"{PACKAGE}.a:2: {PACKAGE}.gone"]
