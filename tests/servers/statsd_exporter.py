"""A real StatsD receiver: Prometheus' statsd_exporter, built from the Go module proxy ("statsd").

statsd_exporter accepts StatsD (and DogStatsD, InfluxDB, Librato and SignalFX tag styles) over UDP
and TCP and exposes what it received as Prometheus metrics, so a test sends with the pump's StatsD
or DogStatsD sink and then scrapes ``/metrics`` to see exactly what arrived: counters become
counters named ``<name>`` (no ``_total``), gauges gauges, timings (``|ms``) summaries (or histograms, see
``mapping_config``) in seconds, and DogStatsD ``|#key:value`` tags become labels. Metric names have
``.`` replaced by ``_``.

The binary is built once per version with ``go install github.com/prometheus/statsd_exporter@VERSION``
(``GOTOOLCHAIN=local``, ``CGO_ENABLED=0``) into ``<cache>/statsd_exporter/<version>-<platform>/``.

Each start listens on 127.0.0.1: StatsD on UDP and TCP on the same port (the URL, ``127.0.0.1:PORT``),
metrics on ``details["metrics_url"]`` (``http://127.0.0.1:PORT2/metrics``). TCP takes newline-
terminated lines. Readiness is checked by sending a ``pump_test_probe`` counter over both transports
until both show up in a scrape (so that metric is always present; tests look for their own names).
"""

from __future__ import annotations

import pathlib
import re
import socket
import time
import urllib.request
from collections.abc import Mapping

from . import Server, free_port, go_install, launch, wait_ready

MODULE = "github.com/prometheus/statsd_exporter"
VERSION = "v0.31.0"
PROBE_METRIC = "pump_test_probe"


def statsd_exporter_binary() -> pathlib.Path:
    """Path of the cached statsd_exporter binary, building it from the Go module proxy on first use."""
    # The version an official build stamps in, so `statsd_exporter --version` and build_info say it.
    ldflags = f"-X github.com/prometheus/common/version.Version={VERSION.lstrip('v')}"
    return go_install(
        "statsd_exporter", MODULE, VERSION, needed_for="statsd_exporter for the StatsD tests", first_run="~1 min", timeout=1800,
        ldflags=ldflags,
    )  # fmt: skip


def start_statsd(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    mapping_config: str | None = None,
    timeout: float = 30.0,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Start statsd_exporter on 127.0.0.1 (StatsD on UDP+TCP ``port``, metrics on another port).

    ``mapping_config`` is the text of a statsd_exporter mapping file (YAML), e.g.
    ``"defaults:\\n  observer_type: histogram\\n"`` to turn timings into histograms.
    """
    binary = statsd_exporter_binary()
    port = port or free_port(udp=True)
    web_port = free_port(avoid=[port])
    cmd = [
        str(binary),
        f"--statsd.listen-udp=127.0.0.1:{port}",
        f"--statsd.listen-tcp=127.0.0.1:{port}",
        f"--web.listen-address=127.0.0.1:{web_port}",
        # Metrics reach /metrics within this interval after a packet arrived.
        "--statsd.event-flush-interval=50ms",
        "--log.level=info",
    ]
    if mapping_config is not None:
        mapping = workdir / "statsd-mapping.yml"
        mapping.write_text(mapping_config)
        cmd.append(f"--statsd.mapping-config={mapping}")
    cmd += list(extra_args)
    metrics_url = f"http://127.0.0.1:{web_port}/metrics"
    server = launch("statsd", cmd, url=f"127.0.0.1:{port}", port=port, workdir=workdir, log_path=workdir / "statsd_exporter.log")
    server.details.update(version=f"statsd_exporter {VERSION}", metrics_url=metrics_url, web_port=web_port)

    def probe() -> bool:
        text = scrape(server)
        missing = [t for t in ("udp", "tcp") if f'{PROBE_METRIC}{{transport="{t}"}}' not in text]
        for transport in missing:
            send(server, f"{PROBE_METRIC}:1|c|#transport:{transport}".encode(), transport=transport)
        return not missing

    wait_ready(server, probe, timeout=timeout, interval=0.1)
    return server


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def send(server: Server, payload: bytes, *, transport: str = "udp") -> None:
    """Send StatsD lines (``b"name:1|c"``, several separated by ``\\n``) to ``server`` over ``udp`` or ``tcp``."""
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, _address(server.url))
    elif transport == "tcp":
        with socket.create_connection(_address(server.url), timeout=5) as sock:
            sock.sendall(payload if payload.endswith(b"\n") else payload + b"\n")
    else:
        raise ValueError(f"unknown transport {transport!r}; expected udp or tcp")


def scrape(server: Server) -> str:
    """The Prometheus text exposition of ``server``'s metrics endpoint."""
    url = server.details.get("metrics_url")
    if not url:
        raise RuntimeError("this StatsD server has no metrics URL (set PUMP_TEST_STATSD_METRICS_URL for an external one)")
    with urllib.request.urlopen(str(url), timeout=5) as resp:
        return str(resp.read().decode("utf-8"))


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def _unescape(match: re.Match[str]) -> str:
    return "\n" if match.group(1) == "n" else match.group(1)


def samples(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, named exactly as exposed: ``(name, frozenset(labels.items())) -> value``.

    Parsed here rather than with prometheus_client's parser, which renames counter samples to
    ``<name>_total`` although statsd_exporter exposes a StatsD counter ``a.b`` as plain ``a_b``.
    """
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in scrape(server).splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, label_text, value = match.groups()
        labels = frozenset((k, _ESCAPE.sub(_unescape, v)) for k, v in _LABEL.findall(label_text or ""))
        found[(name, labels)] = float(value)
    return found


def wait_for_sample(
    server: Server,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    value: float | None = None,
    timeout: float = 10.0,
) -> float:
    """Scrape until sample ``name`` with exactly ``labels`` exists (and equals ``value`` if given); return its value."""
    key = (name, frozenset((labels or {}).items()))
    deadline = time.monotonic() + timeout
    current: float | None = None
    while True:
        current = samples(server).get(key)
        if current is not None and (value is None or current == value):
            return current
        if time.monotonic() >= deadline:
            raise AssertionError(f"sample {name}{dict(labels or {})} is {current}, expected {value if value is not None else 'present'}")
        time.sleep(0.05)
