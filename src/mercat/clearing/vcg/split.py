"""The split of a surrogate solution into the providers: a multiple-subset-sum search.

When the multiple-knapsack search (`vcg.mulknap`) has the surrogate knapsack's users S
(all providers merged into one of capacity Σ c_j), its bound is reached if S can be dealt
into the providers, each within its capacity. The total waste of any such deal is fixed,
B = Σ_open c_j - w(S), and in the seed's set-up it is tiny: at n = 1000 the W*_{-i} optima
leave some 10^4 demand units unused per provider, against capacities of 10^11-10^12 units
(10^-8 of a provider). Dealing providers one at a time, each taking the first filling
within an even share of B (`mulknap._split`), then fails where a deal exists: a small
provider (three to nine users) has few fillings, the nearest one may waste more than its
share, and the providers after it are left without budget.

`split_exactly` is the search the fast deal is not: depth first over the open providers,
smallest first, each taking in turn its *listed fillings* (subsets of the users still to
place, eligible for it, weighing between c_j - (waste left) and c_j, up to LISTED of them,
least waste first), the largest provider taking the rest when it fits. A small provider's
fillings are listed by meeting in the middle (`list_by_halves`: few fillings among many
users, which a depth-first listing reaches too slowly); a larger one's depth first
(`list_fillings`), and when that finds none within LIST_NODES, by one subset-sum search
(depth first, then meeting in the middle: `integer_knapsack.fill`). With no limit reached
the search is complete: it finds a deal whenever one exists. Its limits (LISTED fillings
per provider, `node_limit` listings in all) make it a heuristic otherwise; it never
returns a deal that does not fit, so it cannot cost a proof anything but time.

`split_reference` is its readable twin (every placement, plain Python); the tests hold the
two to the same answer wherever the compiled search is complete.
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from mercat.clearing.vcg.integer_knapsack import fill

LISTED = 16
"""Fillings of one provider tried, least waste first, before the search backtracks past it."""

LIST_NODES = 20_000
"""Depth-first nodes of one listing of a provider's fillings."""

SPLIT_NODES = 400
"""Listings of one split search (its node limit) at a node of the multiple-knapsack search."""

FILL_NODES = 100_000
"""Depth-first nodes of the second-largest provider's subset-sum (then meet in the middle)."""


@njit(cache=True, nogil=True)
def list_fillings(items, nitems, w, low, high, max_out, node_limit, out, out_starts):
    """Subsets of items[:nitems] (heaviest first) weighing in [low, high], depth first,
    at most max_out of them, written to out / out_starts (subset s is
    out[out_starts[s]:out_starts[s + 1]]), ordered by decreasing weight (least waste
    first). Returns (count, complete): complete when every such subset was listed."""
    suffix = np.zeros(nitems + 1, dtype=np.int64)
    for k in range(nitems - 1, -1, -1):
        suffix[k] = suffix[k + 1] + w[items[k]]
    found_w = np.empty(max_out, dtype=np.int64)
    found = np.zeros((max_out, nitems), dtype=np.bool_)
    x = np.zeros(nitems, dtype=np.bool_)
    count = 0
    complete = True
    k = 0
    cw = 0
    nodes = 0
    while True:
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        # Extend while the path can still reach `low`, taking each item that fits.
        if k < nitems and cw + suffix[k] >= low:
            i = items[k]
            if w[i] <= high - cw:
                x[k] = True
                cw += w[i]
                if cw >= low:
                    if count == max_out:
                        complete = False
                        break
                    found_w[count] = cw
                    found[count, :] = x
                    count += 1
            k += 1
            continue
        j = k - 1  # backtrack: the deepest included item switches to excluded
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            break
        x[j] = False
        cw -= w[items[j]]
        k = j + 1
    order = np.argsort(-found_w[:count], kind="mergesort")
    used = out_starts[0]
    for r in range(count):
        s = order[r]
        for q in range(nitems):
            if found[s, q]:
                out[used] = items[q]
                used += 1
        out_starts[r + 1] = used
    if low <= 0 and complete:  # the empty filling: the provider takes nobody
        if count == max_out:
            complete = False
        else:
            count += 1
            out_starts[count] = used
    return count, complete


HALF_SUBSETS = 1 << 18
"""Subsets of one half listed by meeting in the middle before it gives up (then depth first)."""


@njit(cache=True, nogil=True)
def _half_subsets(half, nhalf, w, high, limit):
    """Every subset of half[:nhalf] weighing at most `high`, as (sums, masks, count): bit b
    of a mask is half[b]. count = -1 when there are more than `limit`."""
    sums = np.empty(1024, dtype=np.int64)
    masks = np.empty(1024, dtype=np.int64)
    sums[0] = 0
    masks[0] = 0
    count = 1
    for b in range(nhalf):
        wb = w[half[b]]
        if wb > high:
            continue
        grown = count
        for s in range(count):
            if sums[s] + wb <= high:
                if grown == limit:
                    return sums, masks, -1
                if grown == sums.shape[0]:
                    bigger = np.empty(2 * grown, dtype=np.int64)
                    bigger[:grown] = sums[:grown]
                    sums = bigger
                    bigger = np.empty(2 * grown, dtype=np.int64)
                    bigger[:grown] = masks[:grown]
                    masks = bigger
                sums[grown] = sums[s] + wb
                masks[grown] = masks[s] | (np.int64(1) << b)
                grown += 1
        count = grown
    return sums, masks, count


@njit(cache=True, nogil=True)
def list_by_halves(items, nitems, w, low, high, max_out, limit, out, out_starts):
    """`list_fillings` by meeting in the middle, for providers whose fillings are few among
    many users (a small provider): the items dealt alternately into two halves, each
    half's subsets up to `high` listed and sorted, and every pair weighing in [low, high]
    found by a sweep. Returns (count, complete) like `list_fillings`; complete is False
    (nothing listed) when a half has more than `limit` subsets or more than 63 items."""
    if nitems > 126:
        return 0, False
    na = (nitems + 1) // 2
    nb = nitems // 2
    half_a = np.empty(na, dtype=np.int64)
    half_b = np.empty(max(nb, 1), dtype=np.int64)
    for k in range(nitems):
        if k % 2 == 0:
            half_a[k // 2] = items[k]
        else:
            half_b[k // 2] = items[k]
    sums_a, masks_a, count_a = _half_subsets(half_a, na, w, high, limit)
    if count_a < 0:
        return 0, False
    sums_b, masks_b, count_b = _half_subsets(half_b, nb, w, high, limit)
    if count_b < 0:
        return 0, False
    order_a = np.argsort(sums_a[:count_a])
    order_b = np.argsort(sums_b[:count_b])
    # Pairs in the window, the heaviest kept: sums_a ascending, sums_b's window moving down.
    keep = 4 * max_out
    pair_a = np.empty(keep, dtype=np.int64)
    pair_b = np.empty(keep, dtype=np.int64)
    pair_w = np.empty(keep, dtype=np.int64)
    npairs = 0
    complete = True
    top = count_b - 1
    for ra in range(count_a):
        a = order_a[ra]
        while top >= 0 and sums_a[a] + sums_b[order_b[top]] > high:
            top -= 1
        if top < 0:
            break
        rb = top
        while rb >= 0 and sums_a[a] + sums_b[order_b[rb]] >= low:
            if npairs == keep:
                complete = False
                break
            pair_a[npairs] = a
            pair_b[npairs] = order_b[rb]
            pair_w[npairs] = sums_a[a] + sums_b[order_b[rb]]
            npairs += 1
            rb -= 1
        if not complete:
            break
    order = np.argsort(-pair_w[:npairs], kind="mergesort")
    count = min(npairs, max_out)
    if count < npairs:
        complete = False
    used = out_starts[0]
    for r in range(count):
        s = order[r]
        for b in range(na):
            if masks_a[pair_a[s]] & (np.int64(1) << b):
                out[used] = half_a[b]
                used += 1
        for b in range(nb):
            if masks_b[pair_b[s]] & (np.int64(1) << b):
                out[used] = half_b[b]
                used += 1
        out_starts[r + 1] = used
    return count, complete


@njit(cache=True, nogil=True)
def split_exactly(chosen, count, w, first, c, open_bin, placed, node_limit):
    """Deal chosen[:count] into the open providers (c: capacities in increasing order;
    user i may use providers first[i]..), each within its capacity; placed[i] receives
    the provider of each user (left untouched for users outside `chosen`). Returns
    (found, complete, listings): complete when the search ended by itself, so that no
    deal exists if none was found."""
    m = c.shape[0]
    bins = np.empty(m, dtype=np.int64)
    nbins = 0
    total_cap = 0
    for j in range(m):
        if open_bin[j]:
            bins[nbins] = j
            nbins += 1
            total_cap += c[j]
    if nbins == 0:
        return count == 0, True, 0
    total_w = 0
    for k in range(count):
        total_w += w[chosen[k]]
    if total_w > total_cap:
        return False, True, 0
    for k in range(count):
        placed[chosen[k]] = -1
    # The users heaviest first (ties: the given order); `free[i]`: not yet dealt.
    weights = np.empty(count, dtype=np.int64)
    for k in range(count):
        weights[k] = -w[chosen[k]]
    order = np.argsort(weights, kind="mergesort")
    users = np.empty(count, dtype=np.int64)
    for k in range(count):
        users[k] = chosen[order[k]]
    # Per depth d (bins[d]): its fillings in pool[starts[base[d]]...], how many, which next.
    capacity = 1024
    pool = np.empty(capacity * 4, dtype=np.int64)
    starts = np.zeros(capacity + 1, dtype=np.int64)
    base = np.zeros(nbins + 1, dtype=np.int64)
    nfill = np.zeros(nbins, dtype=np.int64)
    nxt = np.zeros(nbins, dtype=np.int64)
    budget = np.zeros(nbins + 1, dtype=np.int64)
    budget[0] = total_cap - total_w
    eligible = np.empty(count, dtype=np.int64)
    taken = np.empty(count, dtype=np.int64)
    fill_stats = np.zeros(2, dtype=np.int64)
    listings = 0
    complete = True
    depth = 0
    listed = False  # whether the fillings of bins[depth] are listed already
    while True:
        if not listed:
            j = bins[depth]
            neligible = 0
            rest_w = 0
            for k in range(count):
                i = users[k]
                if placed[i] < 0:
                    rest_w += w[i]
                    if first[i] <= j and w[i] <= c[j]:
                        eligible[neligible] = i
                        neligible += 1
            if depth == nbins - 1:  # the largest provider takes the rest
                ok = rest_w <= c[j]
                if ok:
                    for k in range(count):
                        if placed[users[k]] < 0 and first[users[k]] > j:
                            ok = False
                            break
                if ok:
                    for k in range(count):
                        if placed[users[k]] < 0:
                            placed[users[k]] = j
                    return True, complete, listings
                listed = True
                nfill[depth] = 0
                nxt[depth] = 0
                base[depth + 1] = base[depth]
            else:
                listings += 1
                if listings > node_limit:
                    complete = False
                    break
                low = c[j] - budget[depth]
                if depth == nbins - 2:  # the rest must fit the largest provider
                    low = max(low, rest_w - c[bins[nbins - 1]])
                low = max(low, 0)
                need = base[depth] + LISTED + 1  # the starts this depth may write
                if need + 1 > starts.shape[0]:
                    grown = np.zeros(2 * need + 2, dtype=np.int64)
                    grown[: base[depth] + 1] = starts[: base[depth] + 1]
                    starts = grown
                room = starts[base[depth]] + LISTED * neligible
                if room > pool.shape[0]:
                    grown = np.empty(2 * room, dtype=np.int64)
                    grown[: starts[base[depth]]] = pool[: starts[base[depth]]]
                    pool = grown
                got, done = list_by_halves(
                    eligible, neligible, w, low, c[j], LISTED, HALF_SUBSETS, pool,
                    starts[base[depth]:],
                )  # fmt: skip
                if got == 0 and not done:
                    got, done = list_fillings(
                        eligible, neligible, w, low, c[j], LISTED, LIST_NODES, pool,
                        starts[base[depth]:],
                    )  # fmt: skip
                if not done:
                    complete = False
                if got == 0 and not done:
                    # No filling within the listing's nodes: one subset-sum search,
                    # depth first and meeting in the middle, for one that reaches low.
                    weight, ntaken = fill(
                        eligible, neligible, w, c[j], low, FILL_NODES, taken, fill_stats
                    )
                    if weight >= low:
                        at = starts[base[depth]]
                        for q in range(ntaken):
                            pool[at + q] = taken[q]
                        starts[base[depth] + 1] = at + ntaken
                        got = 1
                nfill[depth] = got
                nxt[depth] = 0
                base[depth + 1] = base[depth] + got
                listed = True
        # Take the next filling of bins[depth], or backtrack.
        if nxt[depth] < nfill[depth]:
            s = base[depth] + nxt[depth]
            if nxt[depth] > 0:  # undo the previous filling
                for q in range(starts[s - 1], starts[s]):
                    placed[pool[q]] = -1
            j = bins[depth]
            weight = 0
            for q in range(starts[s], starts[s + 1]):
                placed[pool[q]] = j
                weight += w[pool[q]]
            nxt[depth] += 1
            budget[depth + 1] = budget[depth] - (c[j] - weight)
            depth += 1
            listed = False
            continue
        if nxt[depth] > 0:
            s = base[depth] + nxt[depth] - 1
            for q in range(starts[s], starts[s + 1]):
                placed[pool[q]] = -1
        if depth == 0:
            break
        depth -= 1
        listed = True
    for k in range(count):
        placed[chosen[k]] = -1
    return False, complete, listings


def split_reference(
    users: list[int],
    weights: np.ndarray,
    first: np.ndarray,
    capacities: np.ndarray,
    open_bin: np.ndarray,
) -> dict[int, int] | None:
    """The readable twin: every placement of `users` into the open providers (provider k
    allowed for user i when first[i] <= k), or None when none fits."""
    allowed = [k for k in range(len(capacities)) if open_bin[k]]
    for choice in itertools.product(allowed, repeat=len(users)):
        if any(k < first[i] for i, k in zip(users, choice, strict=True)):
            continue
        loads = dict.fromkeys(allowed, 0)
        for i, k in zip(users, choice, strict=True):
            loads[k] += int(weights[i])
        if all(loads[k] <= capacities[k] for k in allowed):
            return dict(zip(users, choice, strict=True))
    return None
