# pragma version ~=0.4.3
"""
@title Mercat market: balances, offers, requests and their escrows, tasks and their holds,
       collective stake
@notice The round pipeline's money rule (mercat.runtime.money) as a contract, operation for
        operation the rule the in-memory book and the SQL ledger run:

        - an asset's owner stakes it (`register_asset`) and offers it (`post_offer`): a
          server's capacity, unit costs and capabilities, or an app/dataset/model's price
          per use; nobody can bind an asset its owner has not offered;
        - a requester posts a request (`post_request`) and its `max_price` is escrowed;
        - the operator (the admin) opens a round's tasks (`open_tasks`), each checked here
          against what the owners posted: the request is open (or opened this round), not
          expired and served at most once; every bound asset is active and offered, the
          named assets are exactly the request's, the servers offer the request's
          capabilities and keep within their capacity this round, every server's payouts
          in the call cover its ask (its fixed cost once per round, its unit costs on the
          units the call serves) and every named asset's cover its price; the request's
          escrow covers the charges. The
          charge moves from the escrow into the task's hold, the subsidy (payouts above
          the charge) from the margin holder (the operator's balance; the pool may hold
          margins but never subsidises);
        - the authority (the operator, or an oracle quorum contract) settles tasks
          (`settle_tasks`): a task pays when it succeeded and met its SLA; then the hold
          pays every owner its payout and the margin to the margin holder; otherwise the
          charge goes back to the escrow and the subsidy to the margin holder. Then the
          collective rule moves the stake of every active asset of the task (reward from
          the pool, penalty into it) and removes an asset at the removal level; when a
          request's last task settles, the request closes and the rest of its escrow goes
          back to its owner.

        Every token that entered the market is in exactly one place: a free balance, an
        escrow, a task's hold, a stake, an account's unbonding, or the reward pool. Only
        `deposit` and `withdraw` cross the contract's boundary; everything else moves
        amounts between those places, so after every transaction

            token.balanceOf(market) == sum(balances) + sum(escrows) + sum(holds)
                                       + sum(stakes) + sum(unbonding) + reward_pool

        What lives on chain and what off chain: the fields the checks need are stored
        (kinds, costs, capacities, unit costs, capabilities, CIDs; a request's max price,
        demand, replicas, capabilities, named assets and last round), names as keccak256
        hashes; everything else an owner signed (a request's inputs, workload, deadline)
        stays off chain and is bound by `digest`, the keccak256 of the owner's canonical
        JSON, stored with the fields. A task is stored as the keccak256 of its terms (its
        commitment) plus its hold; settling it takes the terms again and checks them
        against the commitment. See docs/chain.md.
"""

from ethereum.ercs import IERC20

PPB: constant(uint256) = 10**9  # a task's fraction of its request, in parts per billion
MAX_TASK_ASSETS: constant(uint256) = 32  # 16 replicas + 16 named assets
MAX_NAMED: constant(uint256) = 16
MAX_RESOURCES: constant(uint256) = 32
MAX_LABELS: constant(uint256) = 64
MAX_REPLICAS: constant(uint256) = 16
# Tasks one `open_tasks` or `settle_tasks` call takes, and distinct servers one
# `open_tasks` call binds: bounds on their loops and on their memory, whose cost grows with
# the square of its size (a bound of 64 tasks made every call cost about 80 k gas more).
MAX_BATCH: constant(uint256) = 32
MAX_CALL_SERVERS: constant(uint256) = 128
MAX_CALL_NAMED: constant(uint256) = 512  # MAX_BATCH * MAX_NAMED
# Most unbonding entries one `release` call pays out; more matured entries wait for the next.
MAX_RELEASE: constant(uint256) = 64

# Asset life cycle, named as on the SQL ledger. An id is used once.
UNUSED: constant(uint8) = 0
ACTIVE: constant(uint8) = 1
RETIRED: constant(uint8) = 2  # its owner unstaked all of it
REMOVED: constant(uint8) = 3  # ruined by the collective rule; out of the market
REPLACED: constant(uint8) = 4  # removed, then its stake carried over to a new asset

# Asset kinds (0: the owner has not offered it yet).
SERVER: constant(uint8) = 1
MODEL: constant(uint8) = 4  # APP = 2, DATASET = 3

# Request life cycle.
OPEN: constant(uint8) = 1
ASSIGNED: constant(uint8) = 2
CLOSED: constant(uint8) = 3

# Margin holders.
TO_OPERATOR: constant(uint8) = 0
TO_POOL: constant(uint8) = 1

# The commitment of a settled task (no keccak256 output is this small).
SETTLED: constant(bytes32) = 0x0000000000000000000000000000000000000000000000000000000000000001


struct Amount:
    resource: bytes32  # keccak256 of the resource's name
    amount: uint256


struct Offer:
    kind: uint8
    cost: uint256  # a server's fixed cost per round it is used; a named asset's price per use
    capacity: DynArray[Amount, MAX_RESOURCES]
    unit_costs: DynArray[Amount, MAX_RESOURCES]
    capabilities: DynArray[bytes32, MAX_LABELS]
    cid: uint256  # keccak256 of the content id (0: none)
    digest: bytes32  # keccak256 of the owner's canonical offer JSON


struct Terms:
    request: uint256
    max_price: uint256
    demand: DynArray[Amount, MAX_RESOURCES]  # per replica
    replicas: uint256
    capabilities: DynArray[bytes32, MAX_LABELS]
    assets: DynArray[uint256, MAX_NAMED]  # named assets, by id or CID
    expires: uint256  # the last round it may be served in
    digest: bytes32  # keccak256 of the owner's canonical terms JSON


struct Task:
    task: uint256
    request: uint256
    assets: DynArray[uint256, MAX_TASK_ASSETS]  # servers, then named assets
    payouts: DynArray[uint256, MAX_TASK_ASSETS]  # to each asset's owner if the task pays
    charge: uint256
    fraction: uint256  # PPB of the request's demand


struct Settlement:
    task: Task
    margin_to: uint8
    paid: bool  # succeeded with its SLA met


struct Asset:
    owner: address
    stake: uint256
    status: uint8
    kind: uint8
    cost: uint256
    version: uint256  # of its offer: keys the offer's capacities, unit costs, capabilities
    cid: uint256
    digest: bytes32
    open_tasks: uint256  # tasks opened on it and not settled (its stake answers for them)


struct Request:
    owner: address
    status: uint8
    round: uint256  # the round its tasks opened in
    served: uint256  # PPB of its demand its tasks cover
    open_tasks: uint256
    replicas: uint256
    expires: uint256
    digest: bytes32


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

event PoolFunded:
    funder: indexed(address)
    amount: uint256

event AssetRegistered:
    asset: indexed(uint256)
    owner: indexed(address)
    stake: uint256

event OfferPosted:
    asset: indexed(uint256)
    owner: indexed(address)
    kind: uint8
    cost: uint256
    cid: uint256
    digest: bytes32

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

event RequestPosted:
    request: indexed(uint256)
    owner: indexed(address)
    escrowed: uint256
    digest: bytes32

event RequestClosed:
    request: indexed(uint256)
    owner: indexed(address)
    refunded: uint256

event TaskOpened:
    round: indexed(uint256)
    task: indexed(uint256)
    request: indexed(uint256)
    charge: uint256
    paid_out: uint256
    subsidy: uint256

event TaskSettled:
    round: indexed(uint256)
    task: indexed(uint256)
    request: indexed(uint256)
    paid: bool
    charge: uint256  # what the request paid (0 unless the task paid)
    margin: int256  # charge - payouts of a task that paid (negative: the subsidy); else 0
    refunded: uint256  # escrow returned as the request closed with this task

event StakeUpdated:
    round: indexed(uint256)
    task: indexed(uint256)
    asset: indexed(uint256)
    before: uint256
    after: uint256

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


# Two roles. The admin (the market's operator, its deployer) runs the round clock, opens
# tasks, withdraws requests and names the authority; the authority (the operator itself,
# or an oracle quorum contract) is the only one that settles tasks.
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
# Rounds (not seconds) between `unstake` and `release`: rounds are what tasks carry, so the
# delay replays identically on the SQL ledger and on any chain.
unstake_delay_rounds: public(immutable(uint256))
current_round: public(uint256)

balances: public(HashMap[address, uint256])
reward_pool: public(uint256)

assets: public(HashMap[uint256, Asset])
# An offer's server terms, by (asset, offer version, name hash).
offer_capacity: HashMap[uint256, HashMap[uint256, HashMap[bytes32, uint256]]]
offer_unit_cost: HashMap[uint256, HashMap[uint256, HashMap[bytes32, uint256]]]
offer_capability: HashMap[uint256, HashMap[uint256, HashMap[bytes32, bool]]]
cid_asset: public(HashMap[uint256, uint256])  # CID hash -> the asset whose offer names it

requests: public(HashMap[uint256, Request])
escrows: public(HashMap[uint256, uint256])
request_demand: HashMap[uint256, DynArray[Amount, MAX_RESOURCES]]
request_capabilities: HashMap[uint256, DynArray[bytes32, MAX_LABELS]]
request_assets: HashMap[uint256, DynArray[uint256, MAX_NAMED]]

# Tasks by (round, task): the keccak256 of their terms while open (SETTLED after), and
# what their holds hold.
task_commitment: public(HashMap[uint256, HashMap[uint256, bytes32]])
task_held: public(HashMap[uint256, HashMap[uint256, uint256]])
# What a round's tasks take of a server: sum of demand * fraction per resource (PPB-scaled),
# and whether any task uses it (its fixed cost is asked once per round).
usage: HashMap[uint256, HashMap[uint256, HashMap[bytes32, uint256]]]
used: HashMap[uint256, HashMap[uint256, bool]]

# Unbonding per owner: a FIFO queue. Entries are appended with a non-decreasing release
# round (the round only grows, the delay is fixed), so the matured ones are a prefix.
unbonding: public(HashMap[address, uint256])  # total waiting, per owner
unbond_queue: HashMap[address, HashMap[uint256, Unbonding]]
unbond_head: HashMap[address, uint256]
unbond_tail: HashMap[address, uint256]


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


@internal
def _reach_round(_round: uint256):
    # The round is the highest the operator or any task has named, as on the SQL ledger.
    if _round > self.current_round:
        self.current_round = _round
        log RoundAdvanced(round=_round)


@external
def advance_round(_round: uint256):
    """The operator moves the clock to `_round` (a lower or equal round changes nothing).
    Unstake delays count these rounds."""
    assert msg.sender == admin, "market: only the admin"
    self._reach_round(_round)


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
    assert _asset != 0, "market: id 0 is reserved"
    assert self.assets[_asset].status == UNUSED, "market: asset id already used"
    # Request and asset ids share one namespace: a request names assets by id.
    assert self.requests[_asset].status == 0, "market: id taken by a request"
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
    """Put a new asset on the market with `_stake` from the caller's free balance. It takes
    no task until its owner offers it (`post_offer`)."""
    self._check_new_asset(_asset, _stake)
    self._debit(msg.sender, _stake)
    self.assets[_asset].owner = msg.sender
    self.assets[_asset].stake = _stake
    self.assets[_asset].status = ACTIVE
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
    retires (not while a task is open on it: its stake answers for that task); a removed
    asset may take out whatever it has left."""
    status: uint8 = self._owned(_asset)
    assert _amount > 0, "market: amount must be positive"
    stake: uint256 = self.assets[_asset].stake
    assert stake >= _amount, "market: insufficient stake"
    remaining: uint256 = stake - _amount
    if status == ACTIVE:
        assert remaining == 0 or remaining >= min_stake, "market: stake below the minimum"
        if remaining == 0:
            assert self.assets[_asset].open_tasks == 0, "market: asset runs an open task"
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
    self.assets[_new].owner = msg.sender
    self.assets[_new].stake = _stake
    self.assets[_new].status = ACTIVE
    log AssetReplaced(old=_old, new=_new, owner=msg.sender, carried=carried, stake=_stake)


# --- offers and requests -----------------------------------------------------------------


@external
def post_offer(_asset: uint256, _offer: Offer):
    """The owner's (new) standing offer for its active asset; without one, nobody can bind
    the asset to a task. A CID names at most one asset."""
    status: uint8 = self._owned(_asset)
    assert status == ACTIVE, "market: asset not active"
    assert _offer.kind >= SERVER and _offer.kind <= MODEL, "market: unknown asset kind"
    assert _offer.kind == SERVER or (
        len(_offer.capacity) == 0
        and len(_offer.unit_costs) == 0
        and len(_offer.capabilities) == 0
    ), "market: only a server offers capacity"
    if _offer.cid != 0:
        holder: uint256 = self.cid_asset[_offer.cid]
        assert holder == 0 or holder == _asset, "market: CID offered by another asset"
    previous_cid: uint256 = self.assets[_asset].cid
    if previous_cid != 0 and previous_cid != _offer.cid:
        self.cid_asset[previous_cid] = 0
    if _offer.cid != 0:
        self.cid_asset[_offer.cid] = _asset
    # A new version: the old offer's capacities, costs and capabilities stay behind.
    version: uint256 = self.assets[_asset].version + 1
    for item: Amount in _offer.capacity:
        self.offer_capacity[_asset][version][item.resource] = item.amount
    for item: Amount in _offer.unit_costs:
        self.offer_unit_cost[_asset][version][item.resource] = item.amount
    for label: bytes32 in _offer.capabilities:
        self.offer_capability[_asset][version][label] = True
    self.assets[_asset].version = version
    self.assets[_asset].kind = _offer.kind
    self.assets[_asset].cost = _offer.cost
    self.assets[_asset].cid = _offer.cid
    self.assets[_asset].digest = _offer.digest
    log OfferPosted(
        asset=_asset,
        owner=msg.sender,
        kind=_offer.kind,
        cost=_offer.cost,
        cid=_offer.cid,
        digest=_offer.digest,
    )


@external
def post_request(_terms: Terms):
    """Post a request and escrow its `max_price` from the caller's free balance."""
    request: uint256 = _terms.request
    assert request != 0, "market: id 0 is reserved"
    assert self.requests[request].status == 0, "market: request id already used"
    assert self.assets[request].status == UNUSED, "market: id taken by an asset"
    assert _terms.max_price > 0, "market: malformed request terms"
    assert _terms.replicas > 0 and _terms.replicas <= MAX_REPLICAS, "market: malformed request terms"
    self._debit(msg.sender, _terms.max_price)
    self.escrows[request] = _terms.max_price
    self.requests[request] = Request(
        owner=msg.sender,
        status=OPEN,
        round=0,
        served=0,
        open_tasks=0,
        replicas=_terms.replicas,
        expires=_terms.expires,
        digest=_terms.digest,
    )
    if len(_terms.demand) > 0:
        self.request_demand[request] = _terms.demand
    if len(_terms.capabilities) > 0:
        self.request_capabilities[request] = _terms.capabilities
    if len(_terms.assets) > 0:
        self.request_assets[request] = _terms.assets
    log RequestPosted(
        request=request, owner=msg.sender, escrowed=_terms.max_price, digest=_terms.digest
    )


@external
def withdraw_request(_request: uint256):
    """Close an open (unserved) request and return its escrow to its owner; the owner or
    the operator may (the operator withdraws expired requests). A served request closes by
    itself when its last task settles."""
    status: uint8 = self.requests[_request].status
    assert status != 0, "market: unknown request"
    owner: address = self.requests[_request].owner
    assert msg.sender == owner or msg.sender == admin, "market: only the requester or the admin"
    assert status == OPEN, "market: only an open request can be withdrawn"
    amount: uint256 = self.escrows[_request]
    self.escrows[_request] = 0
    self.balances[owner] += amount
    self.requests[_request].status = CLOSED
    log RequestClosed(request=_request, owner=owner, refunded=amount)


# --- opening tasks -----------------------------------------------------------------------


@internal
@view
def _resolve(_reference: uint256) -> uint256:
    """The asset a request names: by id, or by the CID in its offer (0: none)."""
    if self.assets[_reference].status != UNUSED:
        return _reference
    return self.cid_asset[_reference]


@internal
@view
def _named(_request: uint256) -> DynArray[uint256, MAX_NAMED]:
    named: DynArray[uint256, MAX_NAMED] = []
    for reference: uint256 in self.request_assets[_request]:
        asset: uint256 = self._resolve(reference)
        assert asset != 0, "market: request names an asset nobody offers"
        named.append(asset)
    return named


@internal
@pure
def _commitment(_round: uint256, _task: Task, _margin_to: uint8) -> bytes32:
    return keccak256(abi_encode(_round, _task, _margin_to))


@external
def open_tasks(_round: uint256, _tasks: DynArray[Task, MAX_BATCH], _margin_to: uint8):
    """The operator opens tasks of `_round`, all or none, each checked against the terms
    its request's and its assets' owners posted (the notice lists the checks). They run in
    the order of mercat.runtime.money.open_tasks, so both refuse a batch with the same
    kind of error: per task, the request, then each asset, then the task as a whole; after
    the last task, capacities, asks and prices; last, the escrows and the subsidy."""
    assert msg.sender == admin, "market: only the admin"
    assert _margin_to <= TO_POOL, "market: margin goes to the operator or the pool"
    assert len(_tasks) > 0, "market: a round opens at least one task"
    for i: uint256 in range(len(_tasks), bound=MAX_BATCH):
        for j: uint256 in range(i, bound=MAX_BATCH):
            assert _tasks[i].task != _tasks[j].task, "market: task ids repeat"

    # What the call adds up, per request and per server (memory: no hash maps here).
    requests: DynArray[uint256, MAX_BATCH] = []
    served: uint256[MAX_BATCH] = empty(uint256[MAX_BATCH])  # PPB this call serves
    charged: uint256[MAX_BATCH] = empty(uint256[MAX_BATCH])
    opened: uint256[MAX_BATCH] = empty(uint256[MAX_BATCH])
    named_paid: uint256[MAX_CALL_NAMED] = empty(uint256[MAX_CALL_NAMED])  # [request][named]
    servers: DynArray[uint256, MAX_CALL_SERVERS] = []
    server_paid: uint256[MAX_CALL_SERVERS] = empty(uint256[MAX_CALL_SERVERS])
    server_units: uint256[MAX_CALL_SERVERS] = empty(uint256[MAX_CALL_SERVERS])
    over_capacity: bool = False
    subsidy: uint256 = 0

    for t: Task in _tasks:
        assert self.task_commitment[_round][t.task] == empty(bytes32), (
            "market: task already opened"
        )
        state: uint8 = self.requests[t.request].status
        assert state != 0, "market: unknown request"
        assert state != CLOSED, "market: request is closed"
        assert state != ASSIGNED or self.requests[t.request].round == _round, (
            "market: request served in another round"
        )
        assert _round <= self.requests[t.request].expires, "market: request expired"
        named: DynArray[uint256, MAX_NAMED] = self._named(t.request)
        assert len(t.assets) > 0 and len(t.payouts) == len(t.assets), (
            "market: payouts do not match assets"
        )
        assert t.fraction > 0 and t.fraction <= PPB, "market: malformed task"
        # Linear searches, inline: an internal call would copy the whole list.
        k: uint256 = len(requests)
        for i: uint256 in range(len(requests), bound=MAX_BATCH):
            if requests[i] == t.request:
                k = i
                break
        if k == len(requests):
            requests.append(t.request)

        needs: DynArray[bytes32, MAX_LABELS] = self.request_capabilities[t.request]
        demand: DynArray[Amount, MAX_RESOURCES] = self.request_demand[t.request]
        replicas: uint256 = 0
        bound: uint256 = 0
        capable: bool = True
        paid_out: uint256 = 0
        for i: uint256 in range(len(t.assets), bound=MAX_TASK_ASSETS):
            asset: uint256 = t.assets[i]
            for j: uint256 in range(i, bound=MAX_TASK_ASSETS):
                assert t.assets[j] != asset, "market: task assets repeat"
            status: uint8 = self.assets[asset].status
            assert status != UNUSED, "market: unknown asset"
            assert status == ACTIVE, "market: asset not active"
            kind: uint8 = self.assets[asset].kind
            assert kind != 0, "market: asset has no offer from its owner"
            j: uint256 = max_value(uint256)  # its place among the named assets
            for n: uint256 in range(len(named), bound=MAX_NAMED):
                if named[n] == asset:
                    j = n
                    break
            version: uint256 = self.assets[asset].version
            if kind == SERVER:
                replicas += 1
                for label: bytes32 in needs:
                    capable = capable and self.offer_capability[asset][version][label]
            else:
                assert j != max_value(uint256), (
                    "market: task binds an asset its request does not name"
                )
            self.assets[asset].open_tasks += 1
            payout: uint256 = t.payouts[i]
            paid_out += payout
            if j != max_value(uint256):  # paid as a named asset, at its price
                bound += 1
                named_paid[k * MAX_NAMED + j] += payout
                continue
            # a server: paid at its ask, within its capacity (both checked after the loop)
            s: uint256 = len(servers)
            for i_: uint256 in range(len(servers), bound=MAX_CALL_SERVERS):
                if servers[i_] == asset:
                    s = i_
                    break
            if s == len(servers):
                assert s < MAX_CALL_SERVERS, "market: too many servers in one call"
                servers.append(asset)
            server_paid[s] += payout
            for item: Amount in demand:
                units: uint256 = item.amount * t.fraction
                total: uint256 = self.usage[_round][asset][item.resource] + units
                self.usage[_round][asset][item.resource] = total
                if total > self.offer_capacity[asset][version][item.resource] * PPB:
                    over_capacity = True
                server_units[s] += self.offer_unit_cost[asset][version][item.resource] * units

        assert bound == len(named), "market: task must bind every asset its request names"
        if t.fraction == PPB:
            assert replicas == self.requests[t.request].replicas, (
                "market: servers do not match the replicas"
            )
        else:
            assert replicas == 1 and self.requests[t.request].replicas == 1, (
                "market: servers do not match the replicas"
            )
        served[k] += t.fraction
        assert self.requests[t.request].served + served[k] <= PPB, (
            "market: request would be served more than once"
        )
        assert capable, "market: server lacks a capability the request needs"
        task_subsidy: uint256 = 0
        if paid_out > t.charge:
            task_subsidy = paid_out - t.charge
        assert _margin_to != TO_POOL or task_subsidy == 0, (
            "market: a round whose margin goes to the pool cannot be subsidised"
        )
        subsidy += task_subsidy
        charged[k] += t.charge
        opened[k] += 1
        self.task_commitment[_round][t.task] = self._commitment(_round, t, _margin_to)
        self.task_held[_round][t.task] = t.charge + task_subsidy
        log TaskOpened(
            round=_round,
            task=t.task,
            request=t.request,
            charge=t.charge,
            paid_out=paid_out,
            subsidy=task_subsidy,
        )

    assert not over_capacity, "market: server usage would exceed its capacity"
    # A server's payouts in this call cover its ask: its fixed cost once per round (unless
    # an earlier call of the round paid it) and its unit costs on what this call uses.
    for s: uint256 in range(len(servers), bound=MAX_CALL_SERVERS):
        asset: uint256 = servers[s]
        ask: uint256 = (server_units[s] + PPB - 1) // PPB
        if not self.used[_round][asset]:
            ask += self.assets[asset].cost
            self.used[_round][asset] = True
        assert server_paid[s] >= ask, "market: server paid below its ask"
    for k: uint256 in range(len(requests), bound=MAX_BATCH):
        named: DynArray[uint256, MAX_NAMED] = self._named(requests[k])
        for j: uint256 in range(len(named), bound=MAX_NAMED):
            price: uint256 = self.assets[named[j]].cost * served[k] // PPB
            assert named_paid[k * MAX_NAMED + j] >= price, (
                "market: named asset paid below its price"
            )
    for k: uint256 in range(len(requests), bound=MAX_BATCH):
        request: uint256 = requests[k]
        assert self.escrows[request] >= charged[k], "market: escrow too small"
        self.escrows[request] -= charged[k]
        self.requests[request].status = ASSIGNED
        self.requests[request].round = _round
        self.requests[request].served += served[k]
        self.requests[request].open_tasks += opened[k]
    if subsidy > 0:  # only the operator subsidises (a pool-held round was refused above)
        assert self.balances[admin] >= subsidy, "market: insufficient balance"
        self.balances[admin] -= subsidy
    self._reach_round(_round)


# --- settling tasks ----------------------------------------------------------------------


@internal
@view
def _updated_stake(_stake: uint256, _success: bool) -> uint256:
    # IntegerRule.updated_stake. A penalty takes at most the whole stake (tokens cannot go
    # negative); with removal or a floor the rule never asks for more.
    if not moves_stakes:
        return _stake
    stake: uint256 = 0
    if _success:
        stake = _stake + reward
    elif _stake > penalty:
        stake = _stake - penalty
    return max(min(stake, stake_cap), stake_floor)


@internal
def _settle(_round: uint256, _item: Settlement):
    t: Task = _item.task
    commitment: bytes32 = self.task_commitment[_round][t.task]
    assert commitment != empty(bytes32), "market: unknown task"
    assert commitment != SETTLED, "market: task already settled"
    assert commitment == self._commitment(_round, t, _item.margin_to), (
        "market: task terms differ from the opened ones"
    )
    paid_out: uint256 = 0
    for payout: uint256 in t.payouts:
        paid_out += payout
    held: uint256 = self.task_held[_round][t.task]
    to_holder: uint256 = 0
    charge: uint256 = 0
    margin: int256 = 0
    if _item.paid:
        for i: uint256 in range(len(t.assets), bound=MAX_TASK_ASSETS):
            if t.payouts[i] > 0:
                self.balances[self.assets[t.assets[i]].owner] += t.payouts[i]
        to_holder = held - paid_out  # the margin; 0 when subsidised
        charge = t.charge
        margin = convert(t.charge, int256) - convert(paid_out, int256)
    else:
        self.escrows[t.request] += t.charge
        to_holder = held - t.charge  # the subsidy back
    pool_in: uint256 = 0
    if _item.margin_to == TO_POOL:
        pool_in = to_holder
    elif to_holder > 0:
        self.balances[admin] += to_holder

    # The collective rule on every asset of the task that is still active.
    pool_out: uint256 = 0
    for asset: uint256 in t.assets:
        before: uint256 = self.assets[asset].stake
        after: uint256 = before
        active: bool = self.assets[asset].status == ACTIVE
        if active:
            after = self._updated_stake(before, _item.paid)
        if after > before:
            pool_out += after - before
        else:
            pool_in += before - after
        self.assets[asset].stake = after
        self.assets[asset].open_tasks -= 1
        log StakeUpdated(round=_round, task=t.task, asset=asset, before=before, after=after)
        if active and removal and self._is_ruined(after):
            self.assets[asset].status = REMOVED
            log AssetRemoved(round=_round, task=t.task, asset=asset, stake=after)
    pool: uint256 = self.reward_pool + pool_in
    assert pool >= pool_out, "market: reward pool exhausted"
    self.reward_pool = pool - pool_out

    # The request closes with its last task; the rest of its escrow goes back.
    left: uint256 = self.requests[t.request].open_tasks - 1
    self.requests[t.request].open_tasks = left
    refunded: uint256 = 0
    if left == 0:
        owner: address = self.requests[t.request].owner
        refunded = self.escrows[t.request]
        self.escrows[t.request] = 0
        self.balances[owner] += refunded
        self.requests[t.request].status = CLOSED
        log RequestClosed(request=t.request, owner=owner, refunded=refunded)
    self.task_commitment[_round][t.task] = SETTLED
    self.task_held[_round][t.task] = 0
    log TaskSettled(
        round=_round,
        task=t.task,
        request=t.request,
        paid=_item.paid,
        charge=charge,
        margin=margin,
        refunded=refunded,
    )


@external
def settle_tasks(_round: uint256, _items: DynArray[Settlement, MAX_BATCH]):
    """The authority settles open tasks of `_round`, all or none, in order. Each item
    repeats the task's terms as opened (checked against its commitment) with the verdict:
    `paid` when it succeeded and met its SLA."""
    assert msg.sender == self.authority, "market: not the settlement authority"
    assert len(_items) > 0, "market: nothing to settle"
    for item: Settlement in _items:
        self._settle(_round, item)
    self._reach_round(_round)
