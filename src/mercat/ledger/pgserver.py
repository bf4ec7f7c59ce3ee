"""A disposable PostgreSQL server, for the test suite and the benchmark.

The packaged service start does not work on the machines mercat is built on, so this runs
the server binaries directly: `initdb` on a temporary data directory, then `postgres` itself
as a child process on a free port bound to 127.0.0.1, trust authentication, stopped and its
directory removed at the end, or when starting fails or is interrupted. The server gets
SIGINT (its fast shutdown) when the thread that started it ends (Linux), so a test run
stopped by SIGTERM or SIGKILL, which runs no clean-up, leaves no server running (`pg_ctl
start` would detach it). Its directory does stay in the temporary folder; it is named
`mercat-pg-<pid>-...` after the process that made it, and the next `TemporaryPostgres`
removes every such directory whose process and server have both ended (`sweep_stale`).
As root it runs them as the `postgres` user (the server refuses to run as root).

Binaries are looked up on PATH, then in /usr/lib/postgresql/<version>/bin (Debian's layout).
`ensure_installed()` installs Debian's `postgresql` package when they are missing and this
process may (root, apt-get present); .ci/run does the same before the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mercat.lifetime import dying_with_parent, pid_alive, sweep_left_behind

INSTALL_LOCK = "/tmp/mercat-postgresql-install.lock"
ROOT_PREFIX = "mercat-pg-"
_ROOT_NAME = re.compile(re.escape(ROOT_PREFIX) + r"([1-9][0-9]*)-.+")


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


def _postmaster_pid(root: Path) -> int | None:
    """The server pid its data directory records, 0 if it records none, None if the
    record cannot be read (then the directory is not touched)."""
    try:
        first = (root / "data" / "postmaster.pid").read_text(errors="replace").split("\n", 1)[0]
    except FileNotFoundError:
        return 0
    except OSError:
        return None
    return int(first) if first.strip().isdigit() else 0


def sweep_stale(directory: Path, alive: Callable[[int], bool] = pid_alive) -> list[Path]:
    """Remove the directories of servers whose runs ended without cleaning up (a SIGKILL
    runs no clean-up); returns them. A directory of `directory` is stale when its name is
    `mercat-pg-<pid>-...` and neither that process nor the server its postmaster.pid names
    is `alive` (`mercat.lifetime.sweep_left_behind`): a running test process, or a server
    it left, keeps its directory (so does a pid the system has given to a new process
    since: every doubt keeps a directory)."""

    def serving(root: Path) -> bool:
        server = _postmaster_pid(root)
        return server is None or (server > 0 and alive(server))

    return sweep_left_behind(directory, _ROOT_NAME, keep=serving, alive=alive)


def make_root(directory: Path, alive: Callable[[int], bool] = pid_alive) -> Path:
    """A new server directory in `directory`, named after this process, once the stale
    ones are gone."""
    sweep_stale(directory, alive)
    return Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=directory))


def create_database_sql(name: str, icu_locale: str | None = None) -> str:
    """CREATE DATABASE for `name`, its text sorted by the ICU locale `icu_locale` if given
    (names are the tests' own; checked anyway, since they are spliced into the statement)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a database name: {name!r}")
    if icu_locale is None:
        return f'CREATE DATABASE "{name}"'
    if not icu_locale.replace("-", "").isalnum():
        raise ValueError(f"not an ICU locale name: {icu_locale!r}")
    icu = f"TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
    return f'CREATE DATABASE "{name}" {icu}'


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
        self.root = make_root(Path(tempfile.gettempdir()))
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
            self._user: dict[str, object] = {
                "user": uid.pw_uid, "group": uid.pw_gid, "extra_groups": []
            }  # fmt: skip
        else:
            self._user = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {result.stderr[-2000:]}")

    def start(self, timeout: float = 120.0) -> TemporaryPostgres:
        """initdb, then the server, waited on until it accepts connections (at most
        `timeout` seconds). On any failure, Ctrl-C included, nothing is left running or on
        disk."""
        try:
            self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
            options = [
                "-p", str(self.port),
                "-k", str(self.root),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"max_connections={self.max_connections}",
            ]  # fmt: skip
            if not self.durable:
                for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                    options += ["-c", setting]
            with open(self.root / "server.log", "ab") as log:
                self.process = subprocess.Popen(
                    [str(self.bindir / "postgres"), "-D", str(self.datadir), *options],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches it through `stop`, not directly
                    preexec_fn=dying_with_parent(signal.SIGINT), **self._user,  # type: ignore[arg-type]
                )  # fmt: skip
            self.started = True
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostgresUnavailable(
                    f"postgres exited with {self.process.returncode}: {self._log_tail()}"
                )
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                    connect_timeout=5,
                ):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"postgres did not accept connections within {timeout:.0f} s: "
                        f"{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, icu_locale: str | None = None) -> str:
        """A fresh, empty database; returns its URL. With `icu_locale` (say "en-US") its
        text sorts by that locale's rules, as a production database's often does, instead
        of by bytes."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(create_database_sql(name, icu_locale))
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (SIGQUIT: `pg_ctl stop -m immediate`; SIGKILL if it lingers) and
        remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
