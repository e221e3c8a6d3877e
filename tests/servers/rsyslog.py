"""rsyslog from Debian (``rsyslog`` + ``rsyslog-gnutls``, 8.2302 on bookworm) as a syslog receiver ("syslog").

Each start runs ``rsyslogd -n`` (foreground) with a private configuration written into the work
directory: nothing from ``/etc/rsyslog.conf`` applies, no system log socket is touched, and the pid
file, queue files and output stay in the work directory. It listens on 127.0.0.1:

* UDP and TCP on the same port (the URL, ``127.0.0.1:PORT``, as on the well-known port 514); TCP
  accepts both RFC 6587 framings, octet counting (``<len> <msg>``) and LF-terminated lines;
* TLS (RFC 5425) on ``details["tls_addr"]``, with a server certificate from a fresh test CA
  (``details["tls"]["ca"]`` is the CA file a client must trust; see :mod:`tests.servers.certs`).

Every message received is written as one JSON object per line to ``details["file"]``
(``workdir/syslog/messages.jsonl``), with what rsyslog parsed from it: ``input`` (udp, tcp or tls),
``pri``, ``facility``, ``severity``, ``timestamp``, ``hostname``, ``app_name``, ``procid``,
``msgid``, ``structured_data``, ``msg`` and ``raw`` (the message as received, without framing).
Control characters (a newline inside an octet-counted message) are kept as received, not
replaced by rsyslog's default ``#012`` escapes, so a test can compare payloads exactly.
:func:`read_messages` and :func:`wait_for_messages` read that file.

Readiness is checked with real messages: probes (app-name ``pump-probe``) are sent over UDP, TCP
and TLS until each appears in a separate ``probe.jsonl``; they never reach ``messages.jsonl``.
rsyslogd runs as the calling user (root in CI), since it must write into the caller's work directory.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from . import Server, ServerError, apt_install, certs, free_port, launch, run_checked, wait_ready

PROBE_APP = "pump-probe"
_PACKAGES = ["rsyslog", "rsyslog-gnutls"]
_GTLS_MODULE = "lmnsd_gtls.so"
_FALLBACK_BINARIES = ("/usr/sbin/rsyslogd",)


def _gtls_present() -> bool:
    """Whether rsyslog's GnuTLS network stream driver (package rsyslog-gnutls) is installed."""
    return any(pathlib.Path("/usr/lib").glob(f"*/rsyslog/{_GTLS_MODULE}")) or pathlib.Path(f"/usr/lib/rsyslog/{_GTLS_MODULE}").exists()


def rsyslogd_binary() -> str:
    """Path of ``rsyslogd`` (with its GnuTLS driver), installing the Debian packages when missing."""
    found = shutil.which("rsyslogd") or next((p for p in _FALLBACK_BINARIES if pathlib.Path(p).exists()), None)
    if found and _gtls_present():
        return found
    apt_install(_PACKAGES)
    found = shutil.which("rsyslogd") or next((p for p in _FALLBACK_BINARIES if pathlib.Path(p).exists()), None)
    if not found:
        raise ServerError("rsyslogd still missing after apt-get install rsyslog rsyslog-gnutls")
    return found


def _version(binary: str) -> str:
    out = run_checked([binary, "-v"], what="rsyslogd -v", timeout=30)
    words = out.split()
    return f"rsyslog {words[1]}" if len(words) > 1 else "rsyslog"


def _config(out_dir: pathlib.Path, port: int, tls_port: int, tls: certs.TlsFiles, max_message_size: str) -> str:
    """The private rsyslog configuration (RainerScript)."""
    fields = [
        ("input", "inputname"),
        ("pri", "pri"),
        ("facility", "syslogfacility-text"),
        ("severity", "syslogseverity-text"),
        ("timestamp", "timereported"),
        ("hostname", "hostname"),
        ("app_name", "app-name"),
        ("procid", "procid"),
        ("msgid", "msgid"),
        ("structured_data", "structured-data"),
        ("msg", "msg"),
        ("raw", "rawmsg"),
    ]
    properties = "\n".join(
        f'  property(outname="{out}" name="{name}" format="jsonf"' + (' dateFormat="rfc3339"' if name == "timereported" else "") + ")"
        for out, name in fields
    )
    return f"""# Written by tests/servers/rsyslog.py for one test server; not a system configuration.
global(
  workDirectory="{out_dir}"
  maxMessageSize="{max_message_size}"
  parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriverCAFile="{tls.ca}"
  defaultNetstreamDriverCertFile="{tls.server_cert}"
  defaultNetstreamDriverKeyFile="{tls.server_key}"
)
module(load="imudp")
module(load="imtcp" maxSessions="1000")
input(type="imudp" address="127.0.0.1" port="{port}" name="udp")
input(type="imtcp" address="127.0.0.1" port="{port}" name="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" name="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")

template(name="pump_json" type="list" option.jsonf="on") {{
{properties}
}}

if $app-name == "{PROBE_APP}" then {{
  action(type="omfile" file="{out_dir / "probe.jsonl"}" template="pump_json")
  stop
}}
action(type="omfile" file="{out_dir / "messages.jsonl"}" template="pump_json" flushOnTXEnd="on" asyncWriting="off")
"""


def start_syslog(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    max_message_size: str = "256k",
    timeout: float = 30.0,
) -> Server:
    """Start rsyslogd on 127.0.0.1 (UDP+TCP on ``port``, TLS on another port); see the module docstring.

    ``max_message_size`` is rsyslog's limit per message (longer ones are truncated, as a real
    receiver with that setting would); UDP datagrams are further limited to ~64 KB by the network.
    """
    binary = rsyslogd_binary()
    port = port or free_port(udp=True)
    tls_port = free_port(avoid=[port])
    out_dir = workdir / "syslog"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("messages.jsonl", "probe.jsonl"):
        (out_dir / name).unlink(missing_ok=True)
    tls = certs.make_tls_files(workdir / "syslog-tls")
    conf = workdir / "rsyslog.conf"
    conf.write_text(_config(out_dir, port, tls_port, tls, max_message_size))
    run_checked([binary, "-N1", "-f", str(conf)], what="rsyslogd -N1 (config check)", timeout=30)

    cmd = [binary, "-n", "-f", str(conf), "-i", str(workdir / "rsyslogd.pid")]
    server = launch("syslog", cmd, url=f"127.0.0.1:{port}", port=port, workdir=workdir, log_path=workdir / "rsyslog.log")
    server.details.update(
        version=_version(binary),
        file=str(out_dir / "messages.jsonl"),
        tls_addr=f"127.0.0.1:{tls_port}",
        tls=tls.as_dict(),
    )

    probe_file = out_dir / "probe.jsonl"
    context = ssl.create_default_context(cafile=str(tls.ca))
    transports = ("udp", "tcp", "tls")

    def probe() -> bool:
        arrived = {m.get("input") for m in _read(probe_file)}
        for transport in transports:
            if transport not in arrived:
                send(server, f"<14>1 - - {PROBE_APP} - - - ready? {transport}".encode(), transport=transport, context=context)
        return arrived.issuperset(transports)

    wait_ready(server, probe, timeout=timeout, interval=0.1)
    return server


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def send(
    server: Server,
    message: bytes,
    *,
    transport: str = "udp",
    framing: str = "octet-counting",
    context: ssl.SSLContext | None = None,
) -> None:
    """Send one syslog message to ``server`` over ``udp``, ``tcp`` or ``tls`` (a test's own client).

    TCP and TLS frame it by octet counting (RFC 6587/5425) or, with ``framing="lf"``, by a newline.
    """
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, _address(server.url))
        return
    framed = f"{len(message)} ".encode() + message if framing == "octet-counting" else message + b"\n"
    if transport == "tcp":
        with socket.create_connection(_address(server.url), timeout=5) as sock:
            sock.sendall(framed)
        return
    if transport == "tls":
        if context is None:
            context = ssl.create_default_context(cafile=server.details["tls"]["ca"])
        with (
            socket.create_connection(_address(server.details["tls_addr"]), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(framed)
            # Say goodbye properly (close_notify); rsyslog closes without answering it, which is fine.
            with contextlib.suppress(OSError):
                sock.unwrap()
        return
    raise ValueError(f"unknown transport {transport!r}; expected udp, tcp or tls")


def _read(path: pathlib.Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    messages = []
    # rsyslog may be in the middle of appending a line: only lines ending in a newline are whole
    # messages; the rest is read on the next call.
    *complete, _partial = path.read_text(encoding="utf-8", errors="replace").split("\n")
    for line in complete:
        if line.strip():
            messages.append(json.loads(line))
    return messages


def read_messages(server: Server) -> list[dict[str, Any]]:
    """Every message the server has written to its output file so far (see the module docstring)."""
    file = server.details.get("file")
    if not file:
        raise ServerError("this syslog server has no readable output file (set PUMP_TEST_SYSLOG_FILE for an external one)")
    return _read(pathlib.Path(file))


def wait_for_messages(
    server: Server,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    count: int = 1,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Poll the output file until ``count`` messages satisfy ``predicate``; return those (raise on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in read_messages(server) if predicate(m)]
        if len(found) >= count or time.monotonic() >= deadline:
            if len(found) < count:
                raise AssertionError(f"{len(found)} of {count} expected syslog messages arrived within {timeout:.0f}s")
            return found
        time.sleep(0.05)
