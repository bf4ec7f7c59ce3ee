"""`mercat request`: submit a workload to a market, watch it, fetch its result
(docs/devnet.md); `dataset` writes sample inputs, `load` is the devnet's requester."""

from __future__ import annotations

from pathlib import Path

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import key_option, node_option, seed_option
from mercat.cli._output import console, print_json, print_mapping

app = MercatTyper(help="Submit workloads to a market node, watch them, fetch their results.")

NODE = node_option()
KEY = key_option(..., help="The requester's key file, or - to read it from stdin.")


OWN_KEY = typer.Option(
    None, "--key", help="The requester's key file, or - for stdin (for a sealed request)."
)


def _own_or_any(key: Path | None):  # type: ignore[no-untyped-def]
    """The requester's key, or (for requests in the clear, which anyone may watch) a fresh
    one that signs nothing."""
    from mercat.cli._keys import read_key
    from mercat.identity import Keypair

    return Keypair.generate() if key is None else read_key(key)


def _write(path: Path, data: bytes) -> None:
    from mercat.errors import InvalidParameterError

    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidParameterError(f"cannot write {path}: {exc.strerror}") from None


def _outcome_dict(outcome) -> dict:  # type: ignore[no-untyped-def]
    return {
        "request": outcome.request, "status": outcome.status, "paid": outcome.paid,
        "output": outcome.output,
        "tasks": [{"round": t["round"], "task": t["task"], "status": t["status"],
                   "assets": [a["asset"] for a in t["assets"]], "verdict": t["verdict"]}
                  for t in outcome.tasks],
    }  # fmt: skip


@app.command("dataset")
def dataset(
    out: Path = typer.Option(..., "--out", "-o", help="The archive to write (.npz)."),
    rows: int = typer.Option(400, min=2, max=1_000_000, help="Examples in the archive."),
    features: int = typer.Option(8, min=1, max=4096, help="Features per example."),
    clients: int = typer.Option(0, min=0, help="Add a client column (federated learning)."),
    seed: int = seed_option(1, help="Seed of the synthetic data."),
    model: bool = typer.Option(False, help="Write a starting model of zeros instead."),
) -> None:
    """Write a synthetic dataset (binary classification) or a starting model."""
    from mercat.workloads import datasets

    data = (datasets.initial_model(features) if model
            else datasets.classification(rows, features, seed, clients))  # fmt: skip
    _write(out, data)
    console.print(f"wrote {out} ({len(data)} bytes)")


@app.command("submit")
def submit(
    node: str = NODE,
    key: Path = KEY,
    workload: str = typer.Option(..., help="NAME[:KEY=VALUE,...], e.g. train-logreg:steps=200."),
    input: list[str] = typer.Option(
        ..., "--input", help="An input archive (a file) or the CID of one (repeatable)."
    ),
    max_price: float = typer.Option(..., min=0.0, help="The most it pays (tokens), escrowed."),
    demand: list[str] = typer.Option(["cpu=1"], "--demand", help="RESOURCE=UNITS per replica."),
    replicas: int = typer.Option(1, min=1, max=16, help="Replicas to run (each is paid)."),
    deadline_ms: int = typer.Option(30_000, min=0, help="The SLA: the latency it must meet."),
    expires_in: int = typer.Option(3, min=0, help="Rounds after the current one it may wait."),
    asset: list[str] = typer.Option([], "--asset", help="An asset (id or CID) to bind."),
    request_id: str | None = typer.Option(None, "--id", help="The request's id (default: new)."),
    encrypt: bool = typer.Option(
        False,
        "--encrypt",
        help="Upload the input files encrypted; their key is sealed to each provider the "
        "request's tasks are assigned to, when they open (while --wait or `watch --key` runs).",
    ),
    encrypt_output: bool = typer.Option(
        False, "--encrypt-output", help="Have the output stored encrypted to this requester."
    ),
    wait: bool = typer.Option(False, help="Wait until it is settled (or expired)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="With --wait: write the result."),
    timeout: float = typer.Option(300.0, min=1.0, help="With --wait: give up after this."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Upload the inputs, post the request (signed, its price escrowed), optionally wait."""
    from mercat.cli._keys import read_key
    from mercat.cli._service import base_units, resources
    from mercat.node.client import NodeClient
    from mercat.node.requester import Requester

    client = NodeClient(node)
    requester = Requester(client, read_key(key))
    unit = int(client.ledger_info()["unit"])
    inputs: list[bytes | str] = []
    for item in input:
        path = Path(item)
        inputs.append(path.read_bytes() if path.is_file() else item)
    requester.ensure_account()
    name = requester.submit(
        workload, inputs, max_price=base_units(max_price, unit, "--max-price"),
        demand=resources(demand, "--demand"), replicas=replicas, deadline_ms=deadline_ms,
        expires_in=expires_in, assets=asset, request=request_id, seal_inputs=encrypt,
        seal_output=encrypt_output,
    )  # fmt: skip
    result: dict = {"request": name}
    if (encrypt or encrypt_output) and not wait:
        result["keys"] = f"sealed to its providers while `mercat request watch {name} --key` runs"
    if wait:
        outcome = requester.watch(name, timeout)
        result = _outcome_dict(outcome)
        if out is not None and outcome.output is not None:
            _write(out, requester.result(outcome))
            result["written"] = str(out)
    if as_json:
        print_json(result)
    else:
        print_mapping(f"request {name}", {k: v for k, v in result.items() if k != "tasks"})


@app.command("watch")
def watch(
    request: str = typer.Argument(..., help="The request's id."),
    node: str = NODE,
    key: Path | None = OWN_KEY,
    timeout: float = typer.Option(300.0, min=0.0, help="Give up after this many seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Wait until a request is settled (or expired) and say how it went; with the
    requester's --key, hand a sealed request's keys to its providers as its tasks open."""
    from mercat.node.client import NodeClient
    from mercat.node.requester import Requester

    outcome = Requester(NodeClient(node), _own_or_any(key)).watch(request, timeout)
    data = _outcome_dict(outcome)
    if as_json:
        print_json(data)
    else:
        print_mapping(f"request {request}", {k: v for k, v in data.items() if k != "tasks"})


@app.command("fetch")
def fetch(
    request: str = typer.Argument(..., help="The request's id."),
    node: str = NODE,
    key: Path | None = OWN_KEY,
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the result."),
) -> None:
    """Write the output the oracles attested for a settled request (checked by its CID; a
    sealed output decrypted with the requester's --key)."""
    from mercat.errors import InvalidParameterError
    from mercat.node.client import NodeClient
    from mercat.node.requester import Requester

    requester = Requester(NodeClient(node), _own_or_any(key))
    outcome = requester.outcome(request)
    if "output" in outcome.sealed and key is None:
        raise InvalidParameterError(
            f"request {request}'s output is sealed to its requester: give the requester's --key"
        )
    _write(out, requester.result(outcome))
    console.print(f"wrote {out}: {outcome.output}")


@app.command("withdraw")
def withdraw(
    request: str = typer.Argument(..., help="The request's id."),
    node: str = NODE,
    key: Path = KEY,
) -> None:
    """Withdraw an open request: its escrow comes back."""
    from mercat.cli._keys import read_key
    from mercat.node.client import NodeClient
    from mercat.node.requester import Requester

    refunded = Requester(NodeClient(node), read_key(key)).withdraw(request)
    console.print(f"withdrew {request}: {refunded} base units back")


@app.command("load")
def load(
    node: str = NODE,
    key: Path = KEY,
    per_round: int = typer.Option(2, min=1, max=1000, help="Requests posted per round."),
    until_round: int | None = typer.Option(None, min=1, help="Post nothing from this round."),
    deadline_ms: int = typer.Option(20_000, min=1, help="The requests' SLA deadline."),
    max_replicas: int = typer.Option(
        16, min=1, max=16, help="Replicas per request at most (1 for seed 003's auctions)."
    ),
    seed: int = seed_option(0, help="Seed of the requests' sizes and prices."),
    sealed_share: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of its training and preprocessing requests sealed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what it did as JSON at exit."),
) -> None:
    """A requester that posts a mix of workloads every round (training, inference with its
    own or a provider's model, preprocessing, DP federated rounds), verifies every result,
    and withdraws what is still open when stopped (SIGTERM or Ctrl-C)."""
    from mercat.cli._keys import read_key
    from mercat.cli._service import ready, run_until_stopped
    from mercat.node.client import NodeClient
    from mercat.node.requester import Requester, RequesterLoad

    own = read_key(key)
    generator = RequesterLoad(
        Requester(NodeClient(node), own),
        per_round=per_round,
        until_round=until_round,
        seed=seed,
        deadline_ms=deadline_ms,
        max_replicas=max_replicas,
        sealed_share=sealed_share,
    )
    generator.prepare()
    ready(f"READY {own.public}")
    stats = run_until_stopped(generator.run)
    if as_json:
        print_json({"requester": own.public, **vars(stats)})
