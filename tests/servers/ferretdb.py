"""MongoDB wire protocol for tests: FerretDB v1.24.2 with its pure-Go SQLite backend.

No real ``mongod`` can be downloaded on this machine (fastdl.mongodb.org is out of reach and no
registry carries it), so the ``mongo`` server is FerretDB, built from the Go module proxy. v1 is
used because v2 needs a PostgreSQL extension that is not available; SQLite keeps it a single
self-contained process with its files in the work directory.

``go install .../cmd/ferretdb@v1.24.2`` produces a binary that panics at start-up because the
module zip lacks the generated ``build/version/version.txt``. ``ferretdb_src/`` therefore holds a
tiny main that embeds the ``github.com/FerretDB/FerretDB/ferretdb`` package, which does not need
that file. Known differences of embedded v1 from MongoDB that tests must not rely on: no TTL
indexes (``expireAfterSeconds`` fails), no transactions, and capped collections are created but
never trimmed (embedding does not schedule the cleanup job).
"""

from __future__ import annotations

import os
import pathlib
import platform

from . import (
    Server,
    cache_lock,
    cache_root,
    free_port,
    go_binary,
    hash_files,
    launch,
    run_checked,
    step,
    wait_ready,
)

SOURCE_DIR = pathlib.Path(__file__).resolve().parent / "ferretdb_src"
#: The FerretDB version ferretdb_src/go.mod requires (for messages).
VERSION = "v1.24.2"
_SOURCES = ("go.mod", "go.sum", "main.go")


def ferretdb_binary() -> pathlib.Path:
    """Path of the FerretDB test binary, building it on first use.

    The binary is cached under ``<cache>/ferretdb/<hash>/`` where the hash covers the Go sources and
    the platform, so editing ``ferretdb_src`` (e.g. bumping FerretDB) rebuilds and nothing else does.
    ``GOTOOLCHAIN=local`` stops Go from trying to download another toolchain, ``CGO_ENABLED=0``
    keeps the build free of a C compiler (SQLite is the pure-Go modernc port), and the default
    ``-mod=readonly`` makes an incomplete go.sum fail loudly instead of being patched silently.
    """
    key = hash_files([SOURCE_DIR / name for name in _SOURCES], platform.system(), platform.machine())
    target = cache_root() / "ferretdb" / key / "ferretdb-test"
    if target.exists():
        return target
    with cache_lock("ferretdb-build"):
        if target.exists():
            return target
        go = go_binary("FerretDB for the mongo tests")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
        with step(f"building FerretDB {VERSION} from the Go module proxy into {target.parent}", first_run="~3 min"):
            run_checked(
                [go, "build", "-trimpath", "-o", str(partial), "."],
                what="go build FerretDB",
                timeout=1800,
                cwd=SOURCE_DIR,
                env=env,
            )
            os.replace(partial, target)
    return target


def start_mongo(
    workdir: pathlib.Path,
    *,
    port: int | None = None,
    log_level: str = "info",
    timeout: float = 60.0,
) -> Server:
    """Start FerretDB (SQLite backend) on 127.0.0.1 with its databases in ``workdir/ferretdb-data``.

    The data directory is kept across restarts with the same ``workdir``. ``log_level`` is one of
    debug/info/warn/error; "info" logs one line per client connection, which is handy when a sink's
    connection handling is being debugged and cheap otherwise.
    """
    binary = ferretdb_binary()
    port = port or free_port()
    data_dir = workdir / "ferretdb-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "ferretdb.log"
    cmd = [
        str(binary),
        f"-listen-addr=127.0.0.1:{port}",
        f"-data-dir={data_dir}",
        f"-log-level={log_level}",
    ]
    url = f"mongodb://127.0.0.1:{port}/"
    server = launch("mongo", cmd, url=url, port=port, workdir=workdir, log_path=log_path, stop_timeout=30.0)

    import pymongo  # imported late: only needed once a server is running

    def ping() -> bool:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
        try:
            return bool(client.admin.command("ping").get("ok"))
        finally:
            client.close()

    wait_ready(server, ping, timeout=timeout)
    server.details["version"] = f"FerretDB {VERSION}"
    return server
