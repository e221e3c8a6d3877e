"""Our own HTTP receiver for the HTTP-family sinks ("http"): records every request, fails on demand.

A real HTTP server (the standard library's threading HTTP/1.1 server, keep-alive, chunked request
bodies, ``Expect: 100-continue``) run as a separate process on 127.0.0.1, so the pump under test
talks to it over real sockets exactly as to a webhook, Splunk HEC or Moesif endpoint, and a test
can stop it (outage) or SIGKILL it like any other server. It records every request: method, path,
query, headers, the body after undoing ``Content-Encoding: gzip``/``deflate`` (and the size on the
wire), the status it answered and, over TLS, the client certificate's subject.

By default it answers ``200 {"ok": true}``. Rules change that, for the next ``count`` matching
requests (or all of them), optionally only for one ``path``/``path_prefix``/``method``:

* a status with an optional ``Retry-After`` and body (429, 500, 503, 400, 413, …);
* a ``delay`` in seconds before answering (timeouts; the request is already recorded while it waits);
* ``close``: drop the connection without any response (a crashed or misbehaving proxy).

A rule may also require ``body_contains``: a text the (decoded) body must contain, so a test can
have the server refuse exactly the requests that carry one bad record, as a real collector would.

Rules are checked in the order added; the first that matches and has requests left applies.
Everything is driven over HTTP on reserved paths under ``/_receiver/`` (never recorded), so it
works the same for a receiver run elsewhere (``python -m tests.servers http`` in another terminal,
pointed at with ``PUMP_TEST_HTTP_RECEIVER_URL``). Tests use :class:`HttpReceiver`::

    receiver = HttpReceiver(server)
    receiver.fail(429, count=2, retry_after=1)
    ...  # run the sink
    assert [r.status for r in receiver.requests()] == [429, 429, 200]

TLS (``tls=True``): the receiver gets a server certificate from a fresh test CA
(``details["tls"]["ca"]`` is what a client must trust, see :mod:`tests.servers.certs`);
``client_auth="optional"`` or ``"required"`` asks for a client certificate from that CA (the TLS
handshake of a client without one fails in ``required`` mode and is counted in
``stats()["tls_failures"]``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import http.server
import json
import os
import pathlib
import signal
import socket
import ssl
import sys
import threading
import time
import zlib
from typing import Any

from . import Server, certs, free_port, launch, wait_ready

CONTROL_PREFIX = "/_receiver/"
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ the server process


@dataclasses.dataclass
class _Rule:
    status: int = 200
    count: int | None = None
    path: str | None = None
    path_prefix: str | None = None
    method: str | None = None
    body_contains: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    body: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    action: str = "respond"  # or "close"
    hits: int = 0

    def matches(self, method: str, path: str, body: bytes = b"") -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        if self.body_contains is not None and self.body_contains.encode() not in body:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None and self.path != path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class _State:
    """What the receiver has seen and how it must answer; shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.rules: list[_Rule] = []
        self.keep_bodies = True
        self.seq = 0
        self.total_bytes = 0
        self.by_status: dict[str, int] = {}
        self.tls_failures = 0

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.rules.clear()
            self.keep_bodies = True
            self.total_bytes = 0
            self.by_status.clear()
            self.tls_failures = 0

    def pick_rule(self, method: str, path: str, body: bytes = b"") -> _Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path, body):
                    rule.hits += 1
                    return rule
        return None


def _decode_body(raw: bytes, encoding: str) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate; a list is undone right to left)."""
    data = raw
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding in ("gzip", "x-gzip"):
            data = zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            try:
                data = zlib.decompress(data)
            except zlib.error:
                data = zlib.decompress(data, wbits=-zlib.MAX_WBITS)  # raw deflate, as some clients send
        elif coding != "identity":
            raise ValueError(f"unsupported Content-Encoding {coding!r}")
    return data


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pump-test-receiver/1"
    server: _ReceiverServer

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request on stderr (the receiver's log file)."""
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                with self.server.state.lock:
                    self.server.state.tls_failures += 1
                sys.stderr.write(f"TLS handshake failed: {exc}\n")
                self.close_connection = True
                raise

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):
                self.wfile.write(body)

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        raw = self._read_body()
        if path.startswith(CONTROL_PREFIX):
            self._control(path[len(CONTROL_PREFIX) :], raw)
            return
        state = self.server.state
        try:
            decoded = _decode_body(raw, self.headers.get("Content-Encoding", ""))
        except (zlib.error, ValueError):
            decoded = raw
        rule = state.pick_rule(self.command, path, decoded)
        record: dict[str, Any] = {
            "method": self.command,
            "path": path,
            "query": query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "raw_size": len(raw),
            "time": time.time(),
            "tls": isinstance(self.connection, ssl.SSLSocket),
            "client_cert_subject": None,
        }
        if isinstance(self.connection, ssl.SSLSocket):
            peer = self.connection.getpeercert()
            if peer:
                subject: Any = peer.get("subject", ())
                record["client_cert_subject"] = {str(k): str(v) for rdn in subject for k, v in rdn}
        status = rule.status if rule is not None and rule.action == "respond" else 200
        body = raw
        try:
            body = _decode_body(raw, self.headers.get("Content-Encoding", ""))
        except (zlib.error, ValueError) as exc:
            record["decode_error"] = str(exc)
            status = 400
        record["body_size"] = len(body)
        with state.lock:
            state.seq += 1
            record["seq"] = state.seq
            record["status"] = status if rule is None or rule.action == "respond" else None
            record["body"] = base64.b64encode(body).decode() if state.keep_bodies else None
            state.records.append(record)
            state.total_bytes += len(raw)
            key = str(record["status"]) if record["status"] is not None else "closed"
            state.by_status[key] = state.by_status.get(key, 0) + 1
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and rule.action == "close":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if "decode_error" in record:
            self._send(400, json.dumps({"error": record["decode_error"]}).encode())
            return
        headers = dict(rule.headers) if rule is not None else {}
        if rule is not None and rule.retry_after is not None:
            headers["Retry-After"] = rule.retry_after
        if rule is not None and rule.body is not None:
            response = rule.body.encode()
        else:
            response = json.dumps({"ok": 200 <= status < 300, "status": status}).encode()
        self._send(status, response, headers)

    def _control(self, command: str, raw: bytes) -> None:
        state = self.server.state
        if self.command == "GET" and command == "health":
            self._send(200, b'{"ok": true}')
        elif self.command == "GET" and command == "requests":
            with state.lock:
                body = json.dumps({"requests": state.records}).encode()
            self._send(200, body)
        elif self.command == "DELETE" and command == "requests":
            with state.lock:
                state.records.clear()
            self._send(200, b'{"ok": true}')
        elif self.command == "POST" and command == "rules":
            spec = json.loads(raw or b"{}")
            rule = _Rule(**{k: v for k, v in spec.items() if k in _Rule.__dataclass_fields__ and k != "hits"})
            with state.lock:
                state.rules.append(rule)
                index = len(state.rules) - 1
            self._send(200, json.dumps({"rule": index}).encode())
        elif self.command == "GET" and command == "rules":
            with state.lock:
                body = json.dumps({"rules": [dataclasses.asdict(r) for r in state.rules]}).encode()
            self._send(200, body)
        elif self.command == "DELETE" and command == "rules":
            with state.lock:
                state.rules.clear()
            self._send(200, b'{"ok": true}')
        elif self.command == "POST" and command == "config":
            spec = json.loads(raw or b"{}")
            with state.lock:
                state.keep_bodies = bool(spec.get("keep_bodies", state.keep_bodies))
            self._send(200, b'{"ok": true}')
        elif self.command == "POST" and command == "reset":
            state.reset()
            self._send(200, b'{"ok": true}')
        elif self.command == "GET" and command == "stats":
            with state.lock:
                body = json.dumps(
                    {
                        "requests": len(state.records),
                        "bytes": state.total_bytes,
                        "by_status": state.by_status,
                        "tls_failures": state.tls_failures,
                    }
                ).encode()
            self._send(200, body)
        else:
            self._send(404, json.dumps({"error": f"unknown control request {self.command} {CONTROL_PREFIX}{command}"}).encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _ReceiverServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: _State, context: ssl.SSLContext | None) -> None:
        super().__init__(address, _Handler)
        self.state = state
        if context is not None:
            # The handshake happens in the handler thread (see _Handler.setup), not in accept().
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for clients that vanish or fail TLS (both expected in tests); anything else is logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pump test HTTP receiver (started by tests/servers/http_receiver.py)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--client-auth", choices=("none", "optional", "required"), default="none")
    args = parser.parse_args(argv)
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        if args.client_auth != "none":
            context.verify_mode = ssl.CERT_REQUIRED if args.client_auth == "required" else ssl.CERT_OPTIONAL
            context.load_verify_locations(args.ca)
    server = _ReceiverServer(("127.0.0.1", args.port), _State(), context)
    print(f"pump-test-receiver listening on 127.0.0.1:{args.port} ({'TLS' if context else 'plain HTTP'})", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


# --------------------------------------------------------------------------------- test-side API


def start_http(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    tls: bool = False,
    client_auth: str = "none",
    timeout: float = 30.0,
) -> Server:
    """Start the receiver on 127.0.0.1 (``http://`` or, with ``tls``, ``https://127.0.0.1:PORT``)."""
    if client_auth not in ("none", "optional", "required"):
        raise ValueError("client_auth must be none, optional or required")
    if client_auth != "none" and not tls:
        raise ValueError("client_auth needs tls=True")
    port = port or free_port()
    cmd = [sys.executable, "-m", "tests.servers.http_receiver", "--port", str(port)]
    details: dict[str, Any] = {"version": "pump test receiver", "client_auth": client_auth}
    if tls:
        files = certs.make_tls_files(workdir / "http-tls")
        cmd += ["--cert", str(files.server_cert), "--key", str(files.server_key), "--ca", str(files.ca), "--client-auth", client_auth]
        details["tls"] = files.as_dict()
    scheme = "https" if tls else "http"
    server = launch(
        "http",
        cmd,
        url=f"{scheme}://127.0.0.1:{port}",
        port=port,
        workdir=workdir,
        log_path=workdir / "http-receiver.log",
        env={**_child_env(), "PYTHONUNBUFFERED": "1"},
        stop_timeout=10.0,
    )
    server.details.update(details)
    with HttpReceiver(server) as receiver:
        wait_ready(server, receiver.healthy, timeout=timeout)
    return server


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver recorded it."""

    seq: int
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    #: The body after undoing Content-Encoding (None when bodies are not kept, see ``configure``).
    body: bytes | None
    body_size: int
    raw_size: int
    #: The status answered; None when a ``close`` rule dropped the connection.
    status: int | None
    tls: bool
    client_cert_subject: dict[str, str] | None
    time: float
    decode_error: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def text(self) -> str:
        return (self.body or b"").decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def ndjson(self) -> list[Any]:
        """The body as newline-delimited JSON (one value per non-empty line)."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


class HttpReceiver:
    """Control and inspect a receiver (local or external) over its ``/_receiver/`` API."""

    def __init__(self, server: Server) -> None:
        import httpx

        self.server = server
        self.url = server.url.rstrip("/")
        tls = server.details.get("tls")
        verify: ssl.SSLContext | bool = True
        if tls:
            context = ssl.create_default_context(cafile=tls["ca"])
            context.load_cert_chain(tls["client_cert"], tls["client_key"])
            verify = context
        self._http = httpx.Client(base_url=self.url + CONTROL_PREFIX, verify=verify, timeout=10.0, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=payload)
        response.raise_for_status()
        return response.json()

    def healthy(self) -> bool:
        """True when the receiver answers its health request (used as the readiness probe)."""
        import httpx

        try:
            return bool(self._call("GET", "health").get("ok"))
        except (httpx.HTTPError, ValueError):
            return False

    def requests(self, *, path: str | None = None) -> list[ReceivedRequest]:
        """Every request recorded so far (in arrival order), optionally only those for ``path``."""
        found = []
        for r in self._call("GET", "requests")["requests"]:
            if path is not None and r["path"] != path:
                continue
            found.append(
                ReceivedRequest(
                    seq=r["seq"],
                    method=r["method"],
                    path=r["path"],
                    query=r["query"],
                    headers=tuple((k, v) for k, v in r["headers"]),
                    body=base64.b64decode(r["body"]) if r["body"] is not None else None,
                    body_size=r["body_size"],
                    raw_size=r["raw_size"],
                    status=r["status"],
                    tls=r["tls"],
                    client_cert_subject=r["client_cert_subject"],
                    time=r["time"],
                    decode_error=r.get("decode_error"),
                )
            )
        return found

    def wait_for(self, count: int, *, path: str | None = None, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Poll until at least ``count`` requests (for ``path``) were recorded; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(path=path)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"{len(found)} of {count} expected requests reached the receiver within {timeout:.0f}s")
            time.sleep(0.05)

    def respond(
        self,
        status: int = 200,
        *,
        count: int | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
        method: str | None = None,
        body_contains: str | None = None,
        retry_after: float | str | None = None,
        delay: float = 0.0,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        """Answer the next ``count`` matching requests (all if None) with ``status``; returns the rule's index."""
        retry = None if retry_after is None else (str(int(retry_after)) if isinstance(retry_after, int | float) else retry_after)
        spec = {
            "status": status,
            "count": count,
            "path": path,
            "path_prefix": path_prefix,
            "method": method,
            "body_contains": body_contains,
            "retry_after": retry,
            "delay": delay,
            "body": body,
            "headers": headers or {},
        }
        return int(self._call("POST", "rules", spec)["rule"])

    def fail(self, status: int = 500, **options: Any) -> int:
        """Shorthand for :meth:`respond` with an error status (429 with ``retry_after``, 500, 400, …)."""
        return self.respond(status, **options)

    def delay(self, seconds: float, *, status: int = 200, **options: Any) -> int:
        """Wait ``seconds`` before answering the matching requests (client timeouts)."""
        return self.respond(status, delay=seconds, **options)

    def drop_connections(self, *, count: int | None = None, path: str | None = None, path_prefix: str | None = None) -> int:
        """Close the connection of the matching requests without answering."""
        spec = {"action": "close", "count": count, "path": path, "path_prefix": path_prefix}
        return int(self._call("POST", "rules", spec)["rule"])

    def rules(self) -> list[dict[str, Any]]:
        """The rules with their ``hits`` so far."""
        return list(self._call("GET", "rules")["rules"])

    def clear_rules(self) -> None:
        self._call("DELETE", "rules")

    def clear(self) -> None:
        """Forget the recorded requests (rules stay)."""
        self._call("DELETE", "requests")

    def reset(self) -> None:
        """Forget requests, rules and counters: a fresh receiver."""
        self._call("POST", "reset")

    def configure(self, *, keep_bodies: bool) -> None:
        """``keep_bodies=False`` records sizes only (for benchmarks that send hundreds of MB)."""
        self._call("POST", "config", {"keep_bodies": keep_bodies})

    def stats(self) -> dict[str, Any]:
        """``requests``, ``bytes`` (on the wire), ``by_status`` counts and ``tls_failures``."""
        return dict(self._call("GET", "stats"))


if __name__ == "__main__":
    _serve()
