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
    ChainInsufficientFundsError,
    ChainInvalidTaskError,
    ChainRequestError,
    ChainRewardPoolExhaustedError,
    ChainStakeBelowMinimumError,
    ChainStakeError,
    ChainStakeLockedError,
    ChainUnauthorizedError,
    ChainUnknownAssetError,
    ChainUnknownRequestError,
    ContractRevertError,
    TaskAlreadySettledError,
)

_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

REVERT_REASONS: dict[str, type[ContractRevertError]] = {
    # access control
    "market: only the admin": ChainUnauthorizedError,
    "market: not the settlement authority": ChainUnauthorizedError,
    "market: not the asset owner": ChainUnauthorizedError,
    "quorum: not an oracle": ChainUnauthorizedError,
    "token: only the minter mints": ChainUnauthorizedError,
    # idempotency
    "market: task already settled": TaskAlreadySettledError,
    "quorum: oracle already reported": TaskAlreadySettledError,
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
    "market: asset not active": ChainAssetNotActiveError,
    "market: only a removed asset can be replaced": ChainAssetNotActiveError,
    "market: stake above the cap": ChainStakeError,
    "market: stake below the minimum": ChainStakeBelowMinimumError,
    "market: insufficient stake": ChainInsufficientFundsError,
    "market: nothing has matured": ChainStakeLockedError,
    # escrows
    "market: unknown request": ChainUnknownRequestError,
    "market: request closed": ChainRequestError,
    "market: request belongs to another requester": ChainRequestError,
    # malformed tasks
    "market: task has no assets": ChainInvalidTaskError,
    "market: task assets not strictly increasing": ChainInvalidTaskError,
    "market: payouts do not match assets": ChainInvalidTaskError,
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
