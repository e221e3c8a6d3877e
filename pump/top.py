"""``pump top``: a live terminal view of a running pump, read from its ``/metrics`` endpoint.

Like ``vector top``: one screen that says whether the pump keeps up — per pump the records written
per second, its in-memory queue, its Redis backlog, its dead letters and, when it is failing, since
when and why; per gateway list the records waiting; the batches claimed and not yet acknowledged
and the age of the oldest. It needs nothing but the HTTP listener the daemon already runs
(``telemetry.listen_address``), so it works from a laptop through ``kubectl port-forward`` as well
as on the host. ``/status`` (the daemon's per-pump failure detail) is read when the pump serves it.

Rendering uses rich; the frame is a pure function of two scrapes (:func:`frame`), so tests check
the numbers without a terminal, and the pty test checks the terminal.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from pump.redact import scrub

#: Gauges and counters read per pump (sample name → Snapshot attribute).
PER_PUMP = {
    "pump_records_delivered_total": "delivered",
    "pump_records_deadlettered_total": "deadlettered_total",
    "pump_records_parked_total": "parked_total",
    "pump_queue_records": "queue",
    "pump_backlog_records": "backlog",
    "pump_deadletter_records": "deadletters",
    "pump_failing": "failing",
    "pump_last_success_timestamp_seconds": "last_success",
}


class ScrapeError(Exception):
    """The pump's endpoint could not be read (one line for the screen or the CLI)."""


@dataclass
class PumpView:
    delivered: float = 0.0
    deadlettered_total: float = 0.0
    parked_total: float = 0.0
    queue: float = 0.0
    backlog: float = 0.0
    deadletters: float = 0.0
    failing: float = 0.0
    last_success: float = 0.0
    failing_since: float | None = None  # unix seconds, from /status
    last_error: str = ""


@dataclass
class Snapshot:
    """One scrape of a pump, at ``at`` (unix seconds)."""

    at: float
    pumps: dict[str, PumpView] = field(default_factory=dict)
    sources: dict[str, float] = field(default_factory=dict)
    claimed_total: float = 0.0
    in_flight: float = 0.0
    oldest_unacked: float = 0.0
    redis_up: float = 0.0
    version: str = ""


def parse(text: str, at: float, status: Mapping[str, object] | None = None) -> Snapshot:
    """A Snapshot from Prometheus text exposition (and the optional ``/status`` body)."""
    snap = Snapshot(at=at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name in PER_PUMP and "pump" in labels:
                view = snap.pumps.setdefault(labels["pump"], PumpView())
                setattr(view, PER_PUMP[name], value)
            elif name == "pump_source_backlog_records":
                snap.sources[labels.get("source", "?")] = value
            elif name == "pump_records_claimed_total":
                snap.claimed_total += value
            elif name == "pump_batches_in_flight":
                snap.in_flight = value
            elif name == "pump_oldest_unacked_batch_age_seconds":
                snap.oldest_unacked = value
            elif name == "pump_redis_up":
                snap.redis_up = value
            elif name == "pump_build_info":
                snap.version = labels.get("version", "")
    pumps = status.get("pumps") if status else None
    if isinstance(pumps, dict):
        for name, detail in pumps.items():
            if name in snap.pumps and isinstance(detail, dict):
                since = detail.get("failing_since")
                snap.pumps[name].failing_since = float(since) if isinstance(since, int | float) else None
                snap.pumps[name].last_error = scrub(str(detail.get("last_error") or ""))
    return snap


def _rate(prev: Snapshot | None, cur: Snapshot, get: str, pump: str | None = None) -> float | None:
    """Per-second increase of a counter between two scrapes (None on the first one or after a restart)."""
    if prev is None or cur.at <= prev.at:
        return None
    if pump is None:
        before, after = getattr(prev, get), getattr(cur, get)
    else:
        if pump not in prev.pumps:
            return None
        before, after = getattr(prev.pumps[pump], get), getattr(cur.pumps[pump], get)
    if after < before:  # the pump restarted: counters began again
        return None
    return float((after - before) / (cur.at - prev.at))


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.0f}"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def frame(prev: Snapshot | None, cur: Snapshot, url: str) -> Group:
    """The screen for the latest scrape, given the one before it (for rates)."""
    claim_rate = _rate(prev, cur, "claimed_total")
    redis = Text("up", style="green") if cur.redis_up else Text("DOWN", style="bold red")
    head = Text.assemble(
        ("pump top", "bold"),
        f"  {url}  ",
        f"v{cur.version}  " if cur.version else "",
        "redis ",
        redis,
        f"  claimed {_num(claim_rate)}/s  in flight {_num(cur.in_flight)} batches",
        f"  oldest unacked {_ago(cur.oldest_unacked)}" if cur.in_flight else "",
        "   (q quits)",
    )
    pumps = Table(expand=True, box=None, header_style="bold")
    for column in ("pump", "rec/s", "queue", "backlog", "dead letters", "state", "last error"):
        pumps.add_column(column, justify="left" if column in ("pump", "state", "last error") else "right")
    for name in sorted(cur.pumps):
        view = cur.pumps[name]
        if view.failing:
            since = view.failing_since or view.last_success
            state = Text(f"FAILING {_ago(cur.at - since)}" if since else "FAILING", style="bold red")
        else:
            state = Text("ok", style="green")
        error = view.last_error if view.failing else ""
        pumps.add_row(
            name,
            _num(_rate(prev, cur, "delivered", name)),
            _num(view.queue),
            _num(view.backlog),
            Text(_num(view.deadletters), style="yellow" if view.deadletters else ""),
            state,
            Text(error[:80], style="red"),
        )
    sources = Table(expand=True, box=None, header_style="bold")
    sources.add_column("gateway list")
    sources.add_column("waiting", justify="right")
    for name in sorted(cur.sources):
        sources.add_row(name, _num(cur.sources[name]))
    if not cur.sources:
        sources.add_row("(no list lengths reported yet)", "")
    return Group(head, Text(""), pumps, Text(""), sources)


def fetch(client: httpx.Client, url: str) -> Snapshot:
    """Scrape ``url`` (the pump's /metrics) and, if served, the /status next to it."""
    try:
        response = client.get(url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ScrapeError(f"cannot read {url}: {scrub(str(exc)) or type(exc).__name__}") from exc
    status: dict[str, object] | None = None
    with contextlib.suppress(httpx.HTTPError, orjson.JSONDecodeError):
        extra = client.get(url.rsplit("/", 1)[0] + "/status")
        if extra.status_code == 200:
            body = orjson.loads(extra.content)
            status = body if isinstance(body, dict) else None
    return parse(response.text, time.time(), status)


@contextlib.contextmanager
def _keys() -> Iterator[bool]:
    """Put a TTY stdin in cbreak mode (single keys, no echo) for the duration; yields whether it is one."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed(timeout: float, tty_in: bool) -> bool:
    """Wait up to ``timeout`` seconds for a key; True if it was ``q``."""
    if not tty_in:
        time.sleep(timeout)
        return False
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sys.stdin], [], [], left)
        if ready and os.read(sys.stdin.fileno(), 1) in (b"q", b"Q"):
            return True
    return False


def run(url: str, interval: float = 2.0, once: bool = False, console: Console | None = None) -> int:
    """The ``pump top`` loop; returns the exit code. ``once`` prints one frame (two scrapes apart)."""
    from rich.live import Live

    console = console or Console()
    with httpx.Client(timeout=min(5.0, max(interval, 1.0))) as client:
        prev = fetch(client, url)  # a failing first scrape is an error, not an empty screen
        if once:
            time.sleep(interval)
            console.print(frame(prev, fetch(client, url), url))
            return 0
        with _keys() as tty_in, Live(frame(None, prev, url), console=console, auto_refresh=False, screen=False) as live:
            try:
                while not _quit_pressed(interval, tty_in):
                    try:
                        cur = fetch(client, url)
                    except ScrapeError as exc:
                        live.update(Group(frame(None, prev, url), Text(f"\n{exc} (retrying)", style="bold red")), refresh=True)
                        continue
                    live.update(frame(prev, cur, url), refresh=True)
                    prev = cur
            except KeyboardInterrupt:
                pass
    return 0
