"""A small virtual network for tests: one network namespace per host, joined by veth
pairs to a bridge that lives in a namespace of its own, plus one veth into the namespace
the tests run in. Needs root and `ip`; `available()` says why not otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


def available() -> str | None:
    """None if namespaces can be made here, else the reason they cannot."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"mctprobe{os.getpid()}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class VirtualNetwork:
    """Hosts 10.X.Y.1.. in namespaces `<prefix>h1`.., the caller at 10.X.Y.254."""

    hosts: int
    prefix: str = field(default_factory=lambda: f"mc{os.getpid() % 100000}")
    namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        pid = os.getpid()
        self.subnet = f"10.{200 + pid % 50}.{pid % 250}"
        self.switch = f"{self.prefix}sw"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    def namespace(self, i: int) -> str:
        return f"{self.prefix}h{i + 1}"

    def _run(self, *args: str) -> None:
        done = _ip(*args)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def __enter__(self) -> VirtualNetwork:
        try:
            self._run("netns", "add", self.switch)
            self.namespaces.append(self.switch)
            self._run("-n", self.switch, "link", "add", "br0", "type", "bridge")
            self._run("-n", self.switch, "link", "set", "br0", "up")
            for i in range(self.hosts):
                ns = self.namespace(i)
                self._run("netns", "add", ns)
                self.namespaces.append(ns)
                inner, outer = f"{self.prefix}a{i}", f"{self.prefix}b{i}"
                self._run(
                    "link",
                    "add",
                    inner,
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    outer,
                    "netns",
                    self.switch,
                )
                self._run("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", inner)
                self._run("-n", ns, "link", "set", inner, "up")
                self._run("-n", ns, "link", "set", "lo", "up")
                self._run("-n", self.switch, "link", "set", outer, "master", "br0")
                self._run("-n", self.switch, "link", "set", outer, "up")
            # the tests' own namespace joins the bridge too (it runs the bidder client)
            mine, outer = f"{self.prefix}r", f"{self.prefix}rb"
            self._run(
                "link", "add", mine, "type", "veth", "peer", "name", outer, "netns", self.switch
            )
            self._run("addr", "add", f"{self.subnet}.254/24", "dev", mine)
            self._run("link", "set", mine, "up")
            self._run("-n", self.switch, "link", "set", outer, "master", "br0")
            self._run("-n", self.switch, "link", "set", outer, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # Deleting a namespace deletes its veth ends, and with them their peers.
        for ns in reversed(self.namespaces):
            _ip("netns", "del", ns)
        self.namespaces.clear()
        _ip("link", "del", f"{self.prefix}r")

    def wrap(self, i: int, command: list[str]) -> list[str]:
        """`command` run inside host i's namespace."""
        return ["ip", "netns", "exec", self.namespace(i), *command]
