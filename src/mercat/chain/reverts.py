"""From a contract's revert reason to mercat's error class.

Every `assert ..., "reason"` in the shipped contracts has an entry in `REVERT_REASONS`
(a test reads the .vy files and holds the table to them). Backends report a revert either
as raw revert data (boa: the ABI-encoded `Error(string)`) or as a node's message that
contains the reason (web3: "execution reverted: market: ..."); both end in `revert_error`.
"""

from __future__ import annotations

from eth_abi import decode

from mercat.errors import (
    ChainAssetExistsError,
    ChainAssetNotActiveError,
    ChainDeploymentError,
    ChainIdTakenError,
    ChainInsufficientFundsError,
    ChainMalformedError,
    ChainQuorumNotReachedError,
    ChainRewardPoolExhaustedError,
    ChainStakeBelowMinimumError,
    ChainStakeError,
    ChainStakeLockedError,
    ChainTermsViolationError,
    ChainUnauthorizedError,
    ChainUnknownAssetError,
    ChainUnknownRequestError,
    ChainUnknownTaskError,
    ContractRevertError,
    TaskAlreadySettledError,
)

_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

REVERT_REASONS: dict[str, type[ContractRevertError]] = {
    # access control
    "market: only the admin": ChainUnauthorizedError,
    "market: not the settlement authority": ChainUnauthorizedError,
    "market: not the asset owner": ChainUnauthorizedError,
    "market: only the requester or the admin": ChainUnauthorizedError,
    "quorum: not an oracle": ChainUnauthorizedError,
    "token: only the minter mints": ChainUnauthorizedError,
    # ids and idempotency
    "market: task already settled": TaskAlreadySettledError,
    "quorum: oracle already reported": TaskAlreadySettledError,
    "market: task already opened": ChainIdTakenError,
    "market: request id already used": ChainIdTakenError,
    "market: id taken by an asset": ChainIdTakenError,
    "market: CID offered by another asset": ChainIdTakenError,
    "market: unknown task": ChainUnknownTaskError,
    "quorum: no verdict yet": ChainQuorumNotReachedError,
    # funds
    "market: amount must be positive": ChainInsufficientFundsError,
    "market: insufficient balance": ChainInsufficientFundsError,
    "market: escrow too small": ChainInsufficientFundsError,
    "market: token transfer failed": ChainInsufficientFundsError,
    "market: transfer to the zero address": ChainInsufficientFundsError,
    "token: insufficient balance": ChainInsufficientFundsError,
    "token: insufficient allowance": ChainInsufficientFundsError,
    "token: transfer to the zero address": ChainInsufficientFundsError,
    "token: mint to the zero address": ChainInsufficientFundsError,
    "market: reward pool exhausted": ChainRewardPoolExhaustedError,
    # stakes and assets
    "market: unknown asset": ChainUnknownAssetError,
    "market: asset id already used": ChainAssetExistsError,
    "market: id taken by a request": ChainAssetExistsError,
    "market: asset not active": ChainAssetNotActiveError,
    "market: only a removed asset can be replaced": ChainAssetNotActiveError,
    "market: stake above the cap": ChainStakeError,
    "market: stake below the minimum": ChainStakeBelowMinimumError,
    "market: insufficient stake": ChainInsufficientFundsError,
    "market: nothing has matured": ChainStakeLockedError,
    "market: asset runs an open task": ChainStakeLockedError,
    # requests
    "market: unknown request": ChainUnknownRequestError,
    "market: only an open request can be withdrawn": ChainTermsViolationError,
    # tasks against what owners posted (mercat.runtime.money.open_tasks)
    "market: request is closed": ChainTermsViolationError,
    "market: request served in another round": ChainTermsViolationError,
    "market: request expired": ChainTermsViolationError,
    "market: request names an asset nobody offers": ChainTermsViolationError,
    "market: asset has no offer from its owner": ChainTermsViolationError,
    "market: task binds an asset its request does not name": ChainTermsViolationError,
    "market: task must bind every asset its request names": ChainTermsViolationError,
    "market: servers do not match the replicas": ChainTermsViolationError,
    "market: request would be served more than once": ChainTermsViolationError,
    "market: server lacks a capability the request needs": ChainTermsViolationError,
    "market: a round whose margin goes to the pool cannot be subsidised": (
        ChainTermsViolationError
    ),
    "market: server usage would exceed its capacity": ChainTermsViolationError,
    "market: server paid below its ask": ChainTermsViolationError,
    "market: named asset paid below its price": ChainTermsViolationError,
    # malformed calls
    "market: id 0 is reserved": ChainMalformedError,
    "market: unknown asset kind": ChainMalformedError,
    "market: only a server offers capacity": ChainMalformedError,
    "market: malformed request terms": ChainMalformedError,
    "market: margin goes to the operator or the pool": ChainMalformedError,
    "market: a round opens at least one task": ChainMalformedError,
    "market: task ids repeat": ChainMalformedError,
    "market: payouts do not match assets": ChainMalformedError,
    "market: malformed task": ChainMalformedError,
    "market: task assets repeat": ChainMalformedError,
    "market: too many servers in one call": ChainMalformedError,
    "market: task terms differ from the opened ones": ChainMalformedError,
    "market: nothing to settle": ChainMalformedError,
    # constructors
    "market: authority is the zero address": ChainDeploymentError,
    "market: penalty must be positive": ChainDeploymentError,
    "market: stake floor above the cap": ChainDeploymentError,
    "market: minimum stake must be positive": ChainDeploymentError,
    "market: minimum stake at the removal level": ChainDeploymentError,
    "quorum: threshold outside 1..n": ChainDeploymentError,
    "quorum: threshold must exceed half the oracles": ChainDeploymentError,
    "quorum: oracle is the zero address": ChainDeploymentError,
    "quorum: oracle listed twice": ChainDeploymentError,
}

# Longest first, so that a reason that contains another ("... balance" in "... insufficient
# balance") is matched before it.
_BY_LENGTH = sorted(REVERT_REASONS, key=len, reverse=True)


def reason_from_revert_data(data: bytes) -> str | None:
    """The reason string of ABI-encoded `Error(string)` revert data, if it is one."""
    if data[:4] != _ERROR_SELECTOR:
        return None
    try:
        (reason,) = decode(["string"], data[4:])
    except Exception:  # malformed data: report as unknown
        return None
    return reason


def revert_error(message: str, detail: str = "") -> ContractRevertError:
    """The error for a revert whose reason (or node message containing it) is `message`."""
    for reason in _BY_LENGTH:
        if reason in message:
            return REVERT_REASONS[reason](reason, detail)
    return ContractRevertError(message or "reverted without a reason", detail)
