"""The house rules, read from the code's own imports.

Imports point one way: the CLI -> the API and the stages -> the graph database layer and the
schema contract; the shared charts (`plotting`) sit below the CLI, the API and reconstruct and
import nothing of ours; the stages (reconstruct, ingest, export) never import each other; no two
modules import each other, directly or around a circle. Tests and benchmarks share nothing but
the product, and no test module imports another (shared helpers live in `tests/support/`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "connectome_query"
PACKAGES = ("cli", "graphql_api", "export", "ingest", "reconstruct", "graphdb", "schema",
            "plotting")

ALLOWED: dict[str, set[str]] = {
    "cli": {"graphql_api", "export", "ingest", "reconstruct", "graphdb", "schema", "plotting"},
    "graphql_api": {"export", "graphdb", "schema", "plotting"},
    "export": {"graphdb", "schema"},
    "ingest": {"graphdb", "schema"},
    "reconstruct": {"graphdb", "schema", "plotting"},
    "graphdb": {"schema"},
    "schema": set(),
    "plotting": set(),
}
"""Which packages each package may import (besides itself)."""


def _module_name(path: Path, base: Path, prefix: str) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([prefix, *parts]) if prefix else ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module: str, is_package: bool, names: bool = True) -> set[str]:
    """Modules named by the import statements of `tree`, outside `if TYPE_CHECKING:`; with
    `names`, `from a import b` also gives `a.b` (b may be a module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                head = ".".join(base + ([node.module] if node.module else []))
            else:
                head = node.module or ""
            found.add(head)
            if names:
                found.update(f"{head}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _product_graph() -> nx.DiGraph:
    modules: dict[str, tuple[ast.Module, bool]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_name(path, ROOT, NAMESPACE)
            modules[name] = (ast.parse(path.read_text(), str(path)), path.name == "__init__.py")
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, (tree, is_package) in modules.items():
        for target in _imports(tree, name, is_package):
            if target in modules and target != name:
                graph.add_edge(name, target)
    return graph


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


def test_the_namespace_links_every_package() -> None:
    for package in PACKAGES:
        link = ROOT / NAMESPACE / package
        assert link.is_symlink() and link.resolve() == (ROOT / package).resolve(), link


def test_imports_point_one_way() -> None:
    graph = _product_graph()
    wrong = sorted(
        f"{a} -> {b}" for a, b in graph.edges
        if _package(a) != _package(b) and _package(b) not in ALLOWED[_package(a)]
    )
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_circles() -> None:
    graph = _product_graph()
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, f"modules that import each other: {circles}"


def test_product_imports_only_through_the_namespace() -> None:
    """`import ingest` would load a second copy of a stage beside `connectome_query.ingest`."""
    bare = []
    for folder in (*PACKAGES, "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for target in _imports(ast.parse(path.read_text()), "x", False):
                if target.split(".")[0] in PACKAGES:
                    bare.append(f"{path.relative_to(ROOT)}: {target}")
    assert not bare, "\n".join(bare)


def test_resources_are_found_through_the_namespace() -> None:
    """`importlib.resources.files("schema")` would find another distribution's `schema`."""
    import re

    call = re.compile(r"""resources\.files\(\s*["']([\w.]+)["']""")
    wrong = [f"{path.relative_to(ROOT)}: {m.group(1)}"
             for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for m in call.finditer(path.read_text())
             if m.group(1).split(".")[0] in PACKAGES]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("folder", "other"), [("tests", "bench"), ("bench", "tests")])
def test_tests_and_bench_share_only_the_product(folder: str, other: str) -> None:
    crossing = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for target in _imports(ast.parse(path.read_text()), "x", False, names=False):
            if target.split(".")[0] == other:
                crossing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not crossing, "\n".join(crossing)


def test_no_test_module_imports_another() -> None:
    offending = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for target in _imports(ast.parse(path.read_text()), "x", False, names=False):
            leaf = target.split(".")[-1]
            if target.startswith("tests.") and (leaf.startswith("test_") or leaf == "conftest"):
                offending.append(f"{path.relative_to(ROOT)}: {target}")
            elif target.startswith("tests.") and not target.startswith("tests.support"):
                offending.append(f"{path.relative_to(ROOT)}: {target} (use tests/support)")
    assert not offending, "\n".join(offending)


def test_graph_sees_a_planted_circle(tmp_path: Path) -> None:
    """The checks above can fail: a planted pair of modules importing each other is a circle."""
    a = ast.parse("from connectome_query.schema import b\n")
    b = ast.parse("import connectome_query.schema.a\n")
    graph = nx.DiGraph()
    for name, tree in (("connectome_query.schema.a", a), ("connectome_query.schema.b", b)):
        for target in _imports(tree, name, False):
            if target in ("connectome_query.schema.a", "connectome_query.schema.b"):
                graph.add_edge(name, target)
    assert any(len(c) == 2 for c in nx.strongly_connected_components(graph))
