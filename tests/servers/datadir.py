"""Data directories for database servers that refuse to run as root (PostgreSQL, MariaDB).

CI runs as root, and ``initdb``/``postgres`` and (sensibly configured) ``mariadbd`` run as their
own system user, reached through ``setpriv`` (no sudo, no login shell). That user cannot enter
root's private directories (``/root``, pytest's ``/tmp/pytest-of-root`` are mode 0700), so:

* a template data directory is made once in a scratch directory under ``/tmp`` and moved into the
  cache by root (root can read and write it whoever owns it);
* each start copies the template to ``workdir/<link>`` when the server's user can traverse to it,
  otherwise to a fresh ``/tmp/pump-test-<kind>/run-*/data`` that ``release()`` deletes, with a symlink
  ``workdir/<link>`` pointing to it while it exists (so tests find the files where they expect).

Copying a prepared template is faster than initialising a data directory on every start.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import pwd
import shutil
import tempfile
import time

from . import ServerError, run_checked

#: World-traversable scratch space a system user can reach ($TMPDIR may be private, /tmp is 1777).
WORLD_TMP = pathlib.Path("/tmp")


def is_root() -> bool:
    return os.geteuid() == 0


def as_user(user: str, *, pdeathsig: str | None = None) -> list[str]:
    """Command prefix running the rest as ``user`` when we are root (else nothing: run as ourselves).

    ``setpriv`` resets the parent-death signal when it changes credentials, so the server's own
    death signal is passed through ``--pdeathsig`` instead.
    """
    if not is_root():
        return []
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    if pdeathsig:
        prefix.append(f"--pdeathsig={pdeathsig}")
    return [*prefix, "--"]


def chown_tree(path: pathlib.Path, owner: str) -> None:
    """Give ``path`` and everything below it to ``owner`` (a no-op unless we are root)."""
    if not is_root():
        return
    record = pwd.getpwnam(owner)
    os.lchown(path, record.pw_uid, record.pw_gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for entry in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, entry), record.pw_uid, record.pw_gid)


def user_can_reach(user: str, directory: pathlib.Path) -> bool:
    """Whether ``user`` can traverse to ``directory`` (always true when not root).

    Write access is not needed: root copies the data directory in and hands it to the user.
    """
    if not is_root():
        return True
    try:
        run_checked([*as_user(user), "test", "-x", str(directory)], what="probe", timeout=30)
    except ServerError:
        return False
    return True


def scratch_dir(user: str, prefix: str) -> pathlib.Path:
    """A fresh directory under /tmp that ``user`` owns (for initdb-style tools run as that user)."""
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=WORLD_TMP))
    os.chmod(scratch, 0o755)
    if is_root():
        shutil.chown(scratch, user, user)
    return scratch


def publish_template(scratch_data: pathlib.Path, template: pathlib.Path, owner: str) -> None:
    """Copy a freshly initialised data directory into the cache as ``template`` (atomically)."""
    template.parent.mkdir(parents=True, exist_ok=True)
    staging = template.with_name(template.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(scratch_data, staging, symlinks=True)
    chown_tree(staging, owner)
    os.replace(staging, template)


@dataclasses.dataclass(frozen=True)
class DataDir:
    """Where a server's data directory ended up, and what ``release()`` must delete."""

    path: pathlib.Path
    link: pathlib.Path
    #: ``/tmp/pump-test-<kind>/run-*`` owned by this start, or None when the data lives in the workdir.
    scratch: pathlib.Path | None

    def release(self) -> None:
        """Delete a scratch data directory and its symlink (a workdir data directory is left alone)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            if self.link.is_symlink():
                self.link.unlink()


def _shared_root(kind: str) -> pathlib.Path:
    return WORLD_TMP / f"pump-test-{kind}"


def _in_use(data_dir: pathlib.Path, pid_file: str) -> bool:
    """Whether the server whose pid ``data_dir/pid_file`` names is still running."""
    try:
        pid = int((data_dir / pid_file).read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return pathlib.Path(f"/proc/{pid}").exists()


def _reap_stale_runs(kind: str, pid_file: str, min_age: float = 600.0) -> None:
    """Delete shared run directories left by killed test runs (no live server, older than ``min_age`` s).

    The age check keeps a directory another worker is still filling with the template.
    """
    root = _shared_root(kind)
    if not root.is_dir():
        return
    now = time.time()
    for run_dir in root.glob("run-*"):
        try:
            if now - run_dir.stat().st_mtime < min_age or _in_use(run_dir / "data", pid_file):
                continue
        except OSError:
            continue
        shutil.rmtree(run_dir, ignore_errors=True)


def prepare(
    workdir: pathlib.Path,
    template: pathlib.Path,
    *,
    kind: str,
    owner: str,
    link_name: str,
    pid_file: str,
    reuse: bool = False,
) -> DataDir:
    """Copy ``template`` to a fresh data directory for ``owner`` (see the module docstring).

    With ``reuse``, a data directory left in the same ``workdir`` by an earlier persistent start is
    used as it is, so a test can stop a server and start it again on its data. ``pid_file`` (inside
    the data directory) tells a crashed run's leftovers from a live server's.
    """
    link = workdir / link_name
    root = _shared_root(kind)
    if reuse and link.exists():
        data_dir = link.resolve()
        scratch = data_dir.parent if data_dir.parent.parent == root else None
        return DataDir(data_dir, link, scratch)
    if link.is_symlink():
        # The scratch directory of an earlier persistent start in this workdir is ours to delete.
        previous = link.resolve()
        link.unlink()
        if previous.parent.parent == root and not _in_use(previous, pid_file):
            shutil.rmtree(previous.parent, ignore_errors=True)
    elif link.exists():
        shutil.rmtree(link)
    if user_can_reach(owner, workdir):
        data_dir, scratch = link, None
    else:
        _reap_stale_runs(kind, pid_file)
        root.mkdir(mode=0o755, exist_ok=True)
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=root))
        os.chmod(scratch, 0o755)
        if is_root():
            shutil.chown(scratch, owner, owner)
        data_dir = scratch / "data"
        link.symlink_to(data_dir)
    shutil.copytree(template, data_dir, symlinks=True)
    os.chmod(data_dir, 0o700)
    chown_tree(data_dir, owner)
    return DataDir(data_dir, link, scratch)
