"""``pump run --workers N``: N claiming processes under one supervisor, so every core is used.

The pump's hot path (decode, views, encoders) is Python on one core; Redis hands out batches
under leases to any number of claimers, so the simplest way to use N cores is N processes, each a
whole daemon (``pump.app.Daemon``) with its own claims. The supervisor:

* forks the workers (each a child with the supervisor's modules and parsed config, claiming at
  once) with ``instance_id`` ``<id>-w<i>`` (a restarted worker adopts its own leased claims at
  once; two workers never share an id) and each on a private loopback health port;
* serves the configured health port itself: ``/health`` and ``/ready`` answer 200 only when every
  worker's does, ``/metrics`` is every worker's metrics summed (timestamps: the latest), so
  dashboards and ``pump top`` see one pump;
* forwards SIGTERM/SIGINT to every worker (a second one too: they then stop at once) and exits
  with the worst of their exit codes — with ``--once`` as without;
* restarts a worker that died while the pump was running (a SIGKILL, an OOM kill), after a
  short backoff; nothing is lost, its claims are leased and it takes them back when it starts.

Workers die with the supervisor (``PR_SET_PDEATHSIG`` SIGKILL, :func:`die_with_supervisor`): a
SIGKILLed supervisor leaves no claimer behind. ``delivery.max_memory`` is the pump's budget, split
between the workers. Sinks that append to files (CSV) append whole rows under ``flock``, so workers may
share a file; see the README (Workers).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import NoReturn

from prometheus_client.parser import text_string_to_metric_families
from pydantic import ByteSize

from pump.config.model import Config
from pump.errors import CommandError
from pump.process import listen_error, tune_gc

log = logging.getLogger("pump.app")

#: prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: Seconds between the death of a worker and its restart (doubling up to the cap while it keeps
#: dying young).
RESTART_BACKOFF = (0.5, 10.0)
#: What the supervisor passes on to its workers (and handles itself).
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def worker_config(config: Config, index: int, port: int, workers: int = 1) -> Config:
    """The config one worker runs with: its own instance id, a private health port and its share
    of ``delivery.max_memory`` (the budget is the pump's, split between the workers, so more
    workers do not multiply the memory the pump may take)."""
    tel = config.telemetry.model_copy(update={"metrics_address": "", "health_enabled": True, "health_bind": "127.0.0.1"})
    delivery = config.delivery.model_copy(
        update={
            "instance_id": f"{config.delivery.instance_id}-w{index}",
            "max_memory": ByteSize(max(1, int(config.delivery.max_memory) // max(1, workers))),
        }
    )
    return config.model_copy(update={"health_check_endpoint_port": port, "telemetry": tel, "delivery": delivery})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_supervisor(supervisor_pid: int) -> None:
    """Make this worker die the moment its supervisor does, as the one-process pump would.

    ``PR_SET_PDEATHSIG`` with SIGKILL: a supervisor that is SIGKILLed or OOM-killed takes its
    workers down with it, so no claimer is left behind holding an instance id a restarted pump
    needs, and a crash of the supervisor is a crash of the processes that write (their claims are
    leased; the next pump takes them back). Set in the forked worker itself (the signal follows the
    supervisor's main thread, which forks); the parent check afterwards covers a supervisor that
    died before the call. Where prctl is missing, a thread watches the parent.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(supervisor_pid,), name="pump-parent-watch", daemon=True).start()
    if os.getppid() != supervisor_pid:
        os._exit(1)  # the supervisor is already gone


def _watch_parent(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


class Forked:
    """A worker process forked from the supervisor, seen as ``subprocess.Popen`` sees a child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)


class Worker:
    def __init__(self, index: int, launch: Callable[[int, int, set[int | signal.Signals]], NoReturn]) -> None:
        self.index = index
        self.port = free_port()
        self.launch = launch  # runs the worker in the forked child: (index, port, signal mask), never returns
        self.proc: Forked | None = None
        self.started_at = 0.0
        self.backoff = RESTART_BACKOFF[0]
        self.restarts = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        """Fork the worker. A fork, not an exec: the child has every module and the parsed config
        already, so it claims at once (an exec'd worker spent ~0.5 s of CPU and 0.7 s of wall time
        importing and validating before its first claim: a third of ``--once`` on 200,000
        records), and until written to its pages are the supervisor's. The first forks copy a
        single-threaded process; a restart forks while the supervisor's listener thread runs, and
        the child needs nothing that thread may hold (its handlers log nothing, and ``logging``
        re-creates its locks in a forked child)."""
        if self.restarts:
            self.port = free_port()  # the old one may have been taken meanwhile
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write the parent's buffered bytes again
        # Stop signals wait until the child has dropped the supervisor's handlers (and the
        # parent has recorded the child): a SIGTERM in between would run them in the wrong process.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self.launch(self.index, self.port, blocked)
            self.proc = Forked(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.started_at = time.monotonic()
        log.info("Worker started.", extra={"worker": self.index, "pid": pid, "port": self.port})

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except OSError as exc:
            return 503, str(exc).encode()


#: Gauges that count what each worker holds in memory: added up. Every other gauge is something
#: each worker observes of the shared world (a Redis list's length, a pump failing, a timestamp)
#: and is the largest of the workers' values.
SUMMED_GAUGES = frozenset({"pump_queue_records", "pump_batches_in_flight"})


def sum_metrics(texts: Sequence[str]) -> str:
    """Prometheus text of several workers, as one: counters and histograms added up, gauges as
    :data:`SUMMED_GAUGES` says."""
    order: list[str] = []
    families: dict[str, tuple[str, str]] = {}
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name not in families:
                order.append(fam.name)
                families[fam.name] = (fam.type, fam.documentation)
                samples[fam.name] = {}
            acc = samples[fam.name]
            largest = fam.type not in ("counter", "histogram", "summary") and fam.name not in SUMMED_GAUGES
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key in acc:
                    acc[key] = max(acc[key], s.value) if largest or s.name.endswith("_created") else acc[key] + s.value
                else:
                    acc[key] = s.value
    out: list[str] = []
    for name in order:
        kind, doc = families[name]
        out.append(f"# HELP {name} {doc}")
        out.append(f"# TYPE {name} {kind}")
        for (sample, labels), value in samples[name].items():
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{sample}{{{label_text}}} {value!r}" if labels else f"{sample} {value!r}")
    return "\n".join(out) + "\n"


def health_body(liveness: bool, ok: bool, results: Sequence[tuple[int, bytes]]) -> bytes:
    """The supervisor's answer, shaped as one process's: a healthy pump's liveness body is Tyk's
    exact ``{"status": "ok"}`` (tyk-pump.md: probes may compare it), whatever the number of
    workers; the workers' answer when they all agree; else the first failing worker's answer
    (the first one's, when all are fine) with every worker's under ``workers``."""
    if liveness and ok:
        return b'{"status": "ok"}'
    bodies = [body for _, body in results]
    if len(set(bodies)) == 1:
        return bodies[0]  # every worker says the same ("starting", "stalled"...)
    parsed = []
    for _, body in results:
        try:
            value = json.loads(body)
        except ValueError:
            value = body.decode(errors="replace")
        parsed.append(value if isinstance(value, dict) else {"status": value})
    first = next((p for (code, _), p in zip(results, parsed, strict=True) if code != 200), parsed[0])
    return json.dumps({**first, "workers": parsed}).encode()


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Supervisor:
    def __init__(self, config: Config, workers: int, once: bool) -> None:
        self.config = config
        self.pid = os.getpid()
        self.once = once
        self.count = workers
        self.workers = [Worker(i, self._worker_main) for i in range(workers)]
        self.stopping = 0  # stop requests received
        self.codes: dict[int, int] = {}
        self._server: ThreadingHTTPServer | None = None

    # -- health and metrics ------------------------------------------------------------------------

    def _serve(self) -> None:
        cfg, tel = self.config, self.config.telemetry
        if not tel.health_enabled:
            return
        sup, health = self, "/" + (cfg.health_check_endpoint_name or "health").strip("/")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in (health, "/ready"):
                    results = [w.get(path) for w in sup.workers]
                    ok = all(code == 200 for code, _ in results)
                    self._reply(200 if ok else 503, health_body(path == health, ok, results), "application/json")
                elif path == "/metrics" and not tel.metrics_address:
                    texts = [b.decode(errors="replace") for code, b in (w.get("/metrics") for w in sup.workers) if code == 200]
                    self._reply(200, sum_metrics(texts).encode(), "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        port = cfg.health_check_endpoint_port or 8083
        try:
            self._server = ThreadingHTTPServer((tel.health_bind, port), Handler)
        except OSError as exc:
            raise listen_error(exc, "/health", f"{tel.health_bind}:{port}", "health_check_endpoint_port") from None
        self._server.daemon_threads = True
        # A short poll: shutdown() waits for the loop's next poll, and the default 0.5 s was half
        # of an empty ``pump run --once --workers 2`` (1.38 s against 0.55 s for one process).
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, name="pump-supervisor-http", daemon=True).start()

    def _worker_main(self, index: int, port: int, mask: set[int | signal.Signals]) -> NoReturn:
        """The forked child: drop what is the supervisor's (signal handlers, its listener), die
        with it, and run one daemon; never returns into the supervisor's code."""
        code = 70  # EX_SOFTWARE, if the daemon could not even start
        try:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if self._server is not None:
                self._server.socket.close()
            die_with_supervisor(self.pid)
            from pump.app import serve

            code = serve(worker_config(self.config, index, port, self.count), once=self.once)
        except CommandError as exc:  # as ``pump run`` reports it: one line and its exit code
            log.error(str(exc))
            code = exc.exit_code
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the child must end here whatever happened
            log.exception("Worker failed.", extra={"worker": index})
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            logging.shutdown()
            os._exit(code)

    # -- the loop ----------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping += 1
        log.info("Stopping the workers.", extra={"signal": signal.Signals(signum).name, "request": self.stopping})
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        import pump.app  # noqa: F401 - the workers' code, loaded before the forks (once, for all)

        tune_gc()  # frozen: what the workers inherit stays out of their collections (and unwritten)
        for w in self.workers:
            w.start()  # before the listener thread: the first forks copy a single-threaded process
        self._serve()
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        try:
            while len(self.codes) < len(self.workers):
                for w in self.workers:
                    self._watch(w)
                time.sleep(0.1)
        finally:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
        worst = max(self.codes.values(), key=lambda c: (c != 0, c < 0, abs(c)))
        log.info("Workers stopped.", extra={"exit_codes": ",".join(str(self.codes[i]) for i in sorted(self.codes))})
        return 1 if worst < 0 else worst  # killed by a signal: a failure

    def _watch(self, w: Worker) -> None:
        if w.index in self.codes:
            return
        if w.proc is None:  # waiting to be restarted
            if self.stopping:
                self.codes[w.index] = 0
            elif w.restart_at is not None and time.monotonic() >= w.restart_at:
                w.restarts += 1
                w.start()
            return
        code = w.proc.poll()
        if code is None:
            return
        if self.stopping or (self.once and code >= 0):
            self.codes[w.index] = code  # asked to stop, or --once finished (a kill is restarted)
            return
        lived = time.monotonic() - w.started_at
        w.backoff = RESTART_BACKOFF[0] if lived > 30 else min(w.backoff * 2, RESTART_BACKOFF[1])
        log.error(
            "Worker died; restarting it. Its claims are leased: nothing is lost.",
            extra={"worker": w.index, "exit_code": code, "restart_in": w.backoff},
        )
        w.proc = None
        w.restart_at = time.monotonic() + w.backoff


def run_workers(config: Config, workers: int, once: bool) -> int:
    return Supervisor(config, workers, once).run()
