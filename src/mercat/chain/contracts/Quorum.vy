# pragma version ~=0.4.3
"""
@title Mercat oracle quorum
@notice A settlement authority made of n oracles. Each oracle reports, once per task, what
        it saw: whether the task succeeded, whether it met its SLA, and a digest of its
        result. Once q oracles report the same verdict, the verdict is decided; then anyone
        may settle the task through this contract, which hands the market the decided
        verdict (the task pays when it succeeded and met its SLA). With 2q > n two
        different verdicts cannot both gather q reports, so a task has at most one verdict,
        and the market's own guard (a settled task cannot settle again) backs that up.

        A report that disagrees with the others only counts for its own verdict; a report
        that arrives after the verdict is logged as late and changes nothing else. Both stay
        on record in the logs. This is `mercat.oracle.quorum.tally` on chain: the verdict
        is (success, sla_met, digest), the latency is not part of it.
"""

# The market's task and settlement, as Market.vy declares them.
MAX_TASK_ASSETS: constant(uint256) = 32
MAX_BATCH: constant(uint256) = 32
MAX_ORACLES: constant(uint256) = 32


struct Task:
    task: uint256
    request: uint256
    assets: DynArray[uint256, MAX_TASK_ASSETS]
    payouts: DynArray[uint256, MAX_TASK_ASSETS]
    charge: uint256
    fraction: uint256


struct Settlement:
    task: Task
    margin_to: uint8
    paid: bool


struct Verdict:
    task: uint256
    success: bool
    sla_met: bool
    digest: bytes32  # of the task's result (empty: none)


interface Market:
    def settle_tasks(_round: uint256, _items: DynArray[Settlement, MAX_BATCH]): nonpayable


event Reported:
    round: indexed(uint256)
    task: indexed(uint256)
    oracle: indexed(address)
    success: bool
    sla_met: bool
    digest: bytes32
    support: uint256  # reports for this verdict so far (0 for a late report)
    late: bool

event QuorumReached:
    round: indexed(uint256)
    task: indexed(uint256)
    success: bool
    sla_met: bool
    digest: bytes32


# A task's tally in one word: bit i for the i-th oracle that reported, then the decision.
DECIDED: constant(uint256) = 1 << 32
SUCCESS: constant(uint256) = 1 << 33
SLA_MET: constant(uint256) = 1 << 34

market: public(immutable(Market))
threshold: public(immutable(uint256))
oracle_count: public(immutable(uint256))
oracle_index: public(HashMap[address, uint256])  # 1-based; 0: not an oracle

tally: public(HashMap[uint256, HashMap[uint256, uint256]])  # round -> task -> word
# Reports per verdict; the key covers round and task.
support: public(HashMap[bytes32, uint256])


@deploy
def __init__(_market: Market, _oracles: DynArray[address, MAX_ORACLES], _threshold: uint256):
    n: uint256 = len(_oracles)
    assert _threshold > 0 and _threshold <= n, "quorum: threshold outside 1..n"
    assert 2 * _threshold > n, "quorum: threshold must exceed half the oracles"
    for i: uint256 in range(n, bound=MAX_ORACLES):
        oracle: address = _oracles[i]
        assert oracle != empty(address), "quorum: oracle is the zero address"
        assert self.oracle_index[oracle] == 0, "quorum: oracle listed twice"
        self.oracle_index[oracle] = i + 1
    market = _market
    threshold = _threshold
    oracle_count = n


@external
def report(_round: uint256, _verdicts: DynArray[Verdict, MAX_BATCH]):
    """The caller's verdicts on tasks of `_round`, one per task (a second report of the
    same task by the same oracle is refused)."""
    index: uint256 = self.oracle_index[msg.sender]
    assert index != 0, "quorum: not an oracle"
    bit: uint256 = 1 << (index - 1)
    for v: Verdict in _verdicts:
        word: uint256 = self.tally[_round][v.task]
        assert word & bit == 0, "quorum: oracle already reported"
        word |= bit
        if word & DECIDED != 0:
            self.tally[_round][v.task] = word
            log Reported(
                round=_round, task=v.task, oracle=msg.sender, success=v.success,
                sla_met=v.sla_met, digest=v.digest, support=0, late=True,
            )
            continue
        key: bytes32 = keccak256(abi_encode(_round, v.task, v.success, v.sla_met, v.digest))
        count: uint256 = self.support[key] + 1
        self.support[key] = count
        log Reported(
            round=_round, task=v.task, oracle=msg.sender, success=v.success,
            sla_met=v.sla_met, digest=v.digest, support=count, late=False,
        )
        if count == threshold:
            word |= DECIDED
            if v.success:
                word |= SUCCESS
            if v.sla_met:
                word |= SLA_MET
            log QuorumReached(
                round=_round, task=v.task, success=v.success, sla_met=v.sla_met,
                digest=v.digest,
            )
        self.tally[_round][v.task] = word


@external
@view
def verdict(_round: uint256, _task: uint256) -> (bool, bool, bool):
    """(decided, success, sla_met) of a task."""
    word: uint256 = self.tally[_round][_task]
    return word & DECIDED != 0, word & SUCCESS != 0, word & SLA_MET != 0


@external
def settle_tasks(_round: uint256, _items: DynArray[Settlement, MAX_BATCH]):
    """Anyone settles tasks whose verdict is decided: each item repeats the task's terms as
    opened (the market checks them); its `paid` is replaced by the quorum's verdict."""
    items: DynArray[Settlement, MAX_BATCH] = _items
    for i: uint256 in range(len(items), bound=MAX_BATCH):
        word: uint256 = self.tally[_round][items[i].task.task]
        assert word & DECIDED != 0, "quorum: no verdict yet"
        items[i].paid = word & SUCCESS != 0 and word & SLA_MET != 0
    extcall market.settle_tasks(_round, items)
