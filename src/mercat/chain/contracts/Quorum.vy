# pragma version ~=0.4.3
"""
@title Mercat oracle quorum
@notice A settlement authority made of n oracles: a task settles on the market once q of
        them have reported the same settlement (round, task, request, assets, payouts,
        outcome). With 2q > n two different settlements of one task cannot both gather q
        reports, so the quorum settles each task at most once, and the market's own
        idempotency guard (a second settle of an id reverts) backs that up.

        Each oracle reports once per task. A report that disagrees with the others only
        counts for its own version; a report that arrives after the task settled is logged
        as late and changes nothing else. Both stay on record in the logs.
"""

interface Market:
    def settle(
        _round: uint256,
        _task: uint256,
        _request: uint256,
        _assets: DynArray[uint256, 16],
        _payouts: DynArray[uint256, 16],
        _success: bool,
    ): nonpayable

MAX_ORACLES: constant(uint256) = 32


event Reported:
    round: indexed(uint256)
    task: indexed(uint256)
    oracle: indexed(address)
    digest: bytes32
    support: uint256
    late: bool

event QuorumReached:
    round: indexed(uint256)
    task: indexed(uint256)
    digest: bytes32


market: public(immutable(Market))
threshold: public(immutable(uint256))
oracle_count: public(immutable(uint256))
is_oracle: public(HashMap[address, bool])

reported: public(HashMap[uint256, HashMap[uint256, HashMap[address, bool]]])
# Reports per version of a settlement; the digest already includes round and task.
support: public(HashMap[bytes32, uint256])
decided: public(HashMap[uint256, HashMap[uint256, bool]])


@deploy
def __init__(_market: Market, _oracles: DynArray[address, MAX_ORACLES], _threshold: uint256):
    n: uint256 = len(_oracles)
    assert _threshold > 0 and _threshold <= n, "quorum: threshold outside 1..n"
    assert 2 * _threshold > n, "quorum: threshold must exceed half the oracles"
    for oracle: address in _oracles:
        assert oracle != empty(address), "quorum: oracle is the zero address"
        assert not self.is_oracle[oracle], "quorum: oracle listed twice"
        self.is_oracle[oracle] = True
    market = _market
    threshold = _threshold
    oracle_count = n


@external
def report(
    _round: uint256,
    _task: uint256,
    _request: uint256,
    _assets: DynArray[uint256, 16],
    _payouts: DynArray[uint256, 16],
    _success: bool,
):
    assert self.is_oracle[msg.sender], "quorum: not an oracle"
    assert not self.reported[_round][_task][msg.sender], "quorum: oracle already reported"
    self.reported[_round][_task][msg.sender] = True
    digest: bytes32 = keccak256(abi_encode(_round, _task, _request, _assets, _payouts, _success))
    if self.decided[_round][_task]:
        log Reported(
            round=_round, task=_task, oracle=msg.sender, digest=digest, support=0, late=True
        )
        return
    count: uint256 = self.support[digest] + 1
    self.support[digest] = count
    log Reported(
        round=_round, task=_task, oracle=msg.sender, digest=digest, support=count, late=False
    )
    if count == threshold:
        self.decided[_round][_task] = True
        log QuorumReached(round=_round, task=_task, digest=digest)
        extcall market.settle(_round, _task, _request, _assets, _payouts, _success)
