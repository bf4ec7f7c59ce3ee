"""Data transfer (seed 003, Property 5): a set S of providers hands a value to a set O.

Given |S|, |O| > k and the same input v at every member of S: (1) if all follow the
protocol, every member of O outputs v; (2) k-resiliency for solution preference.

The seed's implementation: every member of S broadcasts its value to O; a member of O that
sees two different values outputs ⊥. We also require a value from *every* member of S before
the deadline: with |S| ≥ k+1 at least one member of S is honest, so accepting a value that
only some members sent would let a coalition inside S answer alone. Then no coalition of at
most k providers can make a member of O output any v' ∉ {v, ⊥}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mercat.errors import RoundAbortedError


def receive(task: str, values: Mapping[str, bytes], senders: Sequence[str]) -> bytes:
    """The value every member of S sent, or RoundAbortedError (⊥)."""
    missing = [s for s in senders if s not in values]
    if missing:
        raise RoundAbortedError(f"data transfer of {task}: nothing from {', '.join(missing)}")
    first = values[senders[0]]
    different = [s for s in senders[1:] if values[s] != first]
    if different:
        raise RoundAbortedError(
            f"data transfer of {task}: {', '.join(different)} sent another value than {senders[0]}"
        )
    return first
