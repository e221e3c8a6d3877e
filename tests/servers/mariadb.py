"""MariaDB from Debian (package ``mariadb-server``, 10.11 on bookworm) for the MySQL-dialect tests ("mysql").

Each start runs a private ``mariadbd`` as the ``mysql`` system user (through ``setpriv`` when we
are root; see :mod:`tests.servers.datadir` for where its data directory lives) on 127.0.0.1 and a
free port, with ``--no-defaults`` so nothing from ``/etc/mysql`` applies.

Authentication is real: the template data directory (made once per MariaDB version by
``mariadb-install-db`` and a bootstrap start with an ``--init-file``) has a user
``pump``/``pump-test-password`` with all privileges and a database ``pump``, and ``root`` only
with a password (``pump-test-root``, from 127.0.0.1 or the Unix socket). Anonymous and passwordless accounts are
removed, so a wrong password fails as it does on a production server. The DSN is
``mysql://pump:pump-test-password@127.0.0.1:PORT/pump``.

Settings a Debian install has are set explicitly (``utf8mb4``, ``utf8mb4_general_ci``), MariaDB's
default strict SQL mode is kept, and durability is traded for speed
(``innodb_flush_log_at_trx_commit=0``, no doublewrite, no binary log).

``Server.details``: ``version``, ``user``, ``password``, ``database``, ``root_password``, ``port``.
"""

from __future__ import annotations

import pathlib
import shutil
import signal
import time
import urllib.parse

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
    log_tail,
    run_checked,
    step,
    wait_ready,
)

USER = "pump"
PASSWORD = "pump-test-password"
DATABASE = "pump"
ROOT_PASSWORD = "pump-test-root"
_OS_USER = "mysql"
_PID_FILE = "mariadbd.pid"

_SERVER_BINARIES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")
_INSTALL_DB = ("/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")

#: Options used for the bootstrap start and every later start (InnoDB's log size must agree).
_COMMON_ARGS = ("--innodb-log-file-size=16M", "--skip-log-bin", "--skip-name-resolve")
#: Speed and Debian-like defaults for test servers; callers add or override with ``settings``.
_DEFAULT_SETTINGS: dict[str, str] = {
    "character-set-server": "utf8mb4",
    "collation-server": "utf8mb4_general_ci",
    "innodb-flush-log-at-trx-commit": "0",
    "innodb-doublewrite": "0",
    "innodb-buffer-pool-size": "128M",
    "max-connections": "200",
}
#: Run once, with full privileges, by the template's bootstrap start.
_INIT_SQL = f"""
DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');
FLUSH PRIVILEGES;
ALTER USER 'root'@'localhost' IDENTIFIED BY '{ROOT_PASSWORD}';
CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;
CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
"""


def _find(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if pathlib.Path(p).exists()), None)


def mariadb_binaries() -> tuple[str, str]:
    """Paths of ``mariadbd`` and ``mariadb-install-db``, installing ``mariadb-server`` when missing."""
    server, install_db = _find(_SERVER_BINARIES), _find(_INSTALL_DB)
    if server is None or install_db is None:
        apt_install(["mariadb-server"])
        server, install_db = _find(_SERVER_BINARIES), _find(_INSTALL_DB)
    if server is None or install_db is None:
        raise ServerError("mariadbd still missing after apt-get install mariadb-server")
    return server, install_db


def server_version(server_binary: str) -> str:
    """``10.11.19-MariaDB-0+deb12u1`` from ``mariadbd --version``."""
    out = run_checked([server_binary, "--no-defaults", "--version"], what="mariadbd --version", timeout=30)
    words = out.split()
    return words[words.index("Ver") + 1] if "Ver" in words else out.strip()


def template_dir(server_binary: str, install_db: str) -> pathlib.Path:
    """A data directory with the test users, made once per MariaDB version and init script."""
    version = server_version(server_binary)
    key = hash_files((), version, _INIT_SQL, *_COMMON_ARGS)[:12]
    template = cache_root() / "mariadb" / f"template-{key}"
    if (template / "mysql").is_dir():
        return template
    with cache_lock("mariadb-template"):
        if (template / "mysql").is_dir():
            return template
        with step(f"preparing a MariaDB {version} template data directory with the test users", first_run="~3 s"):
            scratch = datadir.scratch_dir(_OS_USER, "pump-test-mariadb-init-")
            try:
                _bootstrap(server_binary, install_db, scratch)
                datadir.publish_template(scratch / "data", template, _OS_USER)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return template


def _bootstrap(server_binary: str, install_db: str, scratch: pathlib.Path) -> None:
    """``mariadb-install-db``, then one start with ``--init-file`` (which, unlike the install's own
    bootstrap mode, runs with the grant tables loaded, so CREATE USER works), then a clean stop."""
    data = scratch / "data"
    run_checked(
        [
            *datadir.as_user(_OS_USER),
            install_db,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_COMMON_ARGS,
        ],
        what="mariadb-install-db",
        timeout=300,
    )
    init_file = scratch / "init.sql"
    init_file.write_text(_INIT_SQL)
    datadir.chown_tree(scratch, _OS_USER)
    log_path = scratch / "bootstrap.log"
    cmd = [
        *datadir.as_user(_OS_USER, pdeathsig="TERM"),
        server_binary,
        "--no-defaults",
        f"--datadir={data}",
        "--skip-networking",
        f"--socket={scratch / 'bootstrap.sock'}",
        f"--pid-file={data / _PID_FILE}",
        f"--init-file={init_file}",
        *_COMMON_ARGS,
    ]
    process = launch("mariadb-bootstrap", cmd, url="", port=0, workdir=scratch, log_path=log_path)
    # The init file runs before the server accepts connections; "ready for connections" means it is done.
    deadline = time.monotonic() + 120
    try:
        while "ready for connections" not in log_tail(log_path, 200):
            if process.process is not None and process.process.poll() is not None:
                raise ServerError(f"MariaDB bootstrap start failed:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ServerError(f"MariaDB bootstrap start did not finish within 120 s:\n{log_tail(log_path)}")
            time.sleep(0.05)
        if "[ERROR]" in log_tail(log_path, 200):
            raise ServerError(f"MariaDB bootstrap init file failed:\n{log_tail(log_path)}")
    finally:
        process.stop()
    if process.process is not None and process.process.returncode != 0:
        raise ServerError(f"MariaDB bootstrap stop failed (exit {process.process.returncode}):\n{log_tail(log_path)}")


def dsn(port: int, *, user: str = USER, password: str = PASSWORD, database: str = DATABASE) -> str:
    """``mysql://user:password@127.0.0.1:port/database`` (user and password URL-quoted)."""
    return f"mysql://{urllib.parse.quote(user)}:{urllib.parse.quote(password)}@127.0.0.1:{port}/{database}"


def start_mysql(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    settings: dict[str, str] | None = None,
    timeout: float = 60.0,
    persistent: bool = False,
) -> Server:
    """Start a private MariaDB on 127.0.0.1 from a copy of the cached template.

    ``settings`` adds or overrides ``--name=value`` server options (e.g. ``{"max-connections": "20"}``).
    As with PostgreSQL, ``persistent=True`` keeps the data directory at ``stop()`` for the next
    persistent start in the same ``workdir`` (outage tests), and every other start begins empty
    (only the ``pump`` database and the test users).
    """
    server_binary, install_db = mariadb_binaries()
    template = template_dir(server_binary, install_db)
    port = port or free_port()
    data = datadir.prepare(workdir, template, kind="mariadb", owner=_OS_USER, link_name="mysql-data", pid_file=_PID_FILE, reuse=persistent)
    # A Unix socket is mandatory for mariadbd; keep its path short (107-byte limit) and user-writable.
    socket_path = data.path / "mariadbd.sock"
    if len(str(socket_path)) > 100:
        socket_path = datadir.scratch_dir(_OS_USER, "pump-test-mariadb-sock-") / "mariadbd.sock"
    merged = {**_DEFAULT_SETTINGS, **(settings or {})}
    cmd = [
        *datadir.as_user(_OS_USER, pdeathsig="TERM"),
        server_binary,
        "--no-defaults",
        f"--datadir={data.path}",
        "--bind-address=127.0.0.1",
        f"--port={port}",
        f"--socket={socket_path}",
        f"--pid-file={data.path / _PID_FILE}",
        *_COMMON_ARGS,
        *(f"--{name}={value}" for name, value in merged.items()),
    ]

    def cleanup(_: Server) -> None:
        if socket_path.parent != data.path:
            shutil.rmtree(socket_path.parent, ignore_errors=True)
        if not persistent:
            data.release()

    url = dsn(port)
    server = launch(
        "mysql",
        cmd,
        url=url,
        port=port,
        workdir=workdir,
        log_path=workdir / "mysql.log",
        # SIGTERM is mariadbd's normal shutdown (InnoDB flushes; fast with a small buffer pool).
        stop_signal=signal.SIGTERM,
        stop_timeout=60.0,
        on_stopped=cleanup,
    )

    import pymysql  # imported late: only needed once a server is running

    def select_one() -> bool:
        conn = pymysql.connect(
            host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DATABASE, connect_timeout=2, read_timeout=5
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return bool(cur.fetchone() == (1,))
        finally:
            conn.close()

    wait_ready(server, select_one, timeout=timeout)
    server.details.update(
        version=server_version(server_binary),
        user=USER,
        password=PASSWORD,
        database=DATABASE,
        root_password=ROOT_PASSWORD,
        port=port,
        socket=str(socket_path),
    )
    return server
