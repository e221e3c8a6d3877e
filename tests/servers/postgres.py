"""PostgreSQL from Debian (package ``postgresql``, version 15 on bookworm), one private cluster per start.

``initdb`` and ``postgres`` refuse to run as root, and CI runs as root, so both run as the
``postgres`` user through ``setpriv`` (no sudo needed, no login shell). That has a consequence a
test author must know: the ``postgres`` user cannot enter root's private directories (``/root`` and
pytest's ``/tmp/pytest-of-root`` are mode 0700). Therefore:

* the template cluster is created by ``initdb`` in a scratch directory under ``/tmp`` and then
  moved into the cache by root (root can read and write it regardless of owner);
* the per-start data directory is ``workdir/postgres-data`` when the postgres user can traverse to it,
  otherwise a fresh directory under ``/tmp/pump-test-postgres/`` that ``stop()`` deletes (a symlink
  ``workdir/postgres-data`` points to it while it exists).

Starting from a copy of a prepared template is about three times faster than running ``initdb``.
Unix sockets are disabled (``-k ''``): pytest's work directories easily exceed the 107-byte socket
path limit and clients connect over TCP anyway. Durability is traded for speed (``fsync=off`` etc.),
which is fine for throw-away test data.
"""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import signal
import tempfile
import time

from . import (
    Server,
    ServerError,
    apt_install,
    cache_lock,
    cache_root,
    free_port,
    hash_files,
    launch,
    progress,
    run_checked,
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
#: World-traversable scratch space the postgres user can reach ($TMPDIR may be private, /tmp is 1777).
_WORLD_TMP = pathlib.Path("/tmp")
#: Root of the data directories used when the postgres user cannot reach the caller's workdir.
_SHARED_RUN_ROOT = _WORLD_TMP / "pump-test-postgres"


def postgres_bin_dir() -> pathlib.Path:
    """Directory with ``initdb`` and ``postgres`` (newest installed major), installing PostgreSQL if absent."""
    found = _find_bin_dir()
    if found is None:
        progress("PostgreSQL not found under /usr/lib/postgresql: apt-get install -y postgresql")
        apt_install(["postgresql"])
        found = _find_bin_dir()
    if found is None:
        raise ServerError("PostgreSQL still missing under /usr/lib/postgresql after apt-get install postgresql")
    return found


def _find_bin_dir() -> pathlib.Path | None:
    candidates = [p / "bin" for p in _PG_ROOT.glob("*") if (p / "bin" / "postgres").exists() and p.name.isdigit()]
    return max(candidates, key=lambda p: int(p.parent.name), default=None)


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_postgres(*, pdeathsig: str | None = None) -> list[str]:
    """Command prefix running the rest as the ``postgres`` user when we are root (else nothing).

    ``setpriv`` resets the parent-death signal when it changes credentials, so the server's own
    death signal is passed through ``--pdeathsig`` instead.
    """
    if not _is_root():
        return []
    prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
    if pdeathsig:
        prefix.append(f"--pdeathsig={pdeathsig}")
    return [*prefix, "--"]


def _chown_tree(path: pathlib.Path, owner: str) -> None:
    """Give ``path`` and everything below it to ``owner`` (used only when running as root)."""
    record = pwd.getpwnam(owner)
    os.lchown(path, record.pw_uid, record.pw_gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for entry in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, entry), record.pw_uid, record.pw_gid)


def template_dir(bin_dir: pathlib.Path) -> pathlib.Path:
    """An initdb'd data directory in the cache, created once per PostgreSQL version and initdb options."""
    version = bin_dir.parent.name
    template = cache_root() / "postgres" / f"template-{version}-{hash_files((), *_INITDB_ARGS)[:8]}"
    if (template / "PG_VERSION").exists():
        return template
    with cache_lock("postgres-template"):
        if (template / "PG_VERSION").exists():
            return template
        progress(f"preparing PostgreSQL {version} template data directory in {template}")
        scratch_root = pathlib.Path(tempfile.mkdtemp(prefix="pump-test-initdb-", dir=_WORLD_TMP))
        try:
            scratch = scratch_root / "data"
            if _is_root():
                # The scratch dir is under /tmp (world-traversable) so the postgres user can write it.
                os.chmod(scratch_root, 0o755)
                shutil.chown(scratch_root, "postgres", "postgres")
            run_checked(
                [*_as_postgres(), str(bin_dir / "initdb"), *_INITDB_ARGS, "-D", str(scratch)],
                what="initdb",
                timeout=300,
            )
            template.parent.mkdir(parents=True, exist_ok=True)
            staging = template.with_name(template.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(scratch, staging, symlinks=True)
            if _is_root():
                _chown_tree(staging, "postgres")
            os.replace(staging, template)
        finally:
            shutil.rmtree(scratch_root, ignore_errors=True)
    return template


def _postgres_can_reach(directory: pathlib.Path) -> bool:
    """Whether the ``postgres`` user can traverse to ``directory`` (always true when not root).

    Write access is not needed: root copies the data directory in and hands it to postgres.
    """
    if not _is_root():
        return True
    probe = [*_as_postgres(), "test", "-x", str(directory)]
    try:
        run_checked(probe, what="probe", timeout=30)
    except ServerError:
        return False
    return True


def _reap_stale_runs(min_age: float = 600.0) -> None:
    """Delete shared run directories left by killed test runs (no live postmaster, older than ``min_age`` s).

    The age check keeps a directory another worker is still filling with the template.
    """
    if not _SHARED_RUN_ROOT.is_dir():
        return
    now = time.time()
    for run_dir in _SHARED_RUN_ROOT.glob("run-*"):
        try:
            if now - run_dir.stat().st_mtime < min_age:
                continue
            pid_file = run_dir / "data" / "postmaster.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text().split("\n", 1)[0])
                if pathlib.Path(f"/proc/{pid}").exists():
                    continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(run_dir, ignore_errors=True)


def _prepare_data_dir(workdir: pathlib.Path, template: pathlib.Path, reuse: bool = False) -> tuple[pathlib.Path, pathlib.Path | None]:
    """Copy the template to a fresh data directory; return it and the directory ``stop()`` must remove (if any).

    With ``reuse``, a data directory left by an earlier ``persistent`` start in the same
    ``workdir`` is used as it is, so a test can stop PostgreSQL and start it again on its data."""
    link = workdir / "postgres-data"
    if reuse and link.exists():
        data_dir = link.resolve()
        scratch = data_dir.parent if data_dir.parent.parent == _SHARED_RUN_ROOT else None
        return data_dir, scratch
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    if _postgres_can_reach(workdir):
        data_dir, owned_scratch = link, None
    else:
        _reap_stale_runs()
        _SHARED_RUN_ROOT.mkdir(mode=0o755, exist_ok=True)
        owned_scratch = pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=_SHARED_RUN_ROOT))
        os.chmod(owned_scratch, 0o755)
        data_dir = owned_scratch / "data"
        link.symlink_to(data_dir)
    shutil.copytree(template, data_dir, symlinks=True)
    os.chmod(data_dir, 0o700)
    if _is_root():
        _chown_tree(data_dir, "postgres")
    return data_dir, owned_scratch


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
    data_dir, owned_scratch = _prepare_data_dir(workdir, template, reuse=persistent)
    log_path = workdir / "postgres.log"

    merged = {**_DEFAULT_SETTINGS, **(settings or {})}
    cmd = [
        *_as_postgres(pdeathsig="INT"),
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
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
        if persistent:
            return
        if owned_scratch is not None:
            shutil.rmtree(owned_scratch, ignore_errors=True)
            if (workdir / "postgres-data").is_symlink():
                (workdir / "postgres-data").unlink()

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
    return server
