"""The package's shape, checked: few top-level modules, no import cycle, no
file over 500 lines and no class over 250 (the limits of the regroup, issue 12).

Imports are read from the source (``ast``), so the check sees every import,
including those inside functions (the lazy ones that break cycles at run time
still count: a cycle is a cycle in the design).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "normlab"
MAX_TOP_LEVEL_MODULES = 16
MAX_FILE_LINES = 500
MAX_CLASS_LINES = 250
# Course faces re-export one another on purpose (a later year's module is the
# earlier one with a few names changed); they are leaves, never imported by the core.
FACES = ("cs231n", "cs231n_2017", "cs231n_2019", "nndl", "nndl_2025")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The normlab modules ``name`` imports (a package import counts as its ``__init__``)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        if name.split(".")[1:2] and name.split(".")[1] in FACES:
            continue
        graph[name] = {m for m in _imports(name, path, modules) if not (m.split(".")[1:2] and m.split(".")[1] in FACES)}
    return graph


def _cycle(graph) -> list[str] | None:
    """One import cycle among modules that are not packages' ``__init__``
    (a package importing its own submodules to re-export them is not a cycle of the design)."""
    packages = {m for m, p in _modules().items() if p.name == "__init__.py"}
    edges = {m: {t for t in ts if t not in packages} for m, ts in graph.items() if m not in packages}
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_few_top_level_modules():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} top-level modules: {top}"


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"normlab.a": {"normlab.b"}, "normlab.b": {"normlab.a"}}) == ["normlab.a", "normlab.b", "normlab.a"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_file_and_class_sizes(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_FILE_LINES, f"{path.name}: {text.count(chr(10))} lines > {MAX_FILE_LINES}"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            lines = node.end_lineno - node.lineno + 1
            assert lines <= MAX_CLASS_LINES, f"class {node.name} in {path.name}: {lines} lines > {MAX_CLASS_LINES}"
