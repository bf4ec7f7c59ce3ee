"""The distributed auctioneer's commands (seed 003).

- `mercat provider --id J --peers peers.toml [--k K]`: run one provider (a long-lived process);
- `mercat bid --peers peers.toml [--round R] --bid ID:buy:PRICE:QTY ...`: send bids to
  every provider in the next round that takes bids (or round R) and print its outcome: ok,
  missed (the round ran without these bids) or ⊥;
- `mercat auctioneer init`: write a peers file and one key per provider;
- `mercat auctioneer bidders`: refresh a peers file's bidder registry from a ledger;
- `mercat auctioneer local`: start providers as processes on loopback, run rounds, report;
- `mercat auctioneer results`: what providers output, from their result logs;
- `mercat auctioneer trials`: deviation trials in process, counted.

Heavy imports (numpy, pyzmq, the solvers) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import (
    fixed_mechanism_option,
    json_option,
    ledger_option,
    out_option,
    seed_option,
)
from mercat.cli._output import console, err_console, print_json, print_table

app = MercatTyper()

AUCTIONS = ("double-auction", "vcg")
"""The auctions of seed 003, as the mechanism registry names them."""
TRIAL_AUCTIONS = (*AUCTIONS, "double-auction-coin")
"""The trials' auctions: seed 003's two and the double auction with coin tie-breaks."""
PROTOCOL_NAMES = {"double-auction": "double", "vcg": "vcg", "double-auction-coin": "double-coin"}
"""The protocol's (and the peers file's) name of each auction."""
SHOWN_NAMES = {protocol: name for name, protocol in PROTOCOL_NAMES.items()}

TieBreak = Literal["index", "coin"]
# `auctioneer local`'s table: column -> milestone of mercat.auctioneer.round.PHASES
MILESTONE_COLUMNS = (("committed", "commit"), ("revealed", "reveal"), ("allocated", "outcome"))
group = MercatTyper(
    help="The distributed auctioneer: peers files, local clusters, deviation trials."
)
app.add_typer(group, name="auctioneer")


@app.command()
def provider(
    id: str = typer.Option(..., "--id", help="This provider's id in the peers file."),
    peers: Path = typer.Option(..., "--peers", help="Peers file (TOML)."),
    k: int | None = typer.Option(None, "--k", help="Coalition size to resist (m > 2k)."),
    key: Path | None = typer.Option(
        None,
        "--key",
        help="Key file (64 hex digits), or - to read them from stdin; default: ID.key beside "
        "the peers file.",
    ),
    bind: str | None = typer.Option(None, "--bind", help="Listen here instead (tcp://...)."),
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = typer.Option(
        "WARNING", "--log-level", help="How much the provider logs."
    ),
    results: str | None = typer.Option(
        None,
        "--results",
        help="Result log URL (default: sqlite:///<peers folder>/ID.results.db; 'none': off).",
    ),
    results_keep: int | None = typer.Option(
        None, "--results-keep", min=1, help="Keep only this many rounds in the log (default: all)."
    ),
) -> None:
    """Run one provider of the distributed auctioneer until SIGTERM or Ctrl-C."""
    from mercat.auctioneer.process import run_provider

    run_provider(
        peers,
        id,
        key_path=key,
        k=k,
        bind=bind,
        log_level=log_level,
        results=results,
        results_keep=results_keep,
    )


@app.command(renamed={"--providers": "--peers"})
def bid(
    providers: Path = typer.Option(..., "--peers", help="Peers file (TOML)."),
    bids: list[str] = typer.Option(
        ..., "--bid", help="ID:buy|sell:PRICE:QUANTITY; repeat for several bids."
    ),
    round_id: int | None = typer.Option(
        None,
        "--round",
        min=0,
        help="The round to bid in. Default: the round taking bids now if half its window is "
        "left, else the next one (required where sealing clients open the rounds).",
    ),
    key: Path | None = typer.Option(
        None, "--key", help="Client key file (64 hex digits); default: a fresh key."
    ),
    timeout: float = typer.Option(
        30.0,
        "--timeout",
        min=0.1,
        help="Seconds to wait for the providers' results (after the round's bidding closes).",
    ),
    as_json: bool = json_option(),
) -> None:
    """Send bids to every provider of a round and print the round's outcome: ok, missed (the
    round ran without these bids; the providers say why) or ⊥."""
    import asyncio
    import time

    from mercat.auctioneer.bids import Bid, BidVector
    from mercat.auctioneer.client import BidderClient, ClientOutcome
    from mercat.auctioneer.config import load_peers
    from mercat.auctioneer.opening import Schedule, timestamp
    from mercat.auctioneer.process import load_key
    from mercat.errors import InvalidParameterError
    from mercat.identity import Keypair

    peers_file = load_peers(providers)
    params = peers_file.params
    vector = BidVector.from_bids(Bid.parse(text) for text in bids)
    client_key = load_key(key) if key is not None else Keypair.generate()
    wait, wait_results = 0.0, timeout
    if params.opening == "schedule":
        schedule = Schedule.of(params)
        now = time.time()
        if round_id is None:  # the round taking bids now, if half its window is left
            round_id = schedule.round_to_bid(now, margin=params.bid_window / 2)
        opens = schedule.opens(round_id)
        wait = max(0.0, opens - now)
        if wait > params.round_seconds:
            raise InvalidParameterError(
                f"round {round_id} opens for bids at {timestamp(opens)}, in {wait:.0f} s: bid "
                "in the round taking bids now or the next one (leave out --round for it)"
            )
        # Results come once bidding closes: the wait for them starts there.
        wait_results += max(0.0, schedule.closes(round_id) - max(now, opens))
    elif round_id is None:
        raise InvalidParameterError(
            "this auction's rounds are opened by its sealing clients (opening = 'sealed'): "
            "give --round"
        )
    if wait > 0:
        err_console.print(f"round {round_id} opens for bids in {wait:.1f} s; waiting")

    async def run() -> ClientOutcome:
        client = BidderClient(peers_file, client_key)
        try:
            await asyncio.sleep(wait)
            return await client.run_round(round_id, vector, wait_results)
        finally:
            await client.aclose()

    result = asyncio.run(run())
    mine = set(vector.ids)
    report: dict[str, object] = {
        "round": round_id,
        "outcome": result.status,
        "reason": result.reason,
        "seconds": result.seconds,
        "providers_answered": sorted(result.results),
        "missed_bids": list(result.missing),
        "not_taken_by": result.refusals,
    }
    outcome = result.outcome
    if outcome is not None:
        payments = outcome.payments()
        report["your_bids"] = {
            b: {
                "allocated": float(outcome.amount[outcome.buyer == i].sum())
                + float(outcome.amount[outcome.seller == i].sum()),
                "pays": payments.get(b, 0.0),
            }
            for i, b in enumerate(outcome.bidders)
            if b in mine
        }
        report["facts"] = outcome.facts
    if as_json:
        print_json(report)
        return
    why = f": {result.reason}" if result.status == "missed" else f" {result.reason}"
    console.print(f"round {round_id}: {result.status}{why}".rstrip(), soft_wrap=True)
    for bidder, row in dict(report.get("your_bids", {})).items():  # type: ignore[call-overload]
        console.print(f"  {bidder}: allocated {row['allocated']:.6g}, pays {row['pays']:.6g}")


@group.command("init", renamed={"--bidders-from-ledger": "--ledger"})
def init(
    providers: int = typer.Option(3, "--providers", min=1, help="Number of providers m."),
    k: int = typer.Option(1, "--k", min=0, help="Coalition size to resist (m > 2k)."),
    mechanism: str = fixed_mechanism_option("double-auction", AUCTIONS, "Auction"),
    tie_break: TieBreak = typer.Option(
        "index", "--tie-break", help="Double auction: equal bids by 'index' or by the 'coin'."
    ),
    out: Path = out_option(Path("auctioneer"), help="Directory to write into."),
    host: str = typer.Option("127.0.0.1", "--host", help="Host of every provider."),
    base_port: int = typer.Option(
        5600, "--base-port", min=1, max=65000, help="Provider i listens on base+i."
    ),
    ledger: str | None = ledger_option(
        help="A ledger's store URL: bind its request ids and active asset ids to their "
        "owners' keys (the peers file's bidders table).",
    ),
    round_seconds: float = typer.Option(
        10.0, "--round-seconds", min=0.01, help="A round opens for bids every this many seconds."
    ),
    bid_window: float = typer.Option(
        2.0, "--bid-window", min=0.01, help="Seconds each round takes bids."
    ),
) -> None:
    """Write OUT/peers.toml and OUT/pI.key for `mercat provider` and `mercat bid`. Rounds
    open by a schedule that starts now: round r takes bids from r·round-seconds on."""
    import math
    import time

    from mercat.auctioneer.bidder_registry import bidders_from_ledger, with_bidders
    from mercat.auctioneer.config import Peer, PeersFile, ProtocolParams, dump_peers
    from mercat.identity import Keypair

    ids = tuple(f"p{i + 1}" for i in range(providers))
    params = ProtocolParams(
        providers=ids,
        k=k,
        mechanism=PROTOCOL_NAMES[mechanism],
        tie_break=tie_break,
        schedule_start=float(math.floor(time.time())),
        round_seconds=round_seconds,
        bid_window=bid_window,
    )
    keys = {p: Keypair.generate() for p in ids}
    peers = PeersFile(
        params,
        tuple(
            Peer(p, f"tcp://{host}:{base_port + i + 1}", keys[p].public) for i, p in enumerate(ids)
        ),
    )
    if ledger is not None:  # read before anything is written: a bad ledger leaves no files
        peers = with_bidders(peers, bidders_from_ledger(ledger))
    out.mkdir(parents=True, exist_ok=True)
    (out / "peers.toml").write_text(dump_peers(peers), encoding="utf-8")
    for p, key in keys.items():
        path = out / f"{p}.key"
        path.write_text(key.seed.hex(), encoding="utf-8")
        path.chmod(0o600)
    registry = f", {len(peers.bidders)} registered bidders" if peers.bidders else ""
    err_console.print(f"wrote {out / 'peers.toml'} and {len(ids)} key files{registry}")


@group.command("bidders")
def bidders(
    peers: Path = typer.Option(..., "--peers", help="Peers file (TOML) to update."),
    ledger: str = ledger_option(..., help="The ledger's store URL (sqlite:///... etc.)."),
    as_json: bool = json_option(),
) -> None:
    """Replace the peers file's [bidders] table by the ledger's requests and active assets,
    each bound to its owner's key (restart the providers to apply it)."""
    from mercat.auctioneer.bidder_registry import bidders_from_ledger, with_bidders
    from mercat.auctioneer.config import dump_peers, load_peers
    from mercat.files import write_text_atomic

    current = load_peers(peers)
    updated = with_bidders(current, bidders_from_ledger(ledger))
    write_text_atomic(peers, dump_peers(updated))  # a crash leaves the old file or the new
    before, after = dict(current.bidders), dict(updated.bidders)
    report = {
        "peers": str(peers),
        "bidders": len(after),
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "rebound": sorted(b for b in set(after) & set(before) if after[b] != before[b]),
    }
    if as_json:
        print_json(report)
        return
    console.print(
        f"{peers}: {report['bidders']} registered bidders ({len(report['added'])} added, "
        f"{len(report['removed'])} removed, {len(report['rebound'])} rebound); restart the "
        "providers to apply it"
    )


@group.command("local")
def local(
    providers: int = typer.Option(8, "--providers", min=1, help="Providers in the auction."),
    k: int = typer.Option(1, "--k", min=0, help="Coalition size to resist (m > 2k)."),
    users: int = typer.Option(1000, "--users", min=1, help="Users (bidders)."),
    mechanism: str = fixed_mechanism_option("double-auction", AUCTIONS, "Auction"),
    executing: int | None = typer.Option(
        None, "--executing", min=1, help="Providers that run the protocol (default: all)."
    ),
    groups: int = typer.Option(0, "--groups", min=0, help="VCG payment groups (0: m//(k+1))."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Rounds to run."),
    seed: int = seed_option(0, help="Seed of the generated markets."),
    crash_round: int | None = typer.Option(
        None, "--crash-round", min=0, help="Kill the last provider before this round."
    ),
    vcg_gap: float | None = typer.Option(
        None,
        "--vcg-gap",
        min=0.0,
        max=0.5,
        help="VCG: 0 proves optima; e.g. 0.01 accepts a certified 1% gap. Default: 0 up to "
        "125 users and from 1000 to 2000, 0.01 elsewhere (where a proof can take minutes).",
    ),
    tie_break: TieBreak = typer.Option(
        "index", "--tie-break", help="Double auction: equal bids by 'index' or by the 'coin'."
    ),
    phase_timeout: float = typer.Option(
        5.0, "--phase-timeout", min=0.1, help="Seconds a provider waits for a phase's messages."
    ),
    as_json: bool = json_option(),
) -> None:
    """Start the providers as processes on loopback, run rounds, report outcomes and times."""
    import statistics

    from mercat.auctioneer.local import default_vcg_gap, run_local

    m = executing or providers
    if vcg_gap is None:
        vcg_gap = default_vcg_gap(users) if mechanism == "vcg" else 0.0
    run = run_local(
        sellers=providers,
        executing=m,
        k=k,
        users=users,
        mechanism=PROTOCOL_NAMES[mechanism],
        rounds=rounds,
        groups=groups,
        seed=seed,
        crash_round=crash_round,
        vcg_gap=vcg_gap,
        tie_break=tie_break,
        phase_timeout=phase_timeout,
        on_round=None
        if as_json
        else lambda r: err_console.print(
            f"round {r.round}: {'ok' if r.ok else '⊥'} in {r.seconds * 1000:.1f} ms"
            + (f" ({r.reason})" if r.reason else "")
        ),
    )
    rows = run.rounds
    ok_times = [r.seconds for r in rows if r.ok]
    summary = {
        "mechanism": mechanism,
        "auction_providers": providers,
        "executing": m,
        "k": k,
        "users": users,
        "vcg_gap": vcg_gap if mechanism == "vcg" else None,
        "rounds": len(rows),
        "ok_rounds": sum(r.ok for r in rows),
        "all_match_centralized": all(r.matches_centralized for r in rows if r.ok),
        "median_seconds": statistics.median(ok_times) if ok_times else None,
        "stopped_by": run.stopped_by,
    }
    # Stopped by SIGINT or SIGTERM: the rounds it finished are reported all the same, then
    # it exits as a process stopped by that signal does (128 + its number).
    stopped = None if run.signal_number is None else typer.Exit(128 + run.signal_number)
    if as_json:
        print_json({"summary": summary, "rounds": [r.__dict__ for r in rows]})
        if stopped is not None:
            raise stopped
        return
    print_table(
        f"{mechanism}: {users} users, {providers} providers in the auction, {m} executing, k={k}"
        + (f", certified gap {vcg_gap:g}" if mechanism == "vcg" and vcg_gap else ""),
        [
            {
                "round": r.round,
                "outcome": "ok" if r.ok else "⊥",
                "ms": round(r.seconds * 1000, 1),
                "= centralized": "-" if r.matches_centralized is None else r.matches_centralized,
                "winners": r.winners,
                # the slowest provider's milestones (ms): where the round's time went
                **{
                    column: round(1000 * r.phases[phase], 1) if phase in r.phases else "-"
                    for column, phase in MILESTONE_COLUMNS
                },
                "note": r.note or r.reason,
            }
            for r in rows
        ],
    )
    console.print(
        f"{summary['ok_rounds']}/{summary['rounds']} rounds delivered; outputs equal the "
        f"centralized mechanism's: {summary['all_match_centralized']}"
    )
    if stopped is not None:
        err_console.print(
            f"stopped by {run.stopped_by} after {len(rows)} of {rounds} rounds; the providers "
            "are stopped and their temporary files removed"
        )
        raise stopped


@group.command("results", renamed={"--log": "--results"})
def results(
    log: str = typer.Option(
        ...,
        "--results",
        help="A provider's result log URL, e.g. sqlite:///auct/p1.results.db (see `provider`).",
    ),
    provider_id: str | None = typer.Option(None, "--provider", help="Only this provider."),
    round_id: int | None = typer.Option(None, "--round", min=0, help="Only this round."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many rows, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with each outcome)."),
) -> None:
    """What providers output for their finished rounds, from their result log."""
    from mercat.auctioneer.result_log import ResultLog

    with ResultLog(log, create=False) as store:
        rows = store.rounds(provider_id, round_id, limit)
    entries = []
    for row in rows:
        outcome = row.result().outcome
        entry: dict[str, object] = {
            "provider": row.provider,
            "round": row.round,
            "outcome": "ok" if row.ok else "⊥",
            "reason": row.reason,
            "seconds": row.seconds,
            "bidders": len(outcome.bidders) if outcome is not None else 0,
            "trades": len(outcome.buyer) if outcome is not None else 0,
            "digest": outcome.digest().hex()[:16] if outcome is not None else "",
        }
        if as_json:
            entry["phases_ms"] = {name: 1000 * t for name, t in row.phases}
            entry["coin"] = None if row.coin is None else f"{row.coin:064x}"
            entry["facts"] = outcome.facts if outcome is not None else {}
            entry["payments"] = outcome.payments() if outcome is not None else {}
        entries.append(entry)
    if as_json:
        print_json(entries)
    else:
        print_table(f"result log {log}", entries)


@group.command("trials")
def trials(
    trials_per_case: int = typer.Option(
        10, "--trials", min=1, help="Trials per (mechanism, m, k, deviation)."
    ),
    mechanism: list[str] = fixed_mechanism_option(
        list(TRIAL_AUCTIONS),
        TRIAL_AUCTIONS,
        "Auctions to try, repeatable (double-auction-coin breaks ties by the common coin)",
    ),
    seed: int = seed_option(0, help="Seed of the trials."),
    as_json: bool = json_option(),
) -> None:
    """Deviation trials (in process): coalitions of up to k providers, m in {3, 5, 8}.

    Counts, per deviation, the trials whose honest providers all output the honest outcome,
    all output ⊥, split between the two, or output anything else (manipulated)."""
    from mercat.auctioneer.deviations import CATALOGUE
    from mercat.auctioneer.trials import CONFIGS, run_coalition_trials
    from mercat.progress import progress_bar

    total = trials_per_case * len(mechanism) * len(CONFIGS) * (len(CATALOGUE) + 1)
    with progress_bar("deviation trials", total, not as_json) as advance:
        tallies = run_coalition_trials(
            trials_per_case,
            mechanisms=[PROTOCOL_NAMES[m] for m in mechanism],
            seed=seed,
            progress=advance,
        )
    rows = [
        {"mechanism": SHOWN_NAMES[mech], "m": m, "k": k, "deviation": dev, **tally.as_dict()}
        for (mech, m, k, dev), tally in tallies.items()
    ]
    totals = {
        kind: sum(r[kind] for r in rows)
        for kind in ("trials", "honest", "bottom", "mixed", "manipulated")
    }
    if as_json:
        print_json({"totals": totals, "cases": rows})
        return
    by_deviation: dict[str, dict[str, int]] = {}
    for r in rows:
        agg = by_deviation.setdefault(str(r["deviation"]), dict.fromkeys(totals, 0))
        for kind in totals:
            agg[kind] += int(r[kind])
    print_table("deviation trials", [{"deviation": d, **c} for d, c in by_deviation.items()])
    console.print(
        f"{totals['trials']} trials: {totals['honest']} honest outcome, {totals['bottom']} ⊥, "
        f"{totals['mixed']} split honest/⊥, {totals['manipulated']} manipulated"
    )
