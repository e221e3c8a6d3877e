"""The sink registry and the shape of pump/: lazy typed specs, meta validated once, no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pump import sinks
from pump.config.load import validate
from pump.sinks.base import SinkContext, SinkMeta, SinkSpec
from tests.helpers import ROOT

PUMP = ROOT / "pump"


def test_every_registered_type_loads_a_spec() -> None:
    for name in sinks.SINKS:
        spec = sinks.spec(name)
        assert isinstance(spec, SinkSpec)
        assert issubclass(spec.meta, SinkMeta)
        assert sinks.meta_model(name.upper()) is spec.meta
    assert {t for t in sinks.SINKS if sinks.spec(t).uptime is not None} == {"sql", "mongo"}


def test_meta_is_validated_once() -> None:
    """The model the loader validated is the one the sink gets; a hand-made pump is validated at build."""
    config, _ = validate({"pumps": {"out": {"type": "stdout", "meta": {"format": "json"}}}})
    pump = config.pumps["out"]
    kept = pump.validated_meta()
    assert kept is not None and pump.meta["format"] == "json"
    sink = sinks.build(SinkContext("out", pump, config))
    assert sink.meta is kept  # type: ignore[attr-defined]
    bounded = pump.model_copy(update={"timeout": 1.0})  # what `pump validate --check` builds from
    assert sinks.build(SinkContext("out", bounded, config)).meta is kept  # type: ignore[attr-defined]

    pump.meta = {"format": "text"}  # replaced: the kept model no longer describes it
    assert pump.validated_meta() is None
    assert sinks.build(SinkContext("out", pump, config)).meta.format == "text"  # type: ignore[attr-defined]


@pytest.fixture
def missing_family() -> Iterator[None]:
    sinks.SINKS["nowhere"] = "pump_no_such_module:SPEC [kafka]"
    yield
    sinks.SINKS.pop("nowhere", None)


@pytest.mark.usefixtures("missing_family")
def test_a_missing_module_names_the_extra_that_installs_it() -> None:
    with pytest.raises(sinks.SinkUnavailable, match=r"pump type 'nowhere' cannot be loaded .*pip install 'pump\[kafka\]'"):
        sinks.meta_model("nowhere")


def test_config_loader_imports_no_sink_family() -> None:
    """`pump validate` of a CSV-only file never imports a database sink (or its driver)."""
    code = (
        "import sys, pump.config.load as l, pump.sinks;"
        "l.validate({'pumps': {'csv': {'type': 'csv', 'meta': {'csv_dir': 'x'}}}});"
        "print(sorted(m for m in sys.modules if m.startswith(('pump.sinks.', 'psycopg', 'pymongo', 'bson'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "['pump.sinks.base', 'pump.sinks.csv']"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """pump module → the pump modules it imports: function-level imports and the registry's included."""
    modules = {_module_name(p): p for p in PUMP.rglob("*.py")}

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {r for t in targets if t.startswith("pump") and (r := resolve(t)) and r != name}
    graph["pump.sinks"] |= {resolve(entry.split(":")[0].split(" ")[0]) for entry in sinks.SINKS.values()}  # lazy imports
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_no_import_cycle_through_config_or_the_registry() -> None:
    """The loader depends on the registry, the registry on the families, a family on the config
    models; nothing leads back (a sink importing the loader made one, hidden in a function)."""
    graph = _import_graph()
    scope = [m for m in graph if m.startswith("pump.config") or m in ("pump.sinks", "pump.sinks.base")]
    cycles = sorted(f"{m} -> {d}" for m in scope for d in graph[m] if _reaches(graph, d, m))
    assert cycles == []


def test_sink_modules_stay_small() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (PUMP / "sinks").rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 410} == {}
