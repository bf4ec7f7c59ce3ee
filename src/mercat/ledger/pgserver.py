"""A disposable PostgreSQL server, for the test suite and the benchmark.

The packaged service start does not work on the machines mercat is built on, so this runs
the server binaries directly: `initdb` on a temporary data directory, `pg_ctl start` on a
free port bound to 127.0.0.1, trust authentication, and `pg_ctl stop` plus removal at the
end. As root it runs them as the `postgres` user (the server refuses to run as root).

Binaries are looked up on PATH, then in /usr/lib/postgresql/<version>/bin (Debian's layout).
`ensure_installed()` installs Debian's `postgresql` package when they are missing and this
process may (root, apt-get present); .ci/run does the same before the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_LOCK = "/tmp/mercat-postgresql-install.lock"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(candidates[-1]).parent if candidates else None


def ensure_installed() -> Path:
    """The binaries' directory, installing Debian's postgresql package if needed and possible."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed and this process cannot install it "
            "(needs root and apt-get): apt-get install -y postgresql"
        )
    with open(INSTALL_LOCK, "w") as lock:  # one installer at a time (pytest -n 2)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if find_bindir() is None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": env}
            if subprocess.run(["apt-get", "install", "-y", "postgresql"], **quiet).returncode:
                subprocess.run(["apt-get", "update"], **quiet)
                subprocess.run(["apt-get", "install", "-y", "postgresql"], check=False, **quiet)
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable("apt-get install -y postgresql did not provide pg_ctl")
    return bindir


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """`with TemporaryPostgres() as pg: url = pg.create_database("x")`.

    `durable=False` turns fsync off (fine for tests: the data directory is thrown away);
    the benchmark keeps it on, to compare with SQLite's synchronous=FULL fairly.
    """

    def __init__(self, *, durable: bool = False, max_connections: int = 100) -> None:
        self.bindir = ensure_installed()
        self.durable = durable
        self.max_connections = max_connections
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mercat-pg-"))
        self.datadir = self.root / "data"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            # runuser (util-linux) lives in sbin, which a CI PATH may leave out.
            runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
            if runuser is None:
                raise PostgresUnavailable("running as root without runuser")
            try:
                import pwd

                uid = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable("running as root and there is no postgres user") from exc
            os.chown(self.root, uid.pw_uid, uid.pw_gid)
            self._as_postgres = [runuser, "-u", "postgres", "--"]
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {result.stderr[-2000:]}")

    def start(self) -> TemporaryPostgres:
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        options = [
            f"-p {self.port}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            f"-c max_connections={self.max_connections}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = str(self.root / "server.log")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", log, "-w",
                  "-o", " ".join(options), "start")  # fmt: skip
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(PostgresUnavailable):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                          "-w", "stop")  # fmt: skip
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
