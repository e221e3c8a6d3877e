# pump — Tyk-compatible analytics pump.
#   docker build -t pump .
#   docker run -v $PWD/pump.yaml:/etc/pump/pump.yaml -p 8083:8083 pump
# The config lives at /etc/pump/pump.yaml (override with --config or $PUMP_CONFIG); a Tyk JSON
# pump.conf mounted there works unchanged. /health, /ready and /metrics are on port 8083.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY pump ./pump
# constraints.txt pins every runtime dependency (regenerate with scripts/lock).
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt ".[all]"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PUMP_CONFIG=/etc/pump/pump.yaml
COPY --from=build /install /usr/local
COPY config/pump.minimal.yaml /etc/pump/pump.yaml
RUN useradd --system --uid 10001 --home-dir /var/lib/pump --create-home pump
USER pump
WORKDIR /var/lib/pump
EXPOSE 8083
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8083/health', timeout=2).status == 200 else 1)"
# SIGTERM drains in-flight batches within telemetry.shutdown_timeout (25 s by default); `docker stop`
# waits only 10 s unless told otherwise (`docker stop -t 30`); Kubernetes waits 30 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pump"]
CMD ["run"]
