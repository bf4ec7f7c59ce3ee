"""The one exception hierarchy of mercat.

Every error a user can cause (a bad parameter, a malformed market file, an unknown
mechanism name, a rejected ledger operation) is raised as a subclass of `MercatError`
with a message that names the offending value and says what was expected. The command
line turns these into a one-line message and exit code 2, never a traceback.

Rules every module follows:
- validate inputs *before* writing anything, so a rejected call changes nothing;
- raise the most specific class that fits, so callers can catch what they handle;
- classes that describe a bad value also derive from `ValueError` (and unknown names
  from `LookupError`), so generic callers keep working.
"""

from __future__ import annotations


class MercatError(Exception):
    """Base class of every error mercat raises on purpose."""


# --- bad input -------------------------------------------------------------------------


class InvalidParameterError(MercatError, ValueError):
    """A parameter lies outside its domain (a negative stake, a target outside (0, 1), ...)."""


class UnknownNameError(MercatError, LookupError):
    """A name (mechanism, experiment, strategy, ...) that no registry knows."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class PluginError(MercatError, ImportError):
    """A plug-in that cannot be used: its module fails to import, its object is not of the
    kind asked for, or its name clashes with another (src/mercat/plugins.py)."""


class ScenarioError(InvalidParameterError):
    """A scenario file that cannot run: unreadable TOML, an unknown table or key, a bad value;
    the message names the file, the table and the key (src/mercat/workbench/scenario.py)."""


class OutputUnwritableError(MercatError, OSError):
    """Standard output refused what a command printed: a full disk, a device error, or
    stdout closed (src/mercat/cli/_output.py)."""


class InvalidMarketError(MercatError, ValueError):
    """A market description that is malformed or inconsistent (duplicate ids, dangling refs)."""


class InvalidProposalError(MercatError, ValueError):
    """A market-maker proposal that is malformed (a tolerance on the wrong side of its price,
    a price for a request the proposal does not serve) -- seed 001's posted-price mechanism."""


# --- computation -----------------------------------------------------------------------


class SolverError(MercatError, RuntimeError):
    """An optimisation backend failed or returned a status mercat cannot use."""


class NotProvenOptimalError(SolverError):
    """A result that needs a proven optimum (exact VCG payments) got only a bounded one."""


# --- protocols, ledger, chain ----------------------------------------------------------


class ProtocolError(MercatError):
    """A protocol message or run that violates the protocol (malformed, unauthenticated)."""


class LedgerError(MercatError):
    """A ledger operation was refused; nothing was written."""


# --- ledger and oracle messages (src/mercat/ledger/, src/mercat/oracle/) -----------------
# Each rejection has its own class so that a caller (and a test) can tell them apart; all
# are raised before anything is written.


class MalformedMessageError(ProtocolError, ValueError):
    """A message that does not parse: unknown operation, missing field, wrong type, a float."""


class BadSignatureError(ProtocolError):
    """A signature that does not verify for the key that claims to have signed."""


class WrongLedgerError(ProtocolError):
    """A message or report signed for another ledger (its ledger id is not this ledger's)."""


class ExpiredMessageError(ProtocolError):
    """A signed message past its expiry, or one that claims to stay valid for too long."""


class ReplayedNonceError(ProtocolError):
    """A (signer, nonce) pair the ledger has already accepted."""


class UnauthorizedError(ProtocolError):
    """The signer may not perform this operation (not the operator, not the owner)."""


class TermsViolationError(UnauthorizedError):
    """A task goes beyond what an owner signed: an asset bound without its owner's offer or
    paid below its ask, a request charged above its escrow or served outside its terms."""


class UnknownOracleError(ProtocolError):
    """A report signed by a key outside the ledger's oracle set."""


class DuplicateReportError(ProtocolError):
    """A second report by the same oracle on the same task."""


class QuorumNotReachedError(ProtocolError):
    """Fewer than q oracles of the set agree on a task's outcome."""


class ConflictingQuorumError(ProtocolError):
    """Two different outcomes each gathered a quorum (possible only when 2q <= n)."""


class UnknownAccountError(LedgerError, LookupError):
    """A signer or recipient that has no account."""


class AlreadyExistsError(LedgerError):
    """An account, asset, request or task id that is already taken."""


class InsufficientFundsError(LedgerError):
    """A debit larger than the balance it draws on (no overdraft, no double spend)."""


class RewardPoolExhaustedError(InsufficientFundsError):
    """The reward pool cannot pay a settlement's collective rewards."""


class BalanceOverflowError(LedgerError):
    """A posting that would take a balance (or the supply) out of the exact integer range:
    every book but `world` in [0, 2^62), `world` in (-2^62, 0]."""


class StakeBelowMinimumError(LedgerError):
    """A stake that would end up above zero but below the ledger's minimum stake (or the
    rule's clamp floor)."""


class StakeAboveCapError(LedgerError):
    """A stake above the rule's clamp cap (Coll-Rep, Coll-SR: S0), new or topped up."""


class StakeLockedError(LedgerError):
    """Stake that cannot move yet: unbonding not matured, or the asset is in an open task."""


class UnknownAssetError(LedgerError, LookupError):
    """An asset id the ledger does not know."""


class AssetNotActiveError(LedgerError):
    """An operation that needs an active asset got a removed or retired one."""


class UnknownRequestError(LedgerError, LookupError):
    """A request (escrow) id the ledger does not know."""


class UnknownTaskError(LedgerError, LookupError):
    """A (round, task) id that was never opened on the ledger."""


class UnknownBookError(LedgerError, LookupError):
    """A book name (`avail:KEY`, `stake:ASSET`, `escrow:REQ`, ...) the ledger does not hold."""


class LedgerIntegrityError(LedgerError):
    """Verification failed: an unbalanced entry, or balances that the journal does not explain."""


class LedgerNotInitializedError(LedgerError):
    """A store without the ledger's tables or configuration (run `mercat ledger init`)."""


class LedgerUnavailableError(LedgerError):
    """The store's URL is not a database URL, or its server cannot be reached."""


# --- chain (src/mercat/chain/) ---------------------------------------------------------
# A reverted transaction changes nothing on chain; the facade raises one of these with the
# contract's reason. Where the same refusal exists on the SQL ledger, the chain class also
# derives from the ledger's, so one `except` catches it on either.


class ChainError(MercatError):
    """A smart-contract operation was refused or could not be carried out."""


class ChainUnavailableError(ChainError, RuntimeError):
    """No chain to talk to: the JSON-RPC node did not start or answer, or a tool is missing."""


class ContractRevertError(ChainError):
    """A transaction or call that the contract reverted; `reason` is the contract's message."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason} ({detail})" if detail else reason)


class ChainUnauthorizedError(ContractRevertError, UnauthorizedError):
    """The sender holds no role that allows this call (admin, authority, owner, oracle)."""


class ChainTermsViolationError(ContractRevertError, TermsViolationError):
    """Tasks the operator tried to open against what an owner posted: a request closed,
    expired or already served, an asset not offered or not named, capacity or capability
    missing, payouts below an ask (mercat.runtime.money's checks, on chain)."""


class TaskAlreadySettledError(ContractRevertError, AlreadyExistsError):
    """A second settlement (or report) of the same (round, task) id; the first one stands."""


class ChainIdTakenError(ContractRevertError, AlreadyExistsError):
    """A request or task id already in use, or a CID another asset offers."""


class ChainUnknownTaskError(ContractRevertError, UnknownTaskError):
    """A settlement of a task that was never opened."""


class ChainQuorumNotReachedError(ContractRevertError, QuorumNotReachedError):
    """A settlement through the oracle quorum of a task whose verdict is not decided yet."""


class ChainInsufficientFundsError(ContractRevertError, InsufficientFundsError):
    """A debit larger than the balance, allowance or escrow it draws on."""


class ChainRewardPoolExhaustedError(ChainInsufficientFundsError, RewardPoolExhaustedError):
    """The reward pool cannot pay a settlement's collective rewards; nothing was settled."""


class ChainStakeError(ContractRevertError):
    """A stake or asset operation the asset's state forbids (above the cap, and the
    subclasses below)."""


class ChainStakeBelowMinimumError(ChainStakeError, StakeBelowMinimumError):
    """An asset registered with less than the market's minimum stake."""


class ChainStakeLockedError(ChainStakeError, StakeLockedError):
    """A release with nothing matured (the unstake delay has not passed), or a retirement
    of an asset that runs an open task."""


class ChainAssetNotActiveError(ChainStakeError, AssetNotActiveError):
    """An operation that needs an active asset (or, to replace, a removed one) got another."""


class ChainUnknownAssetError(ChainStakeError, UnknownAssetError):
    """An asset id that was never registered."""


class ChainAssetExistsError(ChainStakeError, AlreadyExistsError):
    """A registration under an id already used by an asset or a request (ids are never
    reused)."""


class ChainUnknownRequestError(ContractRevertError, UnknownRequestError):
    """A request id that was never posted."""


class ChainMalformedError(ContractRevertError, MalformedMessageError):
    """A call whose arguments are malformed: a task without assets or with repeated ones,
    payouts that do not match its assets, an unknown asset kind or margin holder."""


class ChainDeploymentError(ContractRevertError, ValueError):
    """Constructor arguments the contract refuses (a rule or oracle set it cannot run)."""


# --- distributed auctioneer (src/mercat/auctioneer/) ----------------------------------


class AuctioneerError(ProtocolError):
    """Base of the distributed auctioneer's errors (the ledger's protocol errors are not)."""


class AuctioneerConfigError(AuctioneerError, ValueError):
    """A peers file or protocol parameter the auctioneer cannot run with (m ≤ 2k, a group
    smaller than k+1, a duplicate provider id, an unreadable key)."""


class MessageTooLargeError(AuctioneerError, MalformedMessageError):
    """A message above the size limit; it is dropped before it is parsed."""


class UnsupportedVersionError(AuctioneerError, MalformedMessageError):
    """A message of a protocol version this provider does not speak."""


class RoundAbortedError(AuctioneerError):
    """A round that ended in ⊥: a timeout, a mismatch between providers, a bad reveal or an
    abort by a peer. `reason` says which; the next round starts afresh."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# --- content-addressed storage (seed 002) ----------------------------------------------


class StorageError(MercatError):
    """A content-addressed store refused or failed an operation (src/mercat/storage/)."""


class InvalidCIDError(StorageError, ValueError):
    """A string that is not a CIDv1 this store can hold (bad multibase, codec or hash)."""


class ContentNotFoundError(StorageError, LookupError):
    """A well-formed CID whose blocks the store does not hold."""


class ContentCorruptedError(StorageError):
    """A block whose bytes no longer hash to its CID: the store refuses to return them."""


class ContentMismatchError(StorageError, ValueError):
    """Bytes offered for a CID that do not hash to it: refused, nothing stored."""


class KeyNotGrantedError(StorageError, LookupError):
    """A sealed task whose requester has not sealed its keys to this provider (in time)."""


class DecryptionError(StorageError):
    """Encrypted content or a sealed key that does not open: a wrong key, or bytes that were
    altered, truncated or reordered (authenticated encryption cannot tell these apart)."""


# --- the marketplace node (src/mercat/node/) ---------------------------------------------
# A node refuses a request that would cost it more than its operator allows, before it does
# the work; the HTTP answer's status comes from the class (src/mercat/node/http_errors.py).


class NodeLimitError(MercatError):
    """The node refused a request to protect itself (src/mercat/node/limits.py); nothing was
    done. `retry_after`: seconds after which the same request may be accepted, or None when
    waiting will not help."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BodyTooLargeError(NodeLimitError, ValueError):
    """A request body above the endpoint's limit: refused before it is read to the end."""


class BodyTimeoutError(NodeLimitError):
    """A request body that stopped arriving: the node waits a bounded time for each part."""


class RateLimitedError(NodeLimitError):
    """A client above its request rate (or above the rate of opening accounts)."""


class NodeBusyError(NodeLimitError):
    """Every slot for this kind of work is taken (requests in flight, solver workers and their
    queue): try again after `retry_after` seconds."""


class StoreQuotaError(NodeLimitError, StorageError):
    """Content that would take the node's store above its quota: nothing was stored."""


class WorkTimeoutError(NodeLimitError):
    """A solve (or other heavy work) that ran past the node's time limit; it was stopped."""


class WorkTooLargeError(NodeLimitError):
    """A solve (or other heavy work) that needed more memory than the node allows one job."""


class UnknownEndpointError(MercatError, LookupError):
    """A path the node does not serve, or a method the path does not take."""


class InternalError(MercatError):
    """The node failed on a request for a reason of its own (a bug); it was logged."""


# --- workloads, agents, oracles and the devnet (src/mercat/workloads/, src/mercat/node/) --


class WorkloadError(MercatError):
    """A workload that could not run or produced nothing usable (src/mercat/workloads/)."""


class InvalidWorkloadError(WorkloadError, ValueError):
    """A workload spec or input the workload refuses: an unknown workload, a parameter out of
    its bounds, inputs of the wrong kind or shape, an archive that breaks its format."""


class SandboxError(WorkloadError):
    """A sandboxed run that did not finish: killed at its time or memory limit, crashed, or
    wrote more output than allowed. `reason` says which."""

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason


class NodeUnavailableError(MercatError):
    """A node that cannot be reached, or that answered something that is not its API."""


class DevnetError(MercatError):
    """A local devnet that could not start or run (a child that exited, a node that never
    came up)."""


class DeviceUnavailableError(MercatError, RuntimeError):
    """An engine that needs an accelerator found none: the gpu engine of seed 000's collective
    simulation without numba-cuda or without a CUDA GPU (scenarios/collective_gpu.py)."""
