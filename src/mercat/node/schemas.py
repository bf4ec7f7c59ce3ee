"""The shapes of the node's answers and request bodies, for its OpenAPI document (`/docs`,
`/openapi.json`): each endpoint declares its answer's model, so the document says what a
client gets, and FastAPI checks every answer against it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mercat.privacy.accountant import (
    MAX_EPSILON,
    MAX_NOISE_MULTIPLIER,
    MAX_ROUNDS,
    MIN_NOISE_MULTIPLIER,
    Accountant,
)

# jsonable writes infinities as strings and NaN as null (JSON has neither).
Real = float | Literal["inf", "-inf"] | None


class Health(BaseModel):
    version: str
    ledger: bool = Field(description="whether this node serves a ledger")
    store: bool = Field(description="whether this node serves a content store")


class Receipt(BaseModel):
    entry_id: int | None = Field(description="the journal entry the message applied or matched")
    op: str
    applied: bool = Field(description="false for a settlement of a task already settled")
    result: dict[str, Any]


class Account(BaseModel):
    account: str = Field(description="the public key, 64 hex digits")
    role: str
    available: int = Field(description="spendable balance in base units")


class Balance(BaseModel):
    book: str
    balance: int = Field(description="base units")


class Asset(BaseModel):
    id: str
    owner: str
    status: str
    stake: int


class JournalEntry(BaseModel):
    id: int
    op: str
    signer: str
    nonce: int
    postings: list[tuple[str, int]] = Field(description="(book, amount) pairs summing to 0")


class Audit(BaseModel):
    ok: bool
    entries: int
    postings: int
    books: int
    supply: int
    settled_tasks: int
    signatures_checked: int
    problems: list[str]


class Stored(BaseModel):
    cid: str
    bytes: int


class ContentStat(BaseModel):
    cid: str
    codec: str
    size: int = Field(description="bytes of content")
    blocks: int = Field(description="raw blocks the content is made of")


class ClearingChecks(BaseModel):
    valid: bool
    individually_rational: bool
    budget_balanced: bool
    non_extractive: bool
    validity_reasons: list[str]
    ir_violations: list[str]


class Certificate(BaseModel):
    bound: Real
    gap: Real
    proven: bool


class ClearingAnswer(BaseModel):
    """What `mercat clear --json` prints."""

    mechanism: str
    market: str
    allocation: dict[str, Any]
    payments: dict[str, Real]
    rewards: dict[str, Real]
    welfare: Real
    margin: Real
    surplus: Real
    checks: ClearingChecks
    certificate: Certificate
    diagnostics: dict[str, Any]


class PrivacyVerdict(BaseModel):
    epsilon_actual: Real
    epsilon_budget: Real
    delta: Real
    accountant: str
    compliant: bool


# --- request bodies (read by the endpoints themselves, within the guard's body limits) -----


class SignedMessageBody(BaseModel):
    """`SignedMessage.to_json()`: the canonical payload and its Ed25519 signature."""

    payload: str = Field(description="the canonical JSON envelope, as a string")
    signature: str = Field(description="128 hex digits")


class ClearingRequest(BaseModel):
    market: dict[str, Any] = Field(description="a market (docs/market-format.md)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="mechanism options a client may set (see the docs)"
    )


class PrivacyRequest(BaseModel):
    """Alg. 2's question: does a run of `rounds` Gaussian releases stay within (ε, δ)? The
    bounds are the accountant's own (mercat.privacy.accountant)."""

    model_config = ConfigDict(extra="forbid")

    noise_multiplier: float = Field(ge=MIN_NOISE_MULTIPLIER, le=MAX_NOISE_MULTIPLIER)
    epsilon: float = Field(gt=0, le=MAX_EPSILON)
    delta: float = Field(1e-5, gt=0, lt=1)
    rounds: int = Field(1, ge=1, le=MAX_ROUNDS)
    sampling_rate: float = Field(1.0, gt=0, le=1)
    accountant: Accountant = "auto"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON request body that the endpoint reads itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def bytes_body(description: str) -> dict[str, Any]:
    """`openapi_extra` documenting a raw request body."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    }
