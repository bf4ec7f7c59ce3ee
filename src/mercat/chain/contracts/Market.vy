# pragma version ~=0.4.3
"""
@title Mercat market: balances, request escrows, collective stake, settlement
@notice Holds every token that entered the market and accounts for each of them in exactly
        one place: an account's free balance, a request's escrow, an asset's stake, or the
        reward pool. Only `deposit` and `withdraw` move tokens across the contract's
        boundary; every other function moves amounts between those places, so

            token.balanceOf(market) == sum(balances) + sum(escrows) + sum(stakes) + pool

        holds after every transaction. Settlement never creates or destroys a token: a
        reward is paid out of the pool and a penalty is paid into it (see docs/chain.md).

        The collective rule is `mercat.incentives.collective.CollectiveRule` in base units:
        every asset of a task gains `reward` if it succeeded and loses `penalty` if it
        failed (never more than its stake), the result is clamped to [stake_floor,
        stake_cap], and with `removal` an asset whose stake reaches the removal level
        (S <= P, or S < P) is removed and its remaining stake returned to its owner's free
        balance.

        Settlement is idempotent by (round, task): the first `settle` of an id applies it,
        any later `settle` of the same id reverts with "market: task already settled" and
        changes nothing.
"""

from ethereum.ercs import IERC20

# Most assets one task can run on; the seed's experiments use 4.
MAX_ASSETS: constant(uint256) = 16

# Asset life cycle. An asset id is used once: a removed or withdrawn asset stays so, and a
# replacement is registered under a new id.
UNUSED: constant(uint8) = 0
ACTIVE: constant(uint8) = 1
RETIRING: constant(uint8) = 2  # unstake requested; takes no new task, still settles
REMOVED: constant(uint8) = 3  # ruined by the collective rule; stake returned to the owner
WITHDRAWN: constant(uint8) = 4  # unstaked after the delay


struct Asset:
    owner: address
    stake: uint256
    status: uint8
    unlock_round: uint256


struct Escrow:
    requester: address
    amount: uint256
    closed: bool


event Deposited:
    account: indexed(address)
    amount: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event Transferred:
    sender: indexed(address)
    receiver: indexed(address)
    amount: uint256

event Escrowed:
    request: indexed(uint256)
    requester: indexed(address)
    amount: uint256

event Refunded:
    request: indexed(uint256)
    requester: indexed(address)
    amount: uint256

event PoolFunded:
    funder: indexed(address)
    amount: uint256

event AssetRegistered:
    asset: indexed(uint256)
    owner: indexed(address)
    stake: uint256

event StakeAdded:
    asset: indexed(uint256)
    amount: uint256

event AssetRetiring:
    asset: indexed(uint256)
    unlock_round: uint256

event StakeWithdrawn:
    asset: indexed(uint256)
    owner: indexed(address)
    amount: uint256

event TaskSettled:
    round: indexed(uint256)
    task: indexed(uint256)
    request: indexed(uint256)
    success: bool
    paid: uint256

event RoundAdvanced:
    round: uint256

event StakeUpdated:
    round: indexed(uint256)
    task: indexed(uint256)
    asset: indexed(uint256)
    stake: uint256

event AssetRemoved:
    round: indexed(uint256)
    task: indexed(uint256)
    asset: indexed(uint256)
    owner: address
    returned: uint256

event AuthorityChanged:
    previous: indexed(address)
    current: indexed(address)


# Two roles. The admin (the market's operator, its deployer) runs the round clock, closes
# requests and names the authority; the authority (the operator itself, or an oracle
# quorum contract) is the only one that settles tasks.
token: public(immutable(IERC20))
admin: public(immutable(address))
authority: public(address)

# The collective rule, fixed at deployment.
penalty: public(immutable(uint256))
reward: public(immutable(uint256))
removal: public(immutable(bool))
removal_inclusive: public(immutable(bool))
moves_stakes: public(immutable(bool))
stake_floor: public(immutable(uint256))  # 0: no floor
stake_cap: public(immutable(uint256))  # max_value(uint256): no cap
min_stake: public(immutable(uint256))  # least stake an asset may enter with
# Rounds (not seconds) between `retire` and `withdraw_stake`: rounds are what settlements
# carry, so the delay replays identically on the SQL ledger and on any chain.
unstake_delay_rounds: public(immutable(uint256))
current_round: public(uint256)

balances: public(HashMap[address, uint256])
escrows: public(HashMap[uint256, Escrow])
assets: public(HashMap[uint256, Asset])
reward_pool: public(uint256)

# Settled (round, task) ids as a bitmap: word task >> 8 of round `round`, bit task & 255.
# Tasks numbered densely within a round share a storage word, so after the first task of a
# word a settlement pays for a warm non-zero write instead of a fresh slot.
settled_words: HashMap[uint256, HashMap[uint256, uint256]]


@deploy
def __init__(
    _token: IERC20,
    _authority: address,
    _penalty: uint256,
    _reward: uint256,
    _removal: bool,
    _removal_inclusive: bool,
    _moves_stakes: bool,
    _stake_floor: uint256,
    _stake_cap: uint256,
    _min_stake: uint256,
    _unstake_delay_rounds: uint256,
):
    assert _authority != empty(address), "market: authority is the zero address"
    assert _penalty > 0, "market: penalty must be positive"
    assert _stake_floor <= _stake_cap, "market: stake floor above the cap"
    # An asset may not enter already at the removal level (it would be removed by its
    # first settlement whatever the outcome).
    assert _min_stake > 0, "market: minimum stake must be positive"
    assert not _removal or _min_stake > _penalty or (
        not _removal_inclusive and _min_stake == _penalty
    ), "market: minimum stake at the removal level"
    token = _token
    admin = msg.sender
    self.authority = _authority
    penalty = _penalty
    reward = _reward
    removal = _removal
    removal_inclusive = _removal_inclusive
    moves_stakes = _moves_stakes
    stake_floor = _stake_floor
    stake_cap = _stake_cap
    min_stake = _min_stake
    unstake_delay_rounds = _unstake_delay_rounds


# --- access control --------------------------------------------------------------------


@external
def set_authority(_authority: address):
    """The admin hands settlement to another address (an oracle quorum contract, say)."""
    assert msg.sender == admin, "market: only the admin"
    assert _authority != empty(address), "market: authority is the zero address"
    log AuthorityChanged(previous=self.authority, current=_authority)
    self.authority = _authority


@external
def advance_round():
    """The operator closes the current round (unstake delays count rounds)."""
    assert msg.sender == admin, "market: only the admin"
    self.current_round += 1
    log RoundAdvanced(round=self.current_round)


# --- free balances ---------------------------------------------------------------------


@internal
def _debit(_account: address, _amount: uint256):
    assert _amount > 0, "market: amount must be positive"
    assert self.balances[_account] >= _amount, "market: insufficient balance"
    self.balances[_account] -= _amount


@external
def deposit(_amount: uint256):
    """Pull `_amount` tokens (approved beforehand) into the caller's free balance."""
    assert _amount > 0, "market: amount must be positive"
    assert extcall token.transferFrom(msg.sender, self, _amount), "market: token transfer failed"
    self.balances[msg.sender] += _amount
    log Deposited(account=msg.sender, amount=_amount)


@external
def withdraw(_amount: uint256):
    self._debit(msg.sender, _amount)
    assert extcall token.transfer(msg.sender, _amount), "market: token transfer failed"
    log Withdrawn(account=msg.sender, amount=_amount)


@external
def transfer(_to: address, _amount: uint256):
    assert _to != empty(address), "market: transfer to the zero address"
    self._debit(msg.sender, _amount)
    self.balances[_to] += _amount
    log Transferred(sender=msg.sender, receiver=_to, amount=_amount)


@external
def fund_pool(_amount: uint256):
    """Move free balance into the reward pool. Nothing takes tokens out of the pool except
    rewards, so funding it is a one-way contribution."""
    self._debit(msg.sender, _amount)
    self.reward_pool += _amount
    log PoolFunded(funder=msg.sender, amount=_amount)


# --- request escrows -------------------------------------------------------------------


@external
def escrow(_request: uint256, _amount: uint256):
    """Lock free balance for a request. The first escrow of an id makes the caller its
    requester; later ones top it up."""
    requester: address = self.escrows[_request].requester
    assert requester == empty(address) or requester == msg.sender, "market: request belongs to another requester"
    assert not self.escrows[_request].closed, "market: request closed"
    self._debit(msg.sender, _amount)
    self.escrows[_request].requester = msg.sender
    self.escrows[_request].amount += _amount
    log Escrowed(request=_request, requester=msg.sender, amount=_amount)


@external
def refund(_request: uint256):
    """Close a request and return what is left of its escrow to the requester. The
    operator, which knows when the clearing has no more tasks for a request, closes it."""
    assert msg.sender == admin, "market: only the admin"
    requester: address = self.escrows[_request].requester
    assert requester != empty(address), "market: unknown request"
    assert not self.escrows[_request].closed, "market: request closed"
    amount: uint256 = self.escrows[_request].amount
    self.escrows[_request].amount = 0
    self.escrows[_request].closed = True
    self.balances[requester] += amount
    log Refunded(request=_request, requester=requester, amount=amount)


# --- stakes ----------------------------------------------------------------------------


@internal
@view
def _is_ruined(_stake: uint256) -> bool:
    if removal_inclusive:
        return _stake <= penalty
    return _stake < penalty


@external
def register_asset(_asset: uint256, _stake: uint256):
    """Put a new asset on the market with `_stake` from the caller's free balance. A new
    asset can join at any time, which is also how a removed one is replaced."""
    assert self.assets[_asset].status == UNUSED, "market: asset id already used"
    assert _stake >= min_stake and _stake >= stake_floor, "market: stake below the minimum"
    assert _stake <= stake_cap, "market: stake above the cap"
    self._debit(msg.sender, _stake)
    self.assets[_asset] = Asset(owner=msg.sender, stake=_stake, status=ACTIVE, unlock_round=0)
    log AssetRegistered(asset=_asset, owner=msg.sender, stake=_stake)


@external
def add_stake(_asset: uint256, _amount: uint256):
    assert self.assets[_asset].owner == msg.sender, "market: not the asset owner"
    assert self.assets[_asset].status == ACTIVE, "market: asset not active"
    assert self.assets[_asset].stake + _amount <= stake_cap, "market: stake above the cap"
    self._debit(msg.sender, _amount)
    self.assets[_asset].stake += _amount
    log StakeAdded(asset=_asset, amount=_amount)


@external
def retire(_asset: uint256):
    """Request to unstake: the asset takes no new task but still settles the ones it ran
    until `withdraw_stake`, which opens `unstake_delay_rounds` rounds later."""
    assert self.assets[_asset].owner == msg.sender, "market: not the asset owner"
    assert self.assets[_asset].status == ACTIVE, "market: asset not active"
    unlock_round: uint256 = self.current_round + unstake_delay_rounds
    self.assets[_asset].status = RETIRING
    self.assets[_asset].unlock_round = unlock_round
    log AssetRetiring(asset=_asset, unlock_round=unlock_round)


@external
def withdraw_stake(_asset: uint256):
    assert self.assets[_asset].owner == msg.sender, "market: not the asset owner"
    assert self.assets[_asset].status == RETIRING, "market: asset not retiring"
    assert self.current_round >= self.assets[_asset].unlock_round, "market: stake still locked"
    amount: uint256 = self.assets[_asset].stake
    self.assets[_asset].stake = 0
    self.assets[_asset].status = WITHDRAWN
    self.balances[msg.sender] += amount
    log StakeWithdrawn(asset=_asset, owner=msg.sender, amount=amount)


# --- settlement ------------------------------------------------------------------------


@external
@view
def is_settled(_round: uint256, _task: uint256) -> bool:
    return self.settled_words[_round][_task >> 8] & (1 << (_task & 255)) != 0


@internal
def _updated_stake(_stake: uint256, _success: bool) -> uint256:
    # CollectiveRule.updated_stake in base units. A penalty takes at most the whole stake
    # (tokens cannot go negative); with removal or a floor the rule never asks for more.
    stake: uint256 = 0
    if _success:
        stake = _stake + reward
    elif _stake > penalty:
        stake = _stake - penalty
    return max(min(stake, stake_cap), stake_floor)


@external
def settle(
    _round: uint256,
    _task: uint256,
    _request: uint256,
    _assets: DynArray[uint256, MAX_ASSETS],
    _payouts: DynArray[uint256, MAX_ASSETS],
    _success: bool,
):
    """Settle one task that ran on `_assets` (ids in strictly increasing order, which rules
    out repeats in one pass).

    Success pays `_payouts[i]` from the request's escrow to the owner of `_assets[i]`;
    failure pays nothing and leaves the escrow to the requester (for another task or a
    `refund`). `_payouts` is empty when the task carries no payment. Then every asset of
    the task gets the collective reward or penalty."""
    assert msg.sender == self.authority, "market: not the settlement authority"
    word: uint256 = self.settled_words[_round][_task >> 8]
    bit: uint256 = 1 << (_task & 255)
    assert word & bit == 0, "market: task already settled"
    assert len(_assets) > 0, "market: task has no assets"
    paying: bool = len(_payouts) > 0
    assert not paying or len(_payouts) == len(_assets), "market: payouts do not match assets"
    self.settled_words[_round][_task >> 8] = word | bit

    escrowed: uint256 = 0
    if paying:
        assert self.escrows[_request].requester != empty(address), "market: unknown request"
        assert not self.escrows[_request].closed, "market: request closed"
        escrowed = self.escrows[_request].amount
    paid: uint256 = 0
    pool: uint256 = self.reward_pool
    previous: uint256 = 0
    for i: uint256 in range(len(_assets), bound=MAX_ASSETS):
        asset: uint256 = _assets[i]
        assert i == 0 or asset > previous, "market: task assets not strictly increasing"
        previous = asset
        status: uint8 = self.assets[asset].status
        assert status == ACTIVE or status == RETIRING, "market: asset not in the market"
        if paying and _success and _payouts[i] > 0:
            # Escrow -> the owner's free balance; checked against the escrow below, once.
            paid += _payouts[i]
            self.balances[self.assets[asset].owner] += _payouts[i]
        stake: uint256 = self.assets[asset].stake
        if moves_stakes:
            new_stake: uint256 = self._updated_stake(stake, _success)
            # The pool pays exactly what a stake gains and takes exactly what it loses.
            if new_stake > stake:
                assert pool >= new_stake - stake, "market: reward pool exhausted"
                pool -= new_stake - stake
            else:
                pool += stake - new_stake
            stake = new_stake
            self.assets[asset].stake = stake
            log StakeUpdated(round=_round, task=_task, asset=asset, stake=stake)
        if removal and self._is_ruined(stake):
            owner: address = self.assets[asset].owner
            self.assets[asset].stake = 0
            self.assets[asset].status = REMOVED
            self.balances[owner] += stake
            log AssetRemoved(round=_round, task=_task, asset=asset, owner=owner, returned=stake)
    if paid > 0:
        assert escrowed >= paid, "market: escrow too small"
        self.escrows[_request].amount = escrowed - paid
    self.reward_pool = pool
    log TaskSettled(round=_round, task=_task, request=_request, success=_success, paid=paid)
