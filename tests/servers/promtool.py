"""promtool, Prometheus' rule checker, built from the Go module proxy for the deploy/ tests.

Not a server: ``promtool check rules`` parses alerting rules exactly as Prometheus loads them
(PromQL included), so a rule file that passes here loads in Prometheus. Built once per version
with ``go install github.com/prometheus/prometheus/cmd/promtool@VERSION`` (``GOTOOLCHAIN=local``,
``CGO_ENABLED=0``) into ``<cache>/promtool/<version>-<platform>/``; ``PUMP_TEST_PROMTOOL`` names
a promtool of your own instead. The Prometheus module is large: the first build downloads and
compiles several hundred packages.
"""

from __future__ import annotations

import os
import pathlib

from . import go_install

MODULE = "github.com/prometheus/prometheus/cmd/promtool"
#: Prometheus 3.x is published as module versions v0.3xx (v0.316.0 = Prometheus 3.16).
VERSION = "v0.316.0"


def promtool_binary() -> pathlib.Path:
    """Path of promtool: ``PUMP_TEST_PROMTOOL``, else the cached build, building it on first use."""
    own = os.environ.get("PUMP_TEST_PROMTOOL")
    if own:
        return pathlib.Path(own)
    return go_install(
        "promtool", MODULE, VERSION, needed_for="promtool for the alert-rule tests", first_run="~15 min on 2 cores", timeout=3600
    )
