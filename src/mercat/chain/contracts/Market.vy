# pragma version ~=0.4.3
"""
@title Mercat market: balances, request escrows, collective stake, settlement
@notice Holds every token that entered the market and accounts for each of them in exactly
        one place: an account's free balance, a request's escrow, an asset's stake, an
        account's unbonding (unstaked, waiting out the delay), or the reward pool. Only
        `deposit` and `withdraw` move tokens across the contract's boundary; every other
        function moves amounts between those places, so after every transaction

            token.balanceOf(market) == sum(balances) + sum(escrows) + sum(stakes)
                                       + sum(unbonding) + reward_pool

        Settlement never creates or destroys a token: a reward is paid out of the pool and a
        penalty is paid into it (see docs/chain.md).

        The collective rule is `mercat.incentives.collective.CollectiveRule` in base units:
        every active asset of a task gains `reward` if it succeeded and loses `penalty` if it
        failed (never more than its stake), the result is clamped to [stake_floor,
        stake_cap], and with `removal` an asset whose stake reaches the removal level
        (S <= P, or S < P) is removed from the market; its stake stays with it until the
        owner unstakes it or carries it over to a replacement. These are the SQL ledger's
        rules (mercat.ledger), operation for operation; docs/chain.md lists where the two
        differ on purpose.

        Settlement is idempotent by (round, task): the first `settle` of an id applies it,
        any later `settle` of the same id reverts with "market: task already settled" and
        changes nothing.
"""

from ethereum.ercs import IERC20

# Most assets one task can run on; the seed's experiments use 4.
MAX_ASSETS: constant(uint256) = 16
# Most unbonding entries one `release` call pays out (a bound on its loop); more matured
# entries are paid by the next call.
MAX_RELEASE: constant(uint256) = 64

# Asset life cycle, named as on the SQL ledger. An id is used once: a replacement of a
# removed asset gets a new id.
UNUSED: constant(uint8) = 0
ACTIVE: constant(uint8) = 1
RETIRED: constant(uint8) = 2  # its owner unstaked all of it
REMOVED: constant(uint8) = 3  # ruined by the collective rule; out of the market
REPLACED: constant(uint8) = 4  # removed, then its stake carried over to a new asset


struct Asset:
    owner: address
    stake: uint256
    status: uint8


struct Escrow:
    requester: address
    amount: uint256
    closed: bool


struct Unbonding:
    amount: uint256
    release_round: uint256


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

event Unstaked:
    asset: indexed(uint256)
    owner: indexed(address)
    amount: uint256
    release_round: uint256

event Released:
    owner: indexed(address)
    amount: uint256

event AssetReplaced:
    old: indexed(uint256)
    new: indexed(uint256)
    owner: indexed(address)
    carried: uint256
    stake: uint256

event TaskSettled:
    round: indexed(uint256)
    task: indexed(uint256)
    request: indexed(uint256)
    success: bool
    paid: uint256

event StakeUpdated:
    round: indexed(uint256)
    task: indexed(uint256)
    asset: indexed(uint256)
    stake: uint256

event AssetRemoved:
    round: indexed(uint256)
    task: indexed(uint256)
    asset: indexed(uint256)
    stake: uint256

event RoundAdvanced:
    round: uint256

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
min_stake: public(immutable(uint256))  # least stake an active asset may hold
# Rounds (not seconds) between `unstake` and `release`: rounds are what settlements carry,
# so the delay replays identically on the SQL ledger and on any chain.
unstake_delay_rounds: public(immutable(uint256))
current_round: public(uint256)

balances: public(HashMap[address, uint256])
escrows: public(HashMap[uint256, Escrow])
assets: public(HashMap[uint256, Asset])
reward_pool: public(uint256)

# Unbonding per owner: a FIFO queue. Entries are appended with a non-decreasing release
# round (the round only grows, the delay is fixed), so the matured ones are a prefix.
unbonding: public(HashMap[address, uint256])  # total waiting, per owner
unbond_queue: HashMap[address, HashMap[uint256, Unbonding]]
unbond_head: HashMap[address, uint256]
unbond_tail: HashMap[address, uint256]

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


# --- access control and the clock --------------------------------------------------------


@external
def set_authority(_authority: address):
    """The admin hands settlement to another address (an oracle quorum contract, say)."""
    assert msg.sender == admin, "market: only the admin"
    assert _authority != empty(address), "market: authority is the zero address"
    log AuthorityChanged(previous=self.authority, current=_authority)
    self.authority = _authority


@external
def advance_round(_round: uint256):
    """The operator moves the clock to `_round` (a lower or equal round changes nothing),
    as the ledger's AdvanceRound. Unstake delays count these rounds."""
    assert msg.sender == admin, "market: only the admin"
    if _round > self.current_round:
        self.current_round = _round
        log RoundAdvanced(round=_round)


# --- free balances -----------------------------------------------------------------------


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


# --- request escrows ---------------------------------------------------------------------


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
    """Close a request and return what is left of its escrow to the requester. Only the
    operator may: a task's price is taken from the escrow when the task settles, so a
    requester must not be able to empty it while its tasks run."""
    assert msg.sender == admin, "market: only the admin"
    requester: address = self.escrows[_request].requester
    assert requester != empty(address), "market: unknown request"
    assert not self.escrows[_request].closed, "market: request closed"
    amount: uint256 = self.escrows[_request].amount
    self.escrows[_request].amount = 0
    self.escrows[_request].closed = True
    self.balances[requester] += amount
    log Refunded(request=_request, requester=requester, amount=amount)


# --- stakes ------------------------------------------------------------------------------


@internal
@view
def _is_ruined(_stake: uint256) -> bool:
    if removal_inclusive:
        return _stake <= penalty
    return _stake < penalty


@internal
@view
def _check_new_asset(_asset: uint256, _stake: uint256):
    assert self.assets[_asset].status == UNUSED, "market: asset id already used"
    assert _stake >= min_stake and _stake >= stake_floor, "market: stake below the minimum"
    assert _stake <= stake_cap, "market: stake above the cap"


@internal
@view
def _owned(_asset: uint256) -> uint8:
    """The asset's status, after checking that it exists and the caller owns it."""
    status: uint8 = self.assets[_asset].status
    assert status != UNUSED, "market: unknown asset"
    assert self.assets[_asset].owner == msg.sender, "market: not the asset owner"
    return status


@external
def register_asset(_asset: uint256, _stake: uint256):
    """Put a new asset on the market with `_stake` from the caller's free balance."""
    self._check_new_asset(_asset, _stake)
    self._debit(msg.sender, _stake)
    self.assets[_asset] = Asset(owner=msg.sender, stake=_stake, status=ACTIVE)
    log AssetRegistered(asset=_asset, owner=msg.sender, stake=_stake)


@external
def add_stake(_asset: uint256, _amount: uint256):
    assert self._owned(_asset) == ACTIVE, "market: asset not active"
    assert self.assets[_asset].stake + _amount <= stake_cap, "market: stake above the cap"
    self._debit(msg.sender, _amount)
    self.assets[_asset].stake += _amount
    log StakeAdded(asset=_asset, amount=_amount)


@external
def unstake(_asset: uint256, _amount: uint256):
    """Take stake off an asset into the owner's unbonding, released `unstake_delay_rounds`
    rounds later. An active asset keeps at least the minimum stake, or unstakes all and
    retires; a removed asset may take out whatever it has left."""
    status: uint8 = self._owned(_asset)
    assert _amount > 0, "market: amount must be positive"
    stake: uint256 = self.assets[_asset].stake
    assert stake >= _amount, "market: insufficient stake"
    remaining: uint256 = stake - _amount
    if status == ACTIVE:
        assert remaining == 0 or remaining >= min_stake, "market: stake below the minimum"
        if remaining == 0:
            self.assets[_asset].status = RETIRED
    self.assets[_asset].stake = remaining
    release_round: uint256 = self.current_round + unstake_delay_rounds
    tail: uint256 = self.unbond_tail[msg.sender]
    self.unbond_queue[msg.sender][tail] = Unbonding(amount=_amount, release_round=release_round)
    self.unbond_tail[msg.sender] = tail + 1
    self.unbonding[msg.sender] += _amount
    log Unstaked(asset=_asset, owner=msg.sender, amount=_amount, release_round=release_round)


@external
def release():
    """Move the caller's matured unbonding (release round reached) to its free balance."""
    head: uint256 = self.unbond_head[msg.sender]
    tail: uint256 = self.unbond_tail[msg.sender]
    now: uint256 = self.current_round
    amount: uint256 = 0
    for i: uint256 in range(MAX_RELEASE):
        if head == tail or self.unbond_queue[msg.sender][head].release_round > now:
            break
        amount += self.unbond_queue[msg.sender][head].amount
        head += 1
    assert amount > 0, "market: nothing has matured"
    self.unbond_head[msg.sender] = head
    self.unbonding[msg.sender] -= amount
    self.balances[msg.sender] += amount
    log Released(owner=msg.sender, amount=amount)


@external
def replace_asset(_old: uint256, _new: uint256, _stake: uint256):
    """Replace a removed asset by a new one: the old one's remaining stake carries over and
    the free balance tops it up to `_stake` (or takes back the excess)."""
    status: uint8 = self._owned(_old)
    self._check_new_asset(_new, _stake)
    assert status == REMOVED, "market: only a removed asset can be replaced"
    carried: uint256 = self.assets[_old].stake
    if _stake > carried:
        assert self.balances[msg.sender] >= _stake - carried, "market: insufficient balance"
        self.balances[msg.sender] -= _stake - carried
    else:
        self.balances[msg.sender] += carried - _stake
    self.assets[_old].stake = 0
    self.assets[_old].status = REPLACED
    self.assets[_new] = Asset(owner=msg.sender, stake=_stake, status=ACTIVE)
    log AssetReplaced(old=_old, new=_new, owner=msg.sender, carried=carried, stake=_stake)


# --- settlement --------------------------------------------------------------------------


@external
@view
def is_settled(_round: uint256, _task: uint256) -> bool:
    return self.settled_words[_round][_task >> 8] & (1 << (_task & 255)) != 0


@internal
@view
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

    The task's price, sum(`_payouts`), must be in the request's escrow whatever the outcome
    (the ledger holds it when the task opens). Success pays `_payouts[i]` from the escrow
    to the owner of `_assets[i]`; failure leaves it to the requester. `_payouts` is empty
    for a task without payment. Then every asset still active gets the collective reward
    or penalty; an asset that left the market meanwhile is left alone."""
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
    price: uint256 = 0
    pool: uint256 = self.reward_pool
    previous: uint256 = 0
    for i: uint256 in range(len(_assets), bound=MAX_ASSETS):
        asset: uint256 = _assets[i]
        assert i == 0 or asset > previous, "market: task assets not strictly increasing"
        previous = asset
        status: uint8 = self.assets[asset].status
        assert status != UNUSED, "market: unknown asset"
        if paying:
            price += _payouts[i]
            if _success and _payouts[i] > 0:
                # Escrow -> the owner's free balance; the escrow is checked once, below.
                self.balances[self.assets[asset].owner] += _payouts[i]
        if status != ACTIVE:
            continue
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
            self.assets[asset].status = REMOVED
            log AssetRemoved(round=_round, task=_task, asset=asset, stake=stake)
    assert escrowed >= price, "market: escrow too small"
    paid: uint256 = 0
    if _success:
        paid = price
    if paid > 0:
        self.escrows[_request].amount = escrowed - paid
    self.reward_pool = pool
    log TaskSettled(round=_round, task=_task, request=_request, success=_success, paid=paid)
