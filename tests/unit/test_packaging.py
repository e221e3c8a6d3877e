"""The packaging promises of issue 10: one version, a lock the Dockerfile uses, typed, a lint gate in CI."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pump

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (``redis[hiredis]>=5`` → ``redis``)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _runtime_requirements() -> set[str]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    names = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for extra in extras["all"]:
        # "pump[postgres,mongo,...]": every extra named inside the brackets is a runtime one.
        inside = re.search(r"\[(.*)\]", extra)
        assert inside, extra
        for part in inside.group(1).split(","):
            names |= {_name(r) for r in extras[part.strip()]}
    return names


def test_version_is_written_once() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pump.__version__"}  # type: ignore[index]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pump.__version__)


def test_constraints_pin_every_runtime_dependency() -> None:
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line {line!r} is not pinned with =="
            pinned[_name(name)] = version
    missing = _runtime_requirements() - set(pinned)
    assert not missing, f"run scripts/lock: constraints.txt lacks {sorted(missing)}"


def test_dockerfile_installs_with_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt" in dockerfile
    assert re.search(r"pip install .*-c constraints\.txt", dockerfile)


def test_package_is_typed() -> None:
    assert (ROOT / "pump" / "py.typed").exists()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["pump"]  # type: ignore[index]


def test_ci_runs_the_lint_gate_before_the_tests() -> None:
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines.index("scripts/lint") < lines.index("exec scripts/test")
    lint = (ROOT / "scripts" / "lint").read_text()
    for step in ('ruff" check', 'ruff" format --check', 'mypy" --strict pump'):
        assert step in lint
