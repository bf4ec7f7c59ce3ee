"""A devnet's participants as command lines, and a devnet directory for starting them by
hand (`mercat devnet init DIR`).

`commands` says how each participant of a `DevnetSetup` is started: the node with its round
loop (`mercat serve`), each oracle (`mercat oracle`), each provider agent (`mercat agent`,
its servers, costs and failure injection from `provider_plan`) and each requester
(`mercat request load`). `mercat devnet up` starts exactly these, handing every secret on
standard input (`--key -`); `init` writes the same commands with key files instead, so
that a protocol builder can start, stop, restart and replace participants one by one, in
their own terminals, against one ledger.

`init` creates, in a directory that must not exist yet or be empty (it never overwrites):

- `ledger.db`: the devnet's ledger (`mercat.node.genesis`: the operator, the oracle set,
  funded provider and requester accounts), as a local chain's genesis block;
- `keys/`: one key file per participant (`operator.key`, `oracleN.key`, `agentN.key`,
  `requesterN.key`: 64 hex digits, the Ed25519 seed) and `sample.secret` (the oracles'
  shared sampling secret), each created 0600 in a 0700 directory;
- `p1-model.npz` when the first provider offers a model asset;
- `README.md`: the commands to run from the directory, one participant per line, and
  `devnet.env` (the node's URL, the ledger's URL, the ledger id) for scripts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mercat.errors import AlreadyExistsError, InvalidParameterError
from mercat.identity import Keypair
from mercat.node.genesis import UNIT, DevnetKeys, DevnetSetup, genesis, provider_plan
from mercat.node.local_market import devnet_limits, free_port

LIMITS = ("client_rate", "client_burst", "account_burst", "node_account_burst",
          "max_in_flight", "client_in_flight", "max_connections")  # fmt: skip


@dataclass(frozen=True)
class Command:
    """One participant's `mercat` command: `args` after `mercat`; `stdin`: the lines it reads
    its secrets from when they are passed as `-` (none when they are files)."""

    name: str  # node, oracle1, agent1, requester1, ...
    role: str  # node, oracle, agent, requester
    args: list[str]
    stdin: list[str]


@dataclass(frozen=True)
class Secrets:
    """Where a participant's secrets come from: `-` (stdin, with the lines to write) or a
    file. `key(name)` and `sample_secret()` give the option's value and the stdin line."""

    key: Callable[[str], tuple[str, list[str]]]
    sample_secret: Callable[[], tuple[str, list[str]]]


def piped(keys: DevnetKeys) -> Secrets:
    """Every secret on standard input (what `mercat devnet up` does: no key touches disk)."""
    by_name = _keys_by_name(keys)
    return Secrets(lambda name: ("-", [by_name[name].seed.hex()]),
                   lambda: ("-", [keys.sample_secret.hex()]))  # fmt: skip


def in_files(directory: str) -> Secrets:
    """Every secret in a file under `directory` (what `init` writes)."""
    return Secrets(lambda name: (f"{directory}/{name}.key", []),
                   lambda: (f"{directory}/sample.secret", []))  # fmt: skip


def _keys_by_name(keys: DevnetKeys) -> dict[str, Keypair]:
    named = {"operator": keys.operator}
    for role, group in (("oracle", keys.oracles), ("agent", keys.providers),
                        ("requester", keys.requesters),
                        ("auctioneer", keys.auctioneers)):  # fmt: skip
        named.update({f"{role}{i + 1}": k for i, k in enumerate(group)})
    if keys.auctioneer_client is not None:
        named["auctioneer-client"] = keys.auctioneer_client
    return named


AUCTIONEER_PEERS = "auctioneer/peers.toml"


def write_auctioneer(setup: DevnetSetup, keys: DevnetKeys, directory: Path) -> None:
    """The peers file of the auctioneer's m provider processes (`setup.auctioneer_processes`)
    under `directory`: each on a free loopback port, rounds opened and closed by the node
    (opening = "sealed", the node's auctioneer key the one sealing client)."""
    from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams, dump_peers

    m = setup.auctioneer_processes
    ids = tuple(f"auctioneer{i + 1}" for i in range(m))
    params = ProtocolParams(ids, (m - 1) // 2, mechanism="double", opening="sealed")
    assert keys.auctioneer_client is not None
    peers = PeersFile(
        params,
        tuple(Peer(p, f"tcp://127.0.0.1:{free_port()}", k.public)
              for p, k in zip(ids, keys.auctioneers, strict=True)),
        (keys.auctioneer_client.public,),
    )  # fmt: skip
    path = directory / AUCTIONEER_PEERS
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(dump_peers(peers), encoding="utf-8")


def commands(setup: DevnetSetup, port: int, workdir: str, secrets: Secrets) -> list[Command]:
    """Every participant's command (module docstring), the node first, then the oracles,
    the agents and the requesters, in the order they are best started. Paths are under
    `workdir` (`.`: where the commands run; or absolute), model archives as `write_models`
    puts them."""
    url = f"http://127.0.0.1:{port}"

    def at(name: str) -> str:
        return name if workdir == "." else f"{workdir}/{name}"

    work = at("work")
    limits = devnet_limits(setup.providers + setup.oracles + setup.requesters)
    key, lines = secrets.key("operator")
    node = [
        "serve", "--ledger", f"sqlite:///{at('ledger.db')}", "--store", at("store"),
        "--board", at("board.db"), "--operator-key", key, "--port", str(port),
        "--mechanism", setup.mechanism, "--round-seconds", str(setup.round_seconds),
        "--until-round", str(setup.rounds), "--grace-ms", str(setup.grace_ms),
        "--attest-seconds", str(setup.attest_seconds), "--seed", str(setup.seed),
    ]  # fmt: skip
    for name in LIMITS:
        node += ["--limit", f"{name}={getattr(limits, name)}"]
    auctioneers = []
    if setup.auctioneer_processes:
        client, client_lines = secrets.key("auctioneer-client")
        node += ["--auctioneer-peers", at(AUCTIONEER_PEERS), "--auctioneer-key", client]
        lines = lines + client_lines  # read after the operator's key
        for i in range(setup.auctioneer_processes):
            name = f"auctioneer{i + 1}"
            key, key_lines = secrets.key(name)
            auctioneers.append(Command(name, "auctioneer", ["provider", "--id", name, "--peers",
                                       at(AUCTIONEER_PEERS), "--key", key], key_lines))  # fmt: skip
    out = [Command("node", "node", node, lines), *auctioneers]
    for i, behaviour in enumerate(setup.behaviours()):
        name = f"oracle{i + 1}"
        key, lines = secrets.key(name)
        secret, secret_lines = secrets.sample_secret()
        args = ["oracle", "--node", url, "--key", key, "--behaviour", behaviour,
                "--sample-rate", str(setup.sample_rate), "--sample-secret", secret,
                "--workdir", work, "--json"]  # fmt: skip
        out.append(Command(name, "oracle", args, lines + secret_lines))
    for i in range(setup.providers):
        name = f"agent{i + 1}"
        key, lines = secrets.key(name)
        out.append(Command(name, "agent", _agent_args(setup, i, url, key, work, at), lines))
    for i in range(setup.requesters):
        name = f"requester{i + 1}"
        key, lines = secrets.key(name)
        args = ["request", "load", "--node", url, "--key", key,
                "--per-round", str(setup.per_round), "--until-round", str(setup.rounds),
                "--deadline-ms", str(setup.deadline_ms), "--seed", str(setup.seed * 1000 + i),
                "--max-replicas", str(setup.max_replicas), "--json"]  # fmt: skip
        if setup.sealed_share:
            args += ["--sealed-share", str(setup.sealed_share)]
        out.append(Command(name, "requester", args, lines))
    return out


def _agent_args(setup: DevnetSetup, index: int, url: str, key: str, work: str,
                models: Callable[[str], str]) -> list[str]:  # fmt: skip
    servers, content = provider_plan(setup, index)
    first = servers[0]
    args = ["agent", "--node", url, "--key", key, "--workdir", work, "--json",
            "--seed", str(setup.seed), "--stake", str(first.stake / UNIT),
            "--cost", str(first.cost / UNIT),
            "--failure-rate", str(first.failure_rate), "--slow-rate", str(first.slow_rate),
            "--wrong-rate", str(first.wrong_rate)]  # fmt: skip
    for resource, amount in first.capacity.items():
        args += ["--capacity", f"{resource}={amount}"]
    for resource, amount in first.unit_costs.items():
        args += ["--unit-cost", f"{resource}={amount / UNIT}"]
    for spec in servers:
        args += ["--server", spec.asset]
    for c in content:
        args += ["--model", models(f"{c.asset}.npz"), "--model-asset", c.asset,
                 "--model-cost", str(c.cost / UNIT)]  # fmt: skip
    return args


def write_models(setup: DevnetSetup, directory: Path) -> None:
    """The archives of the model assets the providers offer, where `commands` names them."""
    for i in range(setup.providers):
        for c in provider_plan(setup, i)[1]:
            (directory / f"{c.asset}.npz").write_bytes(c.content)


# --- a devnet directory for participants started by hand ------------------------------------


def _write_secret(path: Path, text: str) -> None:
    """A new file readable by its owner only (0600 from its creation: never readable by
    others, not even for an instant); AlreadyExistsError if the path exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExistsError(f"{path} exists: refusing to overwrite it") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text + "\n")


def init(directory: str | Path, setup: DevnetSetup, port: int) -> dict[str, object]:
    """Create a devnet directory (module docstring); what it holds, for the CLI to print.
    Refuses a directory that exists and is not empty (AlreadyExistsError), and leaves
    nothing behind when it fails half way."""
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AlreadyExistsError(f"{root} exists and is not empty: refusing to overwrite it")
    created = not root.exists()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(f"cannot create {root}: {exc.strerror}") from None
    try:
        return _fill(root, setup, port)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:  # it was empty: empty it again
            for entry in root.iterdir():
                with contextlib.suppress(OSError):
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
        raise


def _fill(root: Path, setup: DevnetSetup, port: int) -> dict[str, object]:
    keys = DevnetKeys.generate(setup)
    keydir = root / "keys"
    keydir.mkdir(mode=0o700)
    for name, key in _keys_by_name(keys).items():
        _write_secret(keydir / f"{name}.key", key.seed.hex())
    _write_secret(keydir / "sample.secret", keys.sample_secret.hex())
    if setup.auctioneer_processes:
        write_auctioneer(setup, keys, root)
    ledger = genesis(f"sqlite:///{root / 'ledger.db'}", setup, keys)
    ledger_id = ledger.id
    ledger.close()
    write_models(setup, root)
    (root / "work").mkdir()
    listed = commands(setup, port, ".", in_files("keys"))
    url = f"http://127.0.0.1:{port}"
    (root / "README.md").write_text(_readme(setup, listed, url, ledger_id))
    (root / "devnet.env").write_text(
        f"MERCAT_NODE={url}\nMERCAT_LEDGER_URL=sqlite:///ledger.db\nMERCAT_LEDGER_ID={ledger_id}\n"
    )
    (root / "setup.json").write_text(json.dumps(vars(setup), indent=2, sort_keys=True) + "\n")
    return {"directory": str(root), "node": url, "ledger": ledger_id,
            "commands": {c.name: "mercat " + shlex.join(c.args) for c in listed}}  # fmt: skip


def _readme(setup: DevnetSetup, listed: list[Command], url: str, ledger_id: str) -> str:
    lines = "\n".join("mercat " + shlex.join(c.args) for c in listed)
    counts = (f"oracles: {setup.oracles} (quorum {setup.quorum}), funded providers: "
              f"{setup.providers}, funded requesters: {setup.requesters}")  # fmt: skip
    submit = (f"mercat request submit --node {url} --key keys/requester1.key "
              "--workload train-logreg:steps=100 --input data.npz --max-price 2 "
              "--encrypt --encrypt-output --wait --out model.npz")  # fmt: skip
    return f"""# A mercat devnet started by hand

Created by `mercat devnet init`: a ledger (id {ledger_id}) with the operator,
{counts}. Run each command below from this directory, each in its own terminal
(or with `&`), the node first; stop any of them with Ctrl-C and start it again: agents and
oracles keep no state of their own, and the node resumes an unfinished round. The node's
round loop runs {setup.rounds} rounds (`--until-round`; leave it out to run on).

```console
{lines}
```

A request of your own, its inputs encrypted and their key sealed to the provider that
runs it:

```console
mercat request dataset --out data.npz --rows 400 --features 8
{submit}
```

Keys: `keys/` holds every participant's Ed25519 seed (0600); `keys/sample.secret` is the
oracles' shared sampling secret. The node's dashboard: {url}/dashboard.
"""
