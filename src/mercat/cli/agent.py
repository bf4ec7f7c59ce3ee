"""`mercat agent`: a provider agent process (docs/devnet.md): registers its servers (and a
model, if given) with their stake and signed offers, then runs the tasks the market assigns
them, each in a sandboxed child process, until SIGTERM or Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import key_option, node_option
from mercat.cli._output import print_json

app = MercatTyper()


@app.command("agent")
def agent(
    node: str = node_option(),
    key: Path = key_option(..., help="The owner's key file, or - to read it from stdin."),
    server: list[str] = typer.Option(
        ..., "--server", help="A server asset id to offer and run tasks on (repeatable)."
    ),
    capacity: list[str] = typer.Option(
        ["cpu=2"], "--capacity", help="RESOURCE=UNITS each server offers per round."
    ),
    cost: float = typer.Option(0.1, min=0.0, help="Fixed cost per round used (tokens)."),
    unit_cost: list[str] = typer.Option(
        ["cpu=0.3"], "--unit-cost", help="RESOURCE=TOKENS per unit served."
    ),
    capability: list[str] = typer.Option([], "--capability", help="A capability label."),
    stake: float = typer.Option(4.0, min=0.0, help="Stake per asset (tokens)."),
    model: Path | None = typer.Option(None, help="A model archive to offer as an asset by CID."),
    model_asset: str = typer.Option("model", help="The model asset's id."),
    model_cost: float = typer.Option(0.25, min=0.0, help="The model's price per use (tokens)."),
    failure_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Injected F_a: runs crash."),
    slow_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Injected: claims come late."),
    wrong_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Injected: outputs altered."),
    seed: int = typer.Option(0, min=0, help="Seed of the failure injection."),
    workers: int | None = typer.Option(
        None,
        min=1,
        max=64,
        help="Replicas run at once (default: the capacity promised, at most 4).",
    ),
    poll: float = typer.Option(0.25, min=0.01, max=60.0, help="Seconds between task polls."),
    task_seconds: float = typer.Option(60.0, min=0.1, help="A run's time limit."),
    task_memory: str = typer.Option("1GiB", help="A run's memory (address space) limit."),
    workdir: Path | None = typer.Option(None, help="Where runs get their private directory."),
    wait_for_node: float = typer.Option(
        60.0, min=0.0, max=3600.0, help="Seconds to wait for the node to answer at start."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what it did as JSON at exit."),
) -> None:
    """Run a provider agent until SIGTERM or Ctrl-C."""
    from mercat.cli._keys import read_key
    from mercat.cli._service import base_units, ready, resources, run_until_stopped
    from mercat.cli.storage import parse_size
    from mercat.node.agent import ContentSpec, ProviderAgent, ServerSpec
    from mercat.node.client import NodeClient, wait_until_up
    from mercat.workloads import sandbox

    owner = read_key(key)
    client = NodeClient(node)
    wait_until_up(node, wait_for_node)
    unit = int(client.ledger_info()["unit"])
    servers = [
        ServerSpec(
            asset=name, stake=base_units(stake, unit, "--stake"),
            capacity=resources(capacity, "--capacity"), cost=base_units(cost, unit, "--cost"),
            unit_costs=resources(unit_cost, "--unit-cost", unit),
            capabilities=tuple(capability), failure_rate=failure_rate, slow_rate=slow_rate,
            wrong_rate=wrong_rate,
        )
        for name in server
    ]  # fmt: skip
    content = []
    if model is not None:
        try:
            data = model.read_bytes()
        except OSError as exc:
            from mercat.errors import InvalidParameterError

            raise InvalidParameterError(f"--model {model} cannot be read: {exc.strerror}") from None
        content.append(ContentSpec(model_asset, "model", base_units(stake, unit, "--stake"),
                                   base_units(model_cost, unit, "--model-cost"), data))  # fmt: skip
    limits = sandbox.Limits(seconds=task_seconds, memory_bytes=parse_size(task_memory))
    provider = ProviderAgent(client, owner, servers, content, seed=seed, limits=limits,
                             workers=workers, poll_seconds=poll,
                             workdir=None if workdir is None else str(workdir))  # fmt: skip
    status = provider.register()
    ready(f"READY {owner.public} " + " ".join(f"{a}={s}" for a, s in sorted(status.items())))
    stats = run_until_stopped(provider.run)
    if as_json:
        print_json({"owner": owner.public, "assets": status, **vars(stats)})
