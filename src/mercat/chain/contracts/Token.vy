# pragma version ~=0.4.3
"""
@title Mercat token
@notice A plain ERC-20 in integer base units. The minter (the on-ramp that brings value
        into the system from outside) creates tokens; any holder may burn its own tokens
        (the off-ramp). Nothing else creates or destroys a token, so the total supply
        changes only by `mint` and `burn`, each logged as a Transfer from or to the
        zero address.

        An allowance of max_value(uint256) is unlimited: `transferFrom` never draws it
        down (the convention of OpenZeppelin's ERC20 since v4, and of most tokens), so a
        wallet that approved the market without limit stays that way however much it
        deposits. Any smaller allowance is drawn down by exactly what is moved.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

implements: IERC20
implements: IERC20Detailed

name: public(String[32])
symbol: public(String[32])
decimals: public(uint8)

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)
minter: public(address)


@deploy
def __init__(_name: String[32], _symbol: String[32], _decimals: uint8):
    self.name = _name
    self.symbol = _symbol
    self.decimals = _decimals
    self.minter = msg.sender


@internal
def _move(_from: address, _to: address, _value: uint256):
    assert _to != empty(address), "token: transfer to the zero address"
    assert self.balanceOf[_from] >= _value, "token: insufficient balance"
    self.balanceOf[_from] -= _value
    self.balanceOf[_to] += _value
    log IERC20.Transfer(sender=_from, receiver=_to, value=_value)


@external
def transfer(_to: address, _value: uint256) -> bool:
    self._move(msg.sender, _to, _value)
    return True


@external
def transferFrom(_from: address, _to: address, _value: uint256) -> bool:
    allowed: uint256 = self.allowance[_from][msg.sender]
    assert allowed >= _value, "token: insufficient allowance"
    if allowed != max_value(uint256):  # unlimited: never drawn down (see the notice)
        self.allowance[_from][msg.sender] = allowed - _value
    self._move(_from, _to, _value)
    return True


@external
def approve(_spender: address, _value: uint256) -> bool:
    self.allowance[msg.sender][_spender] = _value
    log IERC20.Approval(owner=msg.sender, spender=_spender, value=_value)
    return True


@external
def mint(_to: address, _value: uint256):
    assert msg.sender == self.minter, "token: only the minter mints"
    assert _to != empty(address), "token: mint to the zero address"
    self.totalSupply += _value
    self.balanceOf[_to] += _value
    log IERC20.Transfer(sender=empty(address), receiver=_to, value=_value)


@external
def burn(_value: uint256):
    assert self.balanceOf[msg.sender] >= _value, "token: insufficient balance"
    self.balanceOf[msg.sender] -= _value
    self.totalSupply -= _value
    log IERC20.Transfer(sender=msg.sender, receiver=empty(address), value=_value)
