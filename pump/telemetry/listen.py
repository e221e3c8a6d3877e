"""Opening the daemon's listeners: ``/metrics`` (``telemetry.metrics_address``) and the health
endpoints. A port that cannot be opened is a one-line error naming the key to change."""

from __future__ import annotations

from prometheus_client import start_http_server

from pump.config.model import Config
from pump.process import listen_error
from pump.telemetry.health import HealthServer, Probe
from pump.telemetry.metrics import Metrics


async def start_listeners(cfg: Config, metrics: Metrics, probe: Probe, serve_health: bool) -> HealthServer | None:
    """Start ``/metrics`` when it has its own address, and the health server (which also serves
    ``/metrics`` otherwise) unless disabled; returns the health server, if any."""
    tel = cfg.telemetry
    if tel.metrics_address:
        host, _, port = tel.metrics_address.rpartition(":")
        try:
            start_http_server(int(port), addr=host or "0.0.0.0", registry=metrics.registry)
        except OSError as exc:
            raise listen_error(exc, "/metrics", f"{host or '0.0.0.0'}:{port}", "telemetry.metrics_address") from None
    if not (serve_health and tel.health_enabled):
        return None
    health = HealthServer(
        probe,
        metrics.registry,
        cfg.health_check_endpoint_name or "health",
        host=tel.health_bind,
        port=cfg.health_check_endpoint_port or 8083,
        serve_metrics=not tel.metrics_address,
    )
    try:
        await health.start()
    except OSError as exc:
        where = f"{tel.health_bind}:{cfg.health_check_endpoint_port or 8083}"
        raise listen_error(exc, "/health", where, "health_check_endpoint_port") from None
    return health
