"""Reading a Prometheus text exposition in tests: exact samples by name and label set."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = frozenset[tuple[str, str]]


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    """(status, body); status 0 while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def parse(text: str) -> dict[str, dict[Labels, float]]:
    """``{sample name: {label set: value}}``; raises on a line that is not valid text format."""
    out: dict[str, dict[Labels, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ValueError(f"not a sample line: {line!r}")
        name, labels, value = m.groups()
        key = frozenset((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")) for k, v in _LABEL.findall(labels or ""))
        out.setdefault(name, {})[key] = float(value)
    return out


def types(text: str) -> dict[str, str]:
    """``{family: type}`` from the ``# TYPE`` lines."""
    return {parts[2]: parts[3] for line in text.splitlines() if (parts := line.split(" ")) and line.startswith("# TYPE ")}


def labels(**kv: str) -> Labels:
    return frozenset(kv.items())


def value(samples: dict[str, dict[Labels, float]], name: str, **kv: str) -> float:
    return samples.get(name, {}).get(labels(**kv), 0.0)
