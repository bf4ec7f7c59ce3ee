"""A real local JSON-RPC node: ganache from the npm registry, started and stopped here.

`install_ganache` runs `npm install ganache@7.9.2` into a project-local directory (once;
later calls find it there; a file lock keeps parallel test workers from installing twice).
`GanacheNode` starts it on 127.0.0.1 at a free port, waits until it answers JSON-RPC, and
stops it by its PID: at `stop`, when starting fails or is interrupted, and (Linux) when the
thread that started it ends, so a test run stopped by SIGTERM leaves no node behind. The
node runs the `shanghai` fork, the newest ganache 7.9.2 knows, which is what the contracts
are compiled for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from mercat.errors import ChainUnavailableError
from mercat.lifetime import dying_with_parent

GANACHE_VERSION = "7.9.2"
GANACHE_HARDFORK = "shanghai"

#: Where `install_ganache` puts the package unless told otherwise (relative to the cwd).
DEFAULT_INSTALL_DIR = Path(".cache/ganache")


def node_tools_missing() -> str | None:
    """Why ganache cannot be installed or run here (None when node and npm are present)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH"
    return None


def install_ganache(directory: Path | str = DEFAULT_INSTALL_DIR, timeout: float = 300.0) -> Path:
    """Install ganache into `directory` if it is not there yet; returns its entry script."""
    why = node_tools_missing()
    if why:
        raise ChainUnavailableError(f"cannot install ganache: {why}")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    entry = directory / "node_modules" / "ganache" / "dist" / "node" / "cli.js"
    package = directory / "node_modules" / "ganache" / "package.json"
    with open(directory / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers: the second waits, then finds it
        if _installed_version(package) != GANACHE_VERSION or not entry.exists():
            result = subprocess.run(
                [
                    "npm",
                    "install",
                    "--prefix",
                    str(directory),
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    f"ganache@{GANACHE_VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode != 0 or not entry.exists():
                tail = (result.stderr or result.stdout)[-2000:]
                raise ChainUnavailableError(
                    f"npm install ganache@{GANACHE_VERSION} failed ({result.returncode}): {tail}"
                )
    return entry


def _installed_version(package_json: Path) -> str | None:
    try:
        return json.loads(package_json.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GanacheNode:
    """A ganache process on 127.0.0.1; use as a context manager or call start()/stop().

    `accounts` funded, unlocked accounts; deterministic keys (`--wallet.deterministic`),
    so two runs see the same addresses. The node's output goes to `log_path`.
    """

    def __init__(
        self,
        install_dir: Path | str = DEFAULT_INSTALL_DIR,
        accounts: int = 20,
        port: int | None = None,
        log_path: Path | str | None = None,
    ) -> None:
        self.install_dir = Path(install_dir)
        self.accounts = accounts
        self.port = port
        self.log_path = Path(log_path) if log_path else self.install_dir / "ganache.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        entry = install_ganache(self.install_dir)
        self.port = self.port or free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    shutil.which("node") or "node",
                    str(entry),
                    "--server.host",
                    "127.0.0.1",
                    "--server.port",
                    str(self.port),
                    "--chain.hardfork",
                    GANACHE_HARDFORK,
                    "--wallet.totalAccounts",
                    str(self.accounts),
                    "--wallet.deterministic",
                    "--logging.quiet",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped by PID, nothing else
                preexec_fn=dying_with_parent(signal.SIGTERM),
            )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ChainUnavailableError(
                        f"ganache exited with {self.process.returncode} before answering; "
                        f"log: {self._log_tail()}"
                    )
                if self._answers():
                    return self.url
                time.sleep(0.2)
            raise ChainUnavailableError(
                f"ganache did not answer within {timeout:.0f} s: {self._log_tail()}"
            )
        except BaseException:  # Ctrl-C while waiting included: no node is left behind
            self.stop()
            raise

    def _answers(self) -> bool:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                answer = json.loads(response.read(1 << 16))
        except (OSError, ValueError):  # nothing listens yet, or something that is not it
            return False
        return isinstance(answer, dict) and "result" in answer

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node by its PID: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def __enter__(self) -> GanacheNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
