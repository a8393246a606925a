"""The package's import graph, read from the source: one-way floors (no cycle, counting imports inside functions,
which would otherwise hide one), the floors as docs/development.md draws them, and `bench/` a client of the public
API only (docs/api.md)."""

import ast
import graphlib
import re
from pathlib import Path

import matssl

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "matssl"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(f): f for f in PACKAGE.rglob("*.py")}


def imported(tree: ast.AST) -> list[str]:
    """Every `matssl...` name an import in `tree` reaches (a module, or the package itself), wherever it stands."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "matssl":
            out += [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.append("relative import")
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "matssl"]
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (the facade `matssl/__init__.py`, which only re-exports, left out)."""
    return {m: {t for t in imported(ast.parse(f.read_text())) if t != m} for m, f in MODULES.items() if m != "matssl"}


def floors() -> list[list[str]]:
    """The modules by floor (the objectives/ package as one): floor 0 imports none of the package; each module stands
    one floor above its highest import."""

    def outer(m: str) -> str:
        return "matssl.objectives" if m.startswith("matssl.objectives") else m

    g: dict[str, set[str]] = {}
    for m, ts in graph().items():
        g.setdefault(outer(m), set()).update(outer(t) for t in ts if outer(t) != outer(m))
    level: dict[str, int] = {}
    for m in graphlib.TopologicalSorter(g).static_order():
        level[m] = 1 + max((level[t] for t in g[m]), default=-1)
    return [sorted(m.removeprefix("matssl.") for m in level if level[m] == k) for k in range(max(level.values()) + 1)]


def test_no_cycle_even_through_imports_inside_functions():
    g = graph()
    assert "relative import" not in {t for ts in g.values() for t in ts}
    assert "matssl" not in {t for ts in g.values() for t in ts}, "a module imports the facade: import from its module"
    graphlib.TopologicalSorter(g).prepare()  # raises CycleError, naming the cycle


def test_the_floors_are_the_ones_docs_development_draws():
    text = (ROOT / "docs" / "development.md").read_text()
    drawn = re.findall(r"^\| (\d+) \| (.+) \|$", text, flags=re.M)
    assert [(int(k), names.split(", ")) for k, names in drawn] == list(enumerate(floors())), (
        "docs/development.md's floors table is not the import graph's: " + str(list(enumerate(floors())))
    )


def test_bench_imports_only_the_documented_public_api():
    api = (ROOT / "docs" / "api.md").read_text()
    for name in matssl.__all__:
        assert re.search(rf"`{re.escape(name)}[`(]", api), f"{name} is public but docs/api.md does not document it"
        assert getattr(matssl, name) is not None
    for script in sorted((ROOT / "bench").glob("*.py")):
        tree = ast.parse(script.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "matssl":
                assert node.module == "matssl", f"{script.name} imports matssl's internals: from {node.module}"
                assert {a.name for a in node.names} <= set(matssl.__all__), f"{script.name}: not public: {node.names}"
            if isinstance(node, ast.Import):
                assert not [a.name for a in node.names if a.name.startswith("matssl.")], f"{script.name}: import matssl.x"
        assert "sys.path" not in script.read_text(), f"{script.name} edits sys.path"
