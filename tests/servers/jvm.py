"""Java servers from Maven Central (OpenSearch, Elasticsearch 7, Kafka): classpaths, small mains, start-up archives.

* :func:`resolve_classpath` runs ``mvn dependency:build-classpath`` on a throwaway POM kept in the
  checkout, which downloads the jars into the user's Maven repository (``~/.m2``) and records the
  runtime classpath in the cache; later runs only check that every jar is still there.
* :func:`compile_main` compiles a single-file Java main against that classpath into a jar.
* :class:`ClassDataArchive` speeds up later starts of a JVM that loads many classes: the first
  clean stop records a dynamic AppCDS archive (``-XX:ArchiveClassesAtExit``) that later starts map
  in with ``-XX:SharedArchiveFile`` (OpenSearch: ~14 s → ~4 s on two cores). Recording makes that
  first stop a few seconds longer. The archive's name covers the JVM and every jar (the JVM
  silently ignores a mismatching archive), and only an archive from a JVM that exited normally
  after SIGTERM is kept.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import time

from . import Server, ServerError, hash_files, run_checked, step


def tool(name: str) -> str:
    """A JDK tool (java, javac, jar) from $JAVA_HOME if set, else from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (pathlib.Path(java_home) / "bin" / name).exists():
        return str(pathlib.Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise ServerError(f"{name} not found: the Java test servers need a JDK 17 (java, javac, jar) and Maven")
    return found


def read_classpath(cp_file: pathlib.Path) -> list[str] | None:
    """Entries of a cached ``cp.txt``, or None when it is missing or a jar has since been deleted (~/.m2 cleaned)."""
    if not cp_file.exists():
        return None
    entries = [e for e in cp_file.read_text().strip().split(os.pathsep) if e]
    if not entries or not all(os.path.exists(e) for e in entries):
        return None
    return entries


def resolve_classpath(pom: pathlib.Path, directory: pathlib.Path, *, what: str, first_run: str) -> list[str]:
    """The runtime classpath of ``pom``'s dependencies, resolved from Maven Central once into ``directory/cp.txt``.

    The caller holds the build lock for ``directory``. A copy of the POM is used so that Maven never
    writes next to the checkout's sources.
    """
    cp_file = directory / "cp.txt"
    entries = read_classpath(cp_file)
    if entries is not None:
        return entries
    mvn = shutil.which("mvn")
    if not mvn:
        raise ServerError(f"mvn not found: Maven fetches {what} from Maven Central")
    directory.mkdir(parents=True, exist_ok=True)
    with step(f"resolving {what} from Maven Central into ~/.m2", first_run=first_run):
        shutil.copy2(pom, directory / "pom.xml")
        partial = directory / "cp.txt.partial"
        run_checked(
            [mvn, "-q", "-B", "-f", str(directory / "pom.xml"), "dependency:build-classpath", f"-Dmdep.outputFile={partial}"],
            what=f"mvn dependency:build-classpath ({what})",
            timeout=1800,
        )
        os.replace(partial, cp_file)
    entries = read_classpath(cp_file)
    if entries is None:
        raise ServerError(f"Maven wrote an unusable classpath to {cp_file}")
    return entries


def compile_main(source: pathlib.Path, entries: list[str], jar: pathlib.Path) -> pathlib.Path:
    """Compile the single-file main ``source`` against ``entries`` into ``jar`` (once; CDS needs jars, not dirs)."""
    if jar.exists():
        return jar
    classes = jar.parent / "classes"
    shutil.rmtree(classes, ignore_errors=True)
    run_checked(
        [tool("javac"), "-nowarn", "-cp", os.pathsep.join(entries), "-d", str(classes), str(source)],
        what=f"javac {source.name}",
        timeout=300,
    )
    partial = jar.with_name(jar.name + ".partial")
    run_checked([tool("jar"), "--create", "--file", str(partial), "-C", str(classes), "."], what="jar", timeout=120)
    os.replace(partial, jar)
    shutil.rmtree(classes, ignore_errors=True)
    return jar


class ClassDataArchive:
    """The AppCDS archive of one JVM + classpath in ``directory``: JVM options to use it or record it.

    Use :attr:`jvm_args` on the command line and pass :meth:`publish` as the server's ``on_stopped``.
    """

    def __init__(self, directory: pathlib.Path, java: str, classpath: str, tag: str) -> None:
        identity = []
        for entry in [str(pathlib.Path(java).resolve()), *classpath.split(os.pathsep)]:
            stat = os.stat(entry)
            identity.append(f"{entry}:{stat.st_size}:{stat.st_mtime_ns}")
        self.directory = directory
        self.archive = directory / f"classes-{hash_files((), *identity)[:12]}.jsa"
        self.recording: pathlib.Path | None = None
        if self.archive.exists():
            self.jvm_args = [f"-XX:SharedArchiveFile={self.archive}"]
            return
        # Recordings of JVMs that were killed (or whose test run was) are never published.
        for stale in directory.glob(f"{self.archive.name}.*.partial"):
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    stale.unlink()
        self.recording = self.archive.with_name(f"{self.archive.name}.{os.getpid()}.{tag}.partial")
        self.jvm_args = [f"-XX:ArchiveClassesAtExit={self.recording}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]

    def server_args(self, heap: str) -> list[str]:
        """JVM options every test server gets: a fixed heap, this archive, exit on OOM, no GUI, UTF-8."""
        return [
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *self.jvm_args,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8",
        ]

    def publish(self, server: Server) -> None:
        """Keep the recorded archive only if the JVM exited through its normal shutdown path."""
        if self.recording is None:
            return
        returncode = server.process.returncode if server.process is not None else None
        clean_exit = returncode in (0, 143)  # 143: JVM exit status after SIGTERM
        with contextlib.suppress(OSError):
            if clean_exit and self.recording.exists() and self.recording.stat().st_size > 0:
                os.replace(self.recording, self.archive)
                for outdated in self.directory.glob("classes-*.jsa"):
                    if outdated != self.archive:
                        outdated.unlink()
            else:
                self.recording.unlink(missing_ok=True)
