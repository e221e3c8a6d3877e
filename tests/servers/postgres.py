"""PostgreSQL from Debian (package ``postgresql``, version 15 on bookworm), one private cluster per start.

``initdb`` and ``postgres`` refuse to run as root, and CI runs as root, so both run as the
``postgres`` user; where the data directory then lives (the caller's workdir, or a scratch directory
under ``/tmp`` when the postgres user cannot reach it) is explained in :mod:`tests.servers.datadir`.

Starting from a copy of a prepared template is about three times faster than running ``initdb``.
Unix sockets are disabled (``-k ''``): pytest's work directories easily exceed the 107-byte socket
path limit and clients connect over TCP anyway. Durability is traded for speed (``fsync=off`` etc.),
which is fine for throw-away test data.
"""

from __future__ import annotations

import pathlib
import shutil
import signal

from . import (
    Server,
    ServerError,
    apt_install,
    cache_lock,
    cache_root,
    datadir,
    free_port,
    hash_files,
    launch,
    run_checked,
    step,
    wait_ready,
)

_PG_ROOT = pathlib.Path("/usr/lib/postgresql")
#: initdb options baked into the template; part of the template's cache key.
_INITDB_ARGS = ("--no-sync", "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C")
#: Speed over durability: the data is thrown away after the test anyway.
_DEFAULT_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def postgres_bin_dir() -> pathlib.Path:
    """Directory with ``initdb`` and ``postgres`` (newest installed major), installing PostgreSQL if absent."""
    found = _find_bin_dir()
    if found is None:
        apt_install(["postgresql"])
        found = _find_bin_dir()
    if found is None:
        raise ServerError("PostgreSQL still missing under /usr/lib/postgresql after apt-get install postgresql")
    return found


def _find_bin_dir() -> pathlib.Path | None:
    candidates = [p / "bin" for p in _PG_ROOT.glob("*") if (p / "bin" / "postgres").exists() and p.name.isdigit()]
    return max(candidates, key=lambda p: int(p.parent.name), default=None)


def template_dir(bin_dir: pathlib.Path) -> pathlib.Path:
    """An initdb'd data directory in the cache, created once per PostgreSQL version and initdb options."""
    version = bin_dir.parent.name
    template = cache_root() / "postgres" / f"template-{version}-{hash_files((), *_INITDB_ARGS)[:8]}"
    if (template / "PG_VERSION").exists():
        return template
    with cache_lock("postgres-template"):
        if (template / "PG_VERSION").exists():
            return template
        with step(f"preparing a PostgreSQL {version} template data directory", first_run="~2 s"):
            scratch_root = datadir.scratch_dir("postgres", "pump-test-initdb-")
            try:
                scratch = scratch_root / "data"
                run_checked(
                    [*datadir.as_user("postgres"), str(bin_dir / "initdb"), *_INITDB_ARGS, "-D", str(scratch)],
                    what="initdb",
                    timeout=300,
                )
                datadir.publish_template(scratch, template, "postgres")
            finally:
                shutil.rmtree(scratch_root, ignore_errors=True)
    return template


def start_postgres(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    settings: dict[str, str] | None = None,
    timeout: float = 60.0,
    persistent: bool = False,
) -> Server:
    """Start a private PostgreSQL cluster on 127.0.0.1 from a copy of the cached template.

    ``settings`` adds or overrides ``-c name=value`` server settings (e.g. ``max_connections``).
    The URL is ``postgresql://postgres@127.0.0.1:PORT/postgres`` (trust authentication). By default
    every start begins with an empty cluster and data does not survive ``stop()``. With
    ``persistent=True`` the data directory is kept at ``stop()`` and reused by the next persistent
    start in the same ``workdir`` (outage tests: stop the server, start it again, same data); the
    last start should be non-persistent, or the caller removes ``workdir``.
    """
    bin_dir = postgres_bin_dir()
    template = template_dir(bin_dir)
    port = port or free_port()
    data = datadir.prepare(
        workdir, template, kind="postgres", owner="postgres", link_name="postgres-data", pid_file="postmaster.pid", reuse=persistent
    )
    log_path = workdir / "postgres.log"

    merged = {**_DEFAULT_SETTINGS, **(settings or {})}
    cmd = [
        *datadir.as_user("postgres", pdeathsig="INT"),
        str(bin_dir / "postgres"),
        "-D",
        str(data.path),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        "",
    ]
    for name, value in merged.items():
        cmd += ["-c", f"{name}={value}"]

    def cleanup(_: Server) -> None:
        if not persistent:
            data.release()

    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    server = launch(
        "postgres",
        cmd,
        url=url,
        port=port,
        workdir=workdir,
        log_path=log_path,
        # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
        stop_signal=signal.SIGINT,
        stop_timeout=60.0,
        on_stopped=cleanup,
    )

    import psycopg  # imported late: only needed once a server is running

    def select_one() -> bool:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    wait_ready(server, select_one, timeout=timeout)
    server.details["version"] = bin_dir.parent.name
    return server
