"""The shape of the package: no import cycle between pump's modules, no module over ~400 lines.

The graph is read from the source (``ast``), not from ``sys.modules``, so an import hidden inside
a function — the usual way a cycle is papered over — counts like any other, and so does an import
under ``TYPE_CHECKING``: a cycle there is still two modules that each need the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pump"

#: Lines a module may have; the protobuf decoder's wire schema and codec stay one file.
MAX_LINES = 420
EXEMPT = {"pump.decode.protobuf"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The pump modules ``name`` imports anywhere in its source (module level or not)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            # ``from pkg import mod`` imports the submodule when there is one.
            targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in known else mod for alias in node.names]
        else:
            continue
        for target in targets:
            # ``import pump.a.b`` also runs ``pump.a``; the edge that matters is to the module itself.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "pump":
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_and_relative_imports_are_edges(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from pump.b import x\n    import pump.c.d\nfrom . import e\n")
    known = {"pump.a", "pump.b", "pump.c", "pump.c.d", "pump.e"}
    assert imports_of("pump.a", src, known) == {"pump.b", "pump.c.d", "pump.e"}


def test_no_import_cycle_in_the_package() -> None:
    assert cycles(graph()) == []


def test_no_module_over_the_size_limit() -> None:
    big = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in EXEMPT}
    assert big == {}
