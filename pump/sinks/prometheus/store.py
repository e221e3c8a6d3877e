"""The prometheus pump's own registry: tallies per batch, series with a cap, text exposition.

A batch is first tallied into small per-family deltas with no lock held (Tyk's ``counterMap``
and ``histogramMap``); the deltas are then merged under a lock, which is where the cardinality
guard sits: a family keeps at most ``max_series`` label sets, and an observation that would
need a new one beyond that is counted in ``pump_prometheus_dropped_series_total{metric}``
instead (logged once per family). Memory is therefore bounded by ``families × max_series``
whatever the records carry.

The exposition is rendered here rather than by ``prometheus_client``, whose text output names a
counter's TYPE line ``<name>_total``: Tyk's counters are ``tyk_http_status`` with no suffix, and
a scraper must see the same TYPE and sample names Tyk's Go client writes (labels sorted by name,
``le`` last and formatted as Go formats floats).
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from pump.record import Record
from pump.sinks.prometheus.families import Family

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DROPPED = "pump_prometheus_dropped_series_total"
SERIES = "pump_prometheus_series"
#: Batch ids remembered: far more than can be in flight or retried at once.
LEDGER = 10_000

Key = tuple[str, ...]


def go_float(x: float) -> str:
    """Go's ``strconv.FormatFloat(x, 'g', -1, 64)``, how Go's client writes ``le``: ``1``, ``0.5``, ``1e+06``."""
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    sign, digit_tuple, exp = Decimal(repr(float(x))).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple))
    neg = "-" if sign else ""
    nd, dp = len(digits), len(digits) + exp
    e = dp - 1
    if e < -4 or e >= 6:  # shortest formatting decides with precision 6
        mant = digits[0] + ("." + digits[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{digits}"
    if dp >= nd:
        return neg + digits + "0" * (dp - nd)
    return f"{neg}{digits[:dp]}.{digits[dp:]}"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    try:
        value.encode()
    except UnicodeEncodeError:  # bytes the decoder kept as surrogates: show them as U+FFFD
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _value(v: float) -> str:
    return str(int(v)) if v == int(v) and abs(v) < 1 << 53 else repr(v)


class Hist:
    """One histogram series: per-bucket counts (not cumulative; the last is +Inf), sum, count."""

    __slots__ = ("count", "counts", "labels", "sum")

    def __init__(self, labels: str, buckets: int) -> None:
        self.labels = labels
        self.counts = [0] * (buckets + 1)
        self.sum = 0.0
        self.count = 0


class FamilyState:
    """The series of one family, keyed by label values, with their rendered label text."""

    def __init__(self, family: Family, max_series: int) -> None:
        self.family = family
        self.max_series = max_series
        self.counters: dict[Key, list[object]] = {}  # key → [labels text, value]
        self.hists: dict[Key, Hist] = {}
        self.dropped = 0
        self.warned = False
        # Sorted label order for the text, as Go's client writes it.
        self._order = sorted(range(len(family.labels)), key=lambda i: family.labels[i])

    def __len__(self) -> int:
        return len(self.counters) + len(self.hists)

    def label_text(self, key: Key) -> str:
        names = self.family.labels
        return ",".join(f'{names[i]}="{_escape(key[i])}"' for i in self._order)

    def room(self, observations: int) -> bool:
        """Whether one more series may be created; counts the overflow (and logs it once) if not."""
        if len(self) < self.max_series:
            return True
        self.dropped += observations
        if not self.warned:
            self.warned = True
            log.warning(
                "Prometheus family reached its series cap; new label sets are dropped and counted.",
                extra={"metric": self.family.name, "max_series": self.max_series, "counted_in": DROPPED,
                       "fix": "raise meta.max_series_per_metric, or remove the unbounded label (key, path, time_stamp…)"},
            )  # fmt: skip
        return False


class CounterDelta(dict[Key, int]):
    pass


class HistDelta(dict[Key, list[float]]):
    """key → [sum, hits] (aggregated) or key → per-bucket counts + [sum, count]."""


def tally(family: Family, records: Iterable[Record], aggregate: bool) -> CounterDelta | HistDelta:
    """What one batch adds to one family (no lock, no shared state)."""
    getters = family.getters
    if family.kind == "counter":
        counts = CounterDelta()
        for r in records:
            if family.mcp_only and not r.is_mcp:
                continue
            key = tuple([g(r) for g in getters])
            counts[key] = counts.get(key, 0) + 1
        return counts
    hist = HistDelta()
    bounds = family.buckets
    n = len(bounds)
    for r in records:
        if family.mcp_only and not r.is_mcp:
            continue
        base = [g(r) for g in getters]
        for kind, field in family.observe:
            key = (kind, *base)
            v = field(r)
            entry = hist.get(key)
            if aggregate:
                if entry is None:
                    hist[key] = [v, 1]
                else:
                    entry[0] += v
                    entry[1] += 1
                continue
            if entry is None:
                entry = hist[key] = [0] * (n + 3)
            entry[bisect_left(bounds, v)] += 1
            entry[n + 1] += v
            entry[n + 2] += 1
    if aggregate:  # Tyk observes the mean (integer division of uint64s) once per label set
        out = HistDelta()
        for key, (total, hits) in hist.items():
            entry = out[key] = [0] * (n + 3)
            mean = int(total) // int(hits) if total >= 0 else int(total / hits)
            entry[bisect_left(bounds, mean)] += 1
            entry[n + 1] = mean
            entry[n + 2] = 1
        return out
    return hist


class Store:
    """Every family of one prometheus pump; thread-safe (writes and scrapes run in threads)."""

    def __init__(self, families: Sequence[Family], max_series: int, aggregate: bool) -> None:
        self.states = [FamilyState(f, max_series) for f in families]
        self.aggregate = aggregate
        self.lock = threading.Lock()
        self.applied: OrderedDict[str, None] = OrderedDict()  # recent batch ids, oldest first

    def add(self, records: Sequence[Record], batch_id: str = "") -> None:
        """Count a batch once: a batch id already applied (a retried write) adds nothing."""
        if batch_id and batch_id in self.applied:
            return
        deltas = [tally(s.family, records, self.aggregate) for s in self.states]
        with self.lock:
            if batch_id:
                if batch_id in self.applied:
                    return
                self.applied[batch_id] = None
                if len(self.applied) > LEDGER:
                    self.applied.popitem(last=False)
            for state, delta in zip(self.states, deltas, strict=True):
                if isinstance(delta, CounterDelta):
                    _merge_counters(state, delta)
                else:
                    _merge_hists(state, delta)

    def render(self) -> bytes:
        out: list[str] = []
        with self.lock:
            for s in self.states:
                _render_family(s, out)
            out.append(f"# HELP {DROPPED} Observations not exposed because their family had reached max_series_per_metric.\n")
            out.append(f"# TYPE {DROPPED} counter\n")
            out.extend(f'{DROPPED}{{metric="{s.family.name}"}} {s.dropped}\n' for s in self.states)
            out.append(f"# HELP {SERIES} Label sets exposed per family (capped at max_series_per_metric).\n")
            out.append(f"# TYPE {SERIES} gauge\n")
            out.extend(f'{SERIES}{{metric="{s.family.name}"}} {len(s)}\n' for s in self.states)
        return "".join(out).encode()


def _merge_counters(state: FamilyState, delta: CounterDelta) -> None:
    series = state.counters
    for key, n in delta.items():
        entry = series.get(key)
        if entry is None:
            if not state.room(n):
                continue
            entry = series[key] = [state.label_text(key), 0]
        entry[1] = entry[1] + n  # type: ignore[operator]


def _merge_hists(state: FamilyState, delta: HistDelta) -> None:
    series = state.hists
    n = len(state.family.buckets)
    for key, values in delta.items():
        entry = series.get(key)
        if entry is None:
            if not state.room(int(values[n + 2])):
                continue
            entry = series[key] = Hist(state.label_text(key), n)
        counts = entry.counts
        for i in range(n + 1):
            counts[i] += int(values[i])
        entry.sum += values[n + 1]
        entry.count += int(values[n + 2])


def _render_family(state: FamilyState, out: list[str]) -> None:
    f = state.family
    help_text = f.help.replace("\\", "\\\\").replace("\n", "\\n")
    out.append(f"# HELP {f.name} {help_text}\n# TYPE {f.name} {f.kind}\n")
    if f.kind == "counter":
        for labels, value in sorted(state.counters.values(), key=lambda e: str(e[0])):
            out.append(f"{f.name}{{{labels}}} {value}\n" if labels else f"{f.name} {value}\n")
        return
    les = [go_float(b) for b in f.buckets] + ["+Inf"]
    for h in sorted(state.hists.values(), key=lambda e: e.labels):
        sep = "," if h.labels else ""
        running = 0
        for le, c in zip(les, h.counts, strict=True):
            running += c
            out.append(f'{f.name}_bucket{{{h.labels}{sep}le="{le}"}} {running}\n')
        out.append(f"{f.name}_sum{{{h.labels}}} {_value(h.sum)}\n{f.name}_count{{{h.labels}}} {h.count}\n")
