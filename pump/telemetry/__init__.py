"""Self-observation: Prometheus metrics, logs, and the health/readiness/metrics endpoints."""
