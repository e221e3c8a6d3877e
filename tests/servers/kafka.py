"""Apache Kafka 4.4.0 from Maven Central: one broker in KRaft mode (combined broker + controller, no ZooKeeper).

Neither Debian nor PyPI carries a Kafka broker and its download site is out of reach, but the broker
itself is a Maven artifact (``org.apache.kafka:kafka_2.13``). One-time setup, cached under
``<cache>/kafka/<hash of kafka_src>/`` (see :mod:`tests.servers.jvm`):

1. Maven resolves ``kafka_src/pom.xml`` into a classpath (~45 MB of jars in ``~/.m2``);
2. ``kafka.tools.StorageTool format`` formats a template log directory (cluster id, bootstrap
   metadata, the SCRAM users below) that every start copies instead of formatting again (~1.5 s
   of JVM each time);
3. the first clean stop records a class-data archive that shortens later starts.

Each start runs ``kafka.Kafka`` with a generated ``server.properties`` on 127.0.0.1: the PLAINTEXT
listener on ``port`` (the URL, ``127.0.0.1:PORT``, is what clients take as ``bootstrap.servers``)
and the controller on another free port. Topics are created automatically on first use with
``partitions`` partitions; internal topics have replication factor 1.

Optional listeners for the security settings of a Kafka sink:

* ``sasl=True``: a SASL_PLAINTEXT listener with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, user
  ``pump`` / ``pump-test-password`` (``details["sasl_bootstrap"]``, ``details["sasl_user"]``...);
* ``tls=True``: an SSL listener with a certificate from a fresh test CA (``details["tls_bootstrap"]``,
  ``details["tls"]`` has the PEM paths, see :mod:`tests.servers.certs`); with
  ``tls_client_auth="required"`` the broker insists on a client certificate from that CA.

Memory: a JVM with a 512 MB heap and ~200 MB more; share one per session and isolate tests by topic.
"""

from __future__ import annotations

import base64
import os
import pathlib
import shutil
import uuid

from . import (
    Server,
    cache_lock,
    cache_root,
    certs,
    free_port,
    free_ports,
    hash_files,
    jvm,
    launch,
    run_checked,
    step,
    wait_ready,
)

VERSION = "4.4.0"
SASL_USER = "pump"
SASL_PASSWORD = "pump-test-password"
_SRC = pathlib.Path(__file__).resolve().parent / "kafka_src"
_SOURCES = (_SRC / "pom.xml", _SRC / "log4j2.properties")
_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")

#: Settings of every test broker: single node, fast group joins, small segments.
_BASE_SETTINGS: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "5",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.retention.check.interval.ms": "3600000",
}


def build() -> tuple[pathlib.Path, str]:
    """The cache directory and the broker's classpath (resolved once per ``kafka_src`` hash)."""
    directory = cache_root() / "kafka" / hash_files(_SOURCES)
    entries = jvm.read_classpath(directory / "cp.txt")
    if entries is None:
        with cache_lock("kafka-build"):
            what = f"Apache Kafka {VERSION} (~45 MB of jars)"
            entries = jvm.resolve_classpath(_SRC / "pom.xml", directory, what=what, first_run="~1 min")
    return directory, os.pathsep.join(entries)


def _write_properties(path: pathlib.Path, settings: dict[str, str]) -> None:
    # Values are plain (paths, host:port lists, JAAS lines); only backslashes need escaping.
    path.write_text("".join(f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in settings.items()))


def template_dir(directory: pathlib.Path, classpath: str) -> pathlib.Path:
    """A formatted KRaft log directory (with the SCRAM users), made once per build."""
    template = directory / "template"
    if (template / "meta.properties").exists():
        return template
    with cache_lock("kafka-template"):
        if (template / "meta.properties").exists():
            return template
        with step(f"formatting a Kafka {VERSION} template log directory", first_run="~3 s"):
            staging = directory / "template.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            props = directory / "format.properties"
            controller = free_port()
            _write_properties(
                props,
                {
                    **_BASE_SETTINGS,
                    "listeners": f"PLAINTEXT://127.0.0.1:{free_port(avoid=[controller])},CONTROLLER://127.0.0.1:{controller}",
                    "controller.quorum.voters": f"1@127.0.0.1:{controller}",
                    "log.dirs": str(staging),
                },
            )
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            scram = [arg for mech in _SCRAM for arg in ("--add-scram", f"{mech}=[name={SASL_USER},password={SASL_PASSWORD}]")]
            run_checked(
                [
                    jvm.tool("java"),
                    "-Xmx256m",
                    f"-Dlog4j2.configurationFile={_SRC / 'log4j2.properties'}",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    cluster_id,
                    "--config",
                    str(props),
                    *scram,
                ],
                what="kafka-storage format",
                timeout=300,
            )
            os.replace(staging, template)
    return template


def start_kafka(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    partitions: int = 1,
    sasl: bool = False,
    tls: bool = False,
    tls_client_auth: str = "none",
    settings: dict[str, str] | None = None,
    heap: str = "512m",
    timeout: float = 120.0,
    persistent: bool = False,
) -> Server:
    """Start a single-node KRaft Kafka broker on 127.0.0.1 (log directory ``workdir/kafka-data``).

    ``settings`` adds or overrides broker properties. With ``persistent=True`` the log directory of
    an earlier persistent start in the same ``workdir`` is reused (restart tests); otherwise every
    start begins with a copy of the empty template. Returns once the broker answers a metadata
    request listing itself.
    """
    directory, classpath = build()
    template = template_dir(directory, classpath)
    java = jvm.tool("java")
    port = port or free_port()
    controller, sasl_port, tls_port = free_ports(3, avoid=[port])

    data_dir = workdir / "kafka-data"
    if not (persistent and (data_dir / "meta.properties").exists()):
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.copytree(template, data_dir)

    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{controller}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    config: dict[str, str] = {}
    details: dict[str, object] = {"version": f"Apache Kafka {VERSION} (KRaft)", "port": port, "controller_port": controller}
    if sasl:
        listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        config["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] = ",".join(("PLAIN", *_SCRAM))
        config["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{SASL_USER}" password="{SASL_PASSWORD}" user_{SASL_USER}="{SASL_PASSWORD}";'
        )
        for mech in _SCRAM:
            config[f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        details.update(
            sasl_bootstrap=f"127.0.0.1:{sasl_port}", sasl_user=SASL_USER, sasl_password=SASL_PASSWORD, sasl_mechanisms=["PLAIN", *_SCRAM]
        )
    if tls:
        files = certs.make_tls_files(workdir / "kafka-tls")
        keystore = files.directory / "server-keystore.pem"
        keystore.write_bytes(files.server_key.read_bytes() + files.server_cert.read_bytes())
        listeners.append(f"SSL://127.0.0.1:{tls_port}")
        protocols.append("SSL:SSL")
        config.update(
            {
                "listener.name.ssl.ssl.keystore.type": "PEM",
                "listener.name.ssl.ssl.keystore.location": str(keystore),
                "listener.name.ssl.ssl.truststore.type": "PEM",
                "listener.name.ssl.ssl.truststore.location": str(files.ca),
                "listener.name.ssl.ssl.client.auth": tls_client_auth,
            }
        )
        details.update(tls_bootstrap=f"127.0.0.1:{tls_port}", tls=files.as_dict(), tls_client_auth=tls_client_auth)

    properties = workdir / "server.properties"
    _write_properties(
        properties,
        {
            **_BASE_SETTINGS,
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(x for x in listeners if not x.startswith("CONTROLLER:")),
            "listener.security.protocol.map": ",".join(protocols),
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "log.dirs": str(data_dir),
            "num.partitions": str(partitions),
            **config,
            **(settings or {}),
        },
    )
    cds = jvm.ClassDataArchive(directory, java, classpath, str(port))
    cmd = [
        java,
        *cds.server_args(heap),
        f"-Dlog4j2.configurationFile={_SRC / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={workdir}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(properties),
    ]
    url = f"127.0.0.1:{port}"
    server = launch(
        "kafka",
        cmd,
        url=url,
        port=port,
        workdir=workdir,
        log_path=workdir / "kafka.log",
        stop_timeout=60.0,
        on_stopped=cds.publish,
    )
    server.details.update(details)

    from confluent_kafka.admin import AdminClient  # imported late: only needed once a server is running

    def broker_listed() -> bool:
        admin = AdminClient({"bootstrap.servers": url, "socket.timeout.ms": 1000, "log_level": 0})
        metadata = admin.list_topics(timeout=1)
        return 1 in metadata.brokers

    wait_ready(server, broker_listed, timeout=timeout, interval=0.2)
    return server
