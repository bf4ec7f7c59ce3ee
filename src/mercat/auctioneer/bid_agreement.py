"""Bid agreement (seed 003, Property 1): from the vectors b^j the bidders sent to each
provider j, every provider outputs the same vector b, or ⊥.

Property 1 asks for (1) eventual agreement and validity when every provider follows the
protocol (a bidder who sent the same bid b'_i to every provider gets b_i = b'_i) and
(2) k-resiliency for solution preference.

The seed's construction runs one rational consensus (Afek et al., its ref. [24]) per bit of
each bid. That consensus is *knowledge sharing* followed by a fixed decision function: every
provider learns every provider's input, in a way that lets no one choose its input after
seeing the others', and applies the same function to them. We implement exactly that shape,
once for all bidders and bits at the same time:

1. Commit (phase 1): provider j sends every peer H(round, j, digest(b^j), salt_j).
2. Reveal (phase 2), only after holding all m commitments: j sends (digest(b^j), salt_j)
   and a digest of the m commitments it holds. A reveal that does not open its commitment,
   or an echo that differs from one's own (somebody sent different commitments to different
   peers), is ⊥. So every provider that goes on holds the *same* m report digests, fixed
   before any was seen: a coalition cannot pick its report after reading the honest ones.
   If the m digests are equal (every bidder consistent, nobody lying: the common case),
   every provider already holds every report, its own. Otherwise (phase 2b) every provider
   sends its full report, which must match its revealed digest. All providers see the same
   digests, so all take the same branch; the common case moves 32 bytes per report instead
   of the whole vector.
3. Decide, with one of two functions (`RULES`), identical at every provider:
   - "bitwise" (the seed's construction): each bid is a stream of 192 bits (flags, price,
     quantity; `BidVector.words`); for every bidder and bit, the consensus outputs the bit
     that more than m/2 reports hold (0 on a tie), and the decoded bid is kept if it is
     valid, else replaced by ⊥ (the seed's "pre-determined valid bid" is the neutral one).
   - "value" (the default): for every bidder, the bid that more than m/2 reports hold
     exactly, else ⊥. The same majority, taken over whole bids rather than over bits.

Why the default is "value": both rules give validity even when up to k < m/2 providers lie
(a consistent bidder's bid is held by the m-k > m/2 honest reports, so the coalition cannot
move a single bit of it), and both confine a coalition's influence to bidders who sent
different bids to different providers, which Definition 1 leaves free. Inside that freedom,
"bitwise" lets a coalition splice bits of different bids into a bid that nobody sent, while
"value" only ever outputs a bid that some bidder really sent (or ⊥). Both cost one vectorised
pass over the m × n reports. The tests check Property 1 for both rules.

Equivocation (a provider telling different peers different things) is caught in step 2, and
again by the input validation that follows in the allocator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from mercat.auctioneer.bids import BidVector, merge_ids
from mercat.errors import AuctioneerConfigError

RULES = ("value", "bitwise")
SALT_BYTES = 32


def report_commitment(round_id: int, sender: str, report_digest: bytes, salt: bytes) -> bytes:
    """H(round, sender, digest(report), salt): binds a provider to its report."""
    h = hashlib.sha256(b"mercat/report-commitment/1")
    h.update(round_id.to_bytes(8, "little", signed=True))
    h.update(sender.encode() + b"\x00")
    h.update(report_digest)
    h.update(salt)
    return h.digest()


def opens(commitment: bytes, round_id: int, sender: str, report_digest: bytes, salt: bytes) -> bool:
    """Whether (digest, salt) opens `commitment`."""
    return report_commitment(round_id, sender, report_digest, salt) == commitment


def commitments_digest(commitments: Sequence[bytes]) -> bytes:
    """One digest of the commitments a provider holds, in provider order (the echo)."""
    h = hashlib.sha256(b"mercat/commitments/1")
    for c in commitments:
        h.update(len(c).to_bytes(2, "little"))
        h.update(c)
    return h.digest()


def report_matrix(reports: Sequence[BidVector]) -> tuple[tuple[str, ...], np.ndarray]:
    """The union of bidder ids and an (m, n, 3) uint64 array of the reports' words, zeros
    (⊥) where a report holds no bid for a bidder."""
    ids = merge_ids(reports)
    m, n = len(reports), len(ids)
    words = np.zeros((m, n, 3), dtype=np.uint64)
    if n == 0:
        return ids, words
    universe = None
    for j, report in enumerate(reports):
        if report.ids == ids:
            words[j] = report.words()
            continue
        if len(report) == 0:
            continue
        if universe is None:
            universe = np.array(ids)
        positions = np.searchsorted(universe, np.array(report.ids))
        words[j, positions] = report.words()
    return ids, words


def decide(reports: Sequence[BidVector], rule: str = "value") -> BidVector:
    """The agreed vector from the m reports (in provider order), by `rule`; ⊥ entries are
    left out and invalid bids become ⊥."""
    if rule not in RULES:
        raise AuctioneerConfigError(f"unknown bid-agreement rule {rule!r}; known: {RULES}")
    m = len(reports)
    if m == 0:
        return BidVector.empty()
    if all(r == reports[0] for r in reports[1:]):
        # Unanimous reports (every bidder consistent, nobody lying): both rules return them.
        return reports[0].valid()
    ids, words = report_matrix(reports)
    if len(ids) == 0:
        return BidVector.empty()
    decided = _value_majority(words) if rule == "value" else _bitwise_majority(words)
    return BidVector.from_words(ids, decided).valid()


def _value_majority(words: np.ndarray) -> np.ndarray:
    """Per bidder, the word triple held by more than m/2 reports, else zeros (⊥)."""
    m, n, _ = words.shape
    out = np.zeros((n, 3), dtype=np.uint64)
    decided = np.zeros(n, dtype=bool)
    for j in range(m):
        same = np.all(words == words[j][None, :, :], axis=2)  # (m, n): reports equal to j's
        wins = (2 * same.sum(axis=0) > m) & ~decided
        out[wins] = words[j, wins]
        decided |= wins
    return out


def _bitwise_majority(words: np.ndarray) -> np.ndarray:
    """Per bidder and bit, the bit held by more than m/2 reports (0 on a tie)."""
    m, n, _ = words.shape
    as_bytes = np.ascontiguousarray(words.astype("<u8")).view(np.uint8).reshape(m, n * 24)
    bits = np.unpackbits(as_bytes, axis=1)
    majority = (2 * bits.sum(axis=0, dtype=np.int64) > m).astype(np.uint8)
    packed = np.packbits(majority).view("<u8").astype(np.uint64)
    return packed.reshape(n, 3)
