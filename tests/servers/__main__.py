"""Run one test server in the foreground: ``python -m tests.servers NAME [--workdir DIR] [--port N]``.

Prints the server's URL as the only line on stdout (progress and errors go to stderr), so scripts
such as ``scripts/bench`` can do ``url=$(python -m tests.servers redis | head -1)`` from a
background job, or developers can point ``PUMP_TEST_*`` variables at it. Stops the server on
Ctrl-C or SIGTERM. Without ``--workdir`` a temporary directory is used and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import time

from . import ENV_VARS, SERVER_NAMES, ServerError, start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=SERVER_NAMES, help="server to start")
    parser.add_argument("--workdir", type=pathlib.Path, help="directory for data and logs (default: a temp dir)")
    parser.add_argument("--port", type=int, help="TCP port (default: a free one)")
    parser.add_argument("--appendonly", action="store_true", help="redis only: fsync every write to an AOF in the workdir")
    args = parser.parse_args(argv)

    # Turn SIGTERM into the same orderly path as Ctrl-C.
    stop_requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_requested.set())

    temporary = args.workdir is None
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"pump-{args.name}-")) if temporary else args.workdir
    options: dict[str, object] = {}
    if args.port:
        options["port"] = args.port
    if args.appendonly:
        if args.name != "redis":
            parser.error("--appendonly applies to redis only")
        options["appendonly"] = True

    started = time.monotonic()
    try:
        server = start(args.name, workdir, **options)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(server.url, flush=True)
        if server.external:
            print(f"{ENV_VARS[args.name]} is set: using that server, nothing started", file=sys.stderr, flush=True)
        else:
            pid = server.pid if server.pid is not None else ", ".join(str(m.pid) for m in server.members)
            print(
                f"{args.name} ready in {time.monotonic() - started:.1f}s (pid {pid}, "
                f"log {server.log_path or server.workdir}); Ctrl-C or SIGTERM to stop",
                file=sys.stderr,
                flush=True,
            )
        if server.details:
            print(f"details: {json.dumps(server.details, default=str)}", file=sys.stderr, flush=True)
        # Stay in the foreground even for an external server, so callers can treat both alike.
        while not stop_requested.wait(0.5):
            for process in [server.process, *(m.process for m in server.members)]:
                if process is not None and process.poll() is not None:
                    print(f"{args.name}: a process exited with code {process.returncode}", file=sys.stderr)
                    return 1
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
