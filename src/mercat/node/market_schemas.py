"""The shapes of the live market's endpoints (`/market/...`) for the node's OpenAPI document:
each endpoint declares its answer's model, so the document says what an agent, an oracle,
a requester or the dashboard gets, and a test (schemathesis) holds the node to it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskAsset(BaseModel):
    asset: str
    owner: str = Field(description="the owner's public key")
    kind: str = Field(description="server (runs the task), app, dataset or model")
    payout: int = Field(description="base units the owner receives if the task pays")


class TaskClaim(BaseModel):
    asset: str = Field(description="the server that ran this replica")
    owner: str
    success: bool
    output: str | None = Field(description="the output's CID")
    run_ms: int = Field(description="the run's time, as the provider measured it")
    error: str
    received_ms: int = Field(description="when the node received the claim (ms since 1970)")


class TaskVerdict(BaseModel):
    success: bool
    sla_met: bool
    paid: bool
    latency_ms: int | None
    output: str | None = Field(description="the CID the oracles agreed on (null: none)")


class TaskView(BaseModel):
    round: int
    task: str
    request: str
    requester: str | None = Field(description="the request owner's public key")
    status: str = Field(description="open or settled")
    workload: str
    inputs: list[str] = Field(description="the inputs' CIDs")
    deadline_ms: int = Field(description="the SLA: the latency the task must stay within")
    charge: int
    opened_ms: int = Field(description="when the node opened the task (ms since 1970)")
    assets: list[TaskAsset]
    claims: list[TaskClaim]
    reported_by: list[str] = Field(description="oracles whose reports the node holds")
    sealed: list[str] = Field(
        description="what the request keeps encrypted: inputs, output (mercat.node.sealing)"
    )
    granted: list[str] = Field(description="servers whose keys the requester has sealed to them")
    verdict: TaskVerdict | None
    note: str = Field(description="why it failed or was late, as far as the node can tell")


class TaskList(BaseModel):
    now_ms: int = Field(description="the node's clock: SLA cutoffs are measured by it")
    tasks: list[TaskView]


class TaskOutputs(BaseModel):
    round: int
    task: str
    status: str
    outputs: list[TaskClaim] = Field(description="each replica's claimed output")
    agreed: str | None = Field(description="the output the oracles' quorum attested, if any")


class Accepted(BaseModel):
    status: str = Field(description="claims: accepted; reports: pending or late")
    received_ms: int


class LoopStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    state: str
    next_round: int
    until_round: int | None
    mechanism: str
    round_seconds: float
    grace_ms: int
    no_deadline_ms: int
    attest_seconds: float
    admission: bool
    error: str | None = Field(description="the last round failure's reason (null: none yet)")
    failures: int = Field(0, description="times in a row the next round has failed")


class MarketInfo(BaseModel):
    ledger_id: str
    round: int = Field(description="the ledger's round")
    unit: int
    quorum: int
    oracles: list[str]
    now_ms: int
    grace_ms: int = Field(description="claims count until deadline + grace (mercat.node.sla)")
    no_deadline_ms: int
    loop: LoopStatus | None = Field(description="the node's round loop (null: it runs none)")


class RoundRecord(BaseModel):
    """A round's numbers (amounts in base units, prices in tokens per unit of demand)."""

    model_config = ConfigDict(extra="allow")

    round: int
    phase: str = Field(description="opening, executing, attesting, closed, empty, rolled_back")
    started_ms: int | None
    finished_ms: int | None
    requests: int | None = None
    servers: int | None = None
    tasks: int | None = None
    paid: int | None = None
    failed: int | None = None
    unsettled: int | None = None
    welfare: float | None = None
    mechanism: str | None = None
    prices: dict[str, float] | None = None
    mean_price: float | None = None
    charged: int | None = None
    payouts: int | None = None
    margin: int | None = None
    refunded: int | None = None
    rewards: int | None = None
    penalties: int | None = None
    pool: int | None = None
    removed: list[str] | None = None
    timings: dict[str, float] | None = None


class Provider(BaseModel):
    asset: str
    owner: str
    status: str = Field(description="active, removed, retired or replaced")
    stake: int
    kind: str | None
    offer: dict[str, Any] | None
    settled: int = Field(description="tasks of this asset settled")
    failed: int = Field(description="... of which did not pay (failed or late)")
    late: int = Field(description="... of which succeeded out of their SLA")
    failure_rate: float | None = Field(description="failed / settled (null: none settled)")


class RequestView(BaseModel):
    request: str
    owner: str
    status: str
    round: int | None
    served: int
    open_tasks: int
    escrow: int = Field(description="what the request holds in escrow now (base units)")
    terms: dict[str, Any] | None
    tasks: list[TaskView]


class OrderBook(BaseModel):
    round: int
    requests: list[dict[str, Any]] = Field(description="open requests with their terms")
    offers: list[dict[str, Any]] = Field(description="active assets' offers and stakes")


class Summary(BaseModel):
    model_config = ConfigDict(extra="allow")

    round: int
    rounds: int = Field(description="rounds recorded on the board")
    tasks: dict[str, int]
    sla_compliance: float | None = Field(description="paid / settled tasks")
    pool: int
    supply: int
    unit: int
    assets: dict[str, int] = Field(description="assets by status")
    flows: dict[str, int] = Field(description="token flows over every round (base units)")
    reports: dict[str, int]
    loop: LoopStatus | None


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    at_ms: int
    kind: str


class ClaimBody(BaseModel):
    """`SignedClaim.to_wire()` (mercat.node.claims)."""

    ledger: str
    round: int
    task: str
    asset: str
    success: bool
    output: str | None
    run_ms: int
    error: str
    owner: str
    signature: str


class ReportBody(BaseModel):
    """`SignedReport.to_wire()` (mercat.oracle.report)."""

    oracle: str
    round: int
    task: str
    success: bool
    sla_met: bool
    latency_ms: int
    digest: str | None
    ledger: str
    signature: str


class GrantBody(BaseModel):
    """`SignedGrant.to_wire()` (mercat.node.sealing): a sealed request's keys, each sealed to
    the owner of one server of one task (80 bytes as 160 hex digits, or null)."""

    ledger: str
    round: int
    task: str
    asset: str
    recipient: str
    inputs_key: str | None
    output_key: str | None
    requester: str
    signature: str
