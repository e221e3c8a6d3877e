"""Redis from Debian (``redis-server``, 7.0 on bookworm), started directly without systemd.

Redis is the pump's source, so tests need features fakeredis may not mirror exactly (``LPOP key
count``, ``LMOVE``/``BLMOVE``, Lua, ``MULTI``) and the ability to crash and restart the server.
With ``appendonly=True`` every write is fsynced to an AOF in the work directory, so a test can
SIGKILL Redis, call :func:`start_redis` again with the same ``port`` and ``workdir`` and find the
data that was acknowledged before the crash.
"""

from __future__ import annotations

import pathlib
import shutil

from . import Server, ServerError, apt_install, free_port, launch, wait_ready

#: Where Debian puts the binary, in case /usr/sbin or /usr/bin is not on PATH.
_FALLBACK_BINARIES = ("/usr/bin/redis-server", "/usr/sbin/redis-server")


def redis_binary() -> str:
    """Path of ``redis-server``, installing the Debian package when it is missing."""
    found = shutil.which("redis-server") or next((p for p in _FALLBACK_BINARIES if pathlib.Path(p).exists()), None)
    if found:
        return found
    apt_install(["redis-server"])
    found = shutil.which("redis-server") or next((p for p in _FALLBACK_BINARIES if pathlib.Path(p).exists()), None)
    if not found:
        raise ServerError("redis-server still missing after apt-get install redis-server")
    return found


def start_redis(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    appendonly: bool = False,
    timeout: float = 30.0,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Start ``redis-server`` on 127.0.0.1 with its data in ``workdir/redis-data``.

    ``appendonly=True`` turns on ``--appendonly yes --appendfsync always`` for restart and crash
    tests; otherwise persistence is off entirely (``--save ''``) so nothing is written. The log is
    appended to ``workdir/redis.log`` so a restart keeps the earlier run's lines for diagnosis.
    """
    binary = redis_binary()
    port = port or free_port()
    data_dir = workdir / "redis-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "redis.log"
    cmd = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    if appendonly:
        cmd += ["--appendonly", "yes", "--appendfsync", "always"]
    else:
        cmd += ["--appendonly", "no"]
    cmd += list(extra_args)

    server = launch(
        "redis",
        cmd,
        url=f"redis://127.0.0.1:{port}/0",
        port=port,
        workdir=workdir,
        log_path=log_path,
        stop_timeout=30.0,
    )

    # Imported late: only needed once a server is running.
    import redis as redis_client
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def ping() -> bool:
        # No retries: redis-py 8 otherwise retries a timeout 3 times with backoff (~15 s per call).
        client = redis_client.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        finally:
            client.close()

    wait_ready(server, ping, timeout=timeout, interval=0.02)
    server.details["version"] = redis_version(port)
    return server


def redis_version(port: int) -> str:
    """``redis_version`` from INFO of the server on ``port`` ("" if it cannot be asked)."""
    import redis as redis_client

    client = redis_client.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        return str(client.info("server").get("redis_version", ""))
    except redis_client.RedisError:
        return ""
    finally:
        client.close()
