"""Exact 0/1 knapsack and subset-sum on int64 weights and profits: the multiple-knapsack
search's building blocks (`vcg.mulknap`).

Everything here is compiled (numba, nogil: a provider of the distributed auctioneer runs
these searches in a worker thread, and holding the GIL for seconds would stall its event
loop). Items are given as a list of indices `cand[:ncand]` into the profit and weight
arrays, in decreasing efficiency p/w; weights are ≥ 1, profits > 0.

- `knapsack`: max Σ p subject to Σ w ≤ cap, of interest only above a `floor`. Pisinger's
  reduction first fixes the items that every subset worth more than the floor must hold or
  must avoid (`reduce_items`), then a depth-first branch and bound (include first, Dantzig
  bound from prefix sums in O(log n)) searches the rest.
- `fill`: subset-sum, a subset whose weight lies in [enough, cap]: a depth-first search,
  then meeting in the middle for targets finer than it reaches.
- `fillings`: every subset with weight in (heavier, cap] worth at least a threshold of
  float profits (the children of the search's bin completion).

All sums are exact integers. Floats enter in two places only: the fractional item of a
Dantzig bound (rounded up with a margin, `dantzig_bound`) and the float profits of
`fillings` (whose callers widen their thresholds accordingly). The readable twins are in
`mulknap_reference` and the tests compare them with brute force.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FRACTION_MARGIN = 1e-12
"""The fractional item of a Dantzig bound is rounded up by this much of its profit, and 1.
Items are sorted by float efficiency, so two whose ratios agree to 2^-52 may be out of
order: that moves the bound by at most 2^-52 of the break item's profit."""


@njit(cache=True, nogil=True)
def prefix_sums(p, w, cand, ncand):  # pragma: no cover - numba
    """Prefix sums of weights and profits over cand[:ncand]."""
    pw = np.zeros(ncand + 1, dtype=np.int64)
    pp = np.zeros(ncand + 1, dtype=np.int64)
    for k in range(ncand):
        pw[k + 1] = pw[k] + w[cand[k]]
        pp[k + 1] = pp[k] + p[cand[k]]
    return pw, pp


@njit(cache=True, nogil=True)
def dantzig_bound(k, residual, ncand, pw, pp, cand, p, w):  # pragma: no cover - numba
    """An integer ≥ the LP value of the candidates k.. within `residual` (whole items by
    efficiency, then a fraction of the break item)."""
    if k >= ncand or residual <= 0:
        return 0
    target = pw[k] + residual
    lo = k
    hi = ncand
    while lo < hi:  # largest t with pw[t] <= target: candidates k..t-1 fit whole
        mid = (lo + hi + 1) // 2
        if pw[mid] <= target:
            lo = mid
        else:
            hi = mid - 1
    bound = pp[lo] - pp[k]
    if lo < ncand:
        i = cand[lo]
        fraction = float(target - pw[lo]) * (float(p[i]) / float(w[i]))
        bound += int(fraction + float(p[i]) * FRACTION_MARGIN) + 1
    return bound


@njit(cache=True, nogil=True)
def dantzig_without(skip, residual, ncand, pw, pp, cand, p, w):  # pragma: no cover - numba
    """`dantzig_bound(0, residual, ...)` over the candidates without position `skip`."""
    if residual <= 0:
        return 0
    skip_w = w[cand[skip]]
    lo = 0
    hi = ncand
    while lo < hi:  # largest t whose prefix, less the skipped weight, fits
        mid = (lo + hi + 1) // 2
        weight = pw[mid] - (skip_w if mid > skip else 0)
        if weight <= residual:
            lo = mid
        else:
            hi = mid - 1
    # lo is never `skip` itself: the prefixes up to skip and skip + 1 weigh the same.
    bound = pp[lo] - (p[cand[skip]] if lo > skip else 0)
    if lo < ncand:
        i = cand[lo]
        used = pw[lo] - (skip_w if lo > skip else 0)
        fraction = float(residual - used) * (float(p[i]) / float(w[i]))
        bound += int(fraction + float(p[i]) * FRACTION_MARGIN) + 1
    return bound


@njit(cache=True, nogil=True)
def reduce_items(p, w, cand, ncand, cap, floor, status):  # pragma: no cover - numba
    """Pisinger's reduction: status[k] = 1 when every subset worth more than `floor` holds
    candidate k (without it the Dantzig bound is ≤ floor), -1 when none does (with it the
    bound is ≤ floor), 0 otherwise. O(n log n)."""
    pw, pp = prefix_sums(p, w, cand, ncand)
    brk = 0  # the break position: candidates before it fill the capacity greedily
    while brk < ncand and pw[brk + 1] <= cap:
        brk += 1
    for k in range(ncand):
        status[k] = 0
        i = cand[k]
        if k < brk:
            if dantzig_without(k, cap, ncand, pw, pp, cand, p, w) <= floor:
                status[k] = 1
        elif (
            w[i] > cap or p[i] + dantzig_without(k, cap - w[i], ncand, pw, pp, cand, p, w) <= floor
        ):
            status[k] = -1  # it fits nowhere, or taking it bounds every subset at ≤ floor


@njit(cache=True, nogil=True)
def knapsack(p, w, cand, ncand, cap, floor, node_limit, chosen):  # pragma: no cover - numba
    """Max Σ p over a subset of cand[:ncand] with Σ w ≤ cap, of interest above `floor`.

    Returns (value, count, complete, bound, nodes): the best subset found, worth `value` >
    floor, in chosen[:count] by efficiency (count 0 and value = floor when none was found);
    `complete` when the search finished, so that the subset is optimal or nothing beats
    the floor; `bound` ≥ the optimum in any case.
    """
    pw, pp = prefix_sums(p, w, cand, ncand)
    root_bound = dantzig_bound(0, cap, ncand, pw, pp, cand, p, w)
    if root_bound <= floor:
        return floor, 0, True, root_bound, 1
    status = np.empty(ncand, dtype=np.int64)
    reduce_items(p, w, cand, ncand, cap, floor, status)
    return knapsack_reduced(p, w, cand, ncand, cap, floor, node_limit, chosen, status, root_bound)


@njit(cache=True, nogil=True)
def knapsack_reduced(
    p, w, cand, ncand, cap, floor, node_limit, chosen, status, root_bound
):  # pragma: no cover - numba
    """`knapsack` after `reduce_items` gave `status`; `root_bound` is the Dantzig bound of
    all the candidates. Depth-first branch and bound over the status-0 candidates."""
    core = np.empty(ncand, dtype=np.int64)
    ncore = 0
    base_w = 0
    base_p = 0
    for k in range(ncand):
        if status[k] == 1:
            base_w += w[cand[k]]
            base_p += p[cand[k]]
        elif status[k] == 0:
            core[ncore] = cand[k]
            ncore += 1
    if base_w > cap:  # the forced candidates do not fit together: nothing beats the floor
        return floor, 0, True, floor, 1
    pw, pp = prefix_sums(p, w, core, ncore)
    room = cap - base_w
    x = np.zeros(ncore, dtype=np.bool_)
    best_x = np.zeros(ncore, dtype=np.bool_)
    best = floor - base_p
    found = False
    k = 0
    cw = 0
    cp = 0
    nodes = 0
    complete = True
    while True:
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        if cp > best:
            best = cp
            found = True
            best_x[:] = x
        prune = k >= ncore
        if not prune:
            prune = cp + dantzig_bound(k, room - cw, ncore, pw, pp, core, p, w) <= best
        if not prune:
            i = core[k]
            if w[i] <= room - cw:  # include first; the exclusion is visited on backtracking
                x[k] = True
                cw += w[i]
                cp += p[i]
            k += 1
            continue
        j = k - 1  # backtrack: the deepest included candidate switches to excluded
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            break
        x[j] = False
        cw -= w[core[j]]
        cp -= p[core[j]]
        k = j + 1
    count = 0
    if found:
        for k in range(ncand):
            if status[k] == 1:
                chosen[count] = cand[k]
                count += 1
        for k in range(ncore):
            if best_x[k]:
                chosen[count] = core[k]
                count += 1
        chosen[:count].sort()  # candidates are numbered in efficiency order
    value = best + base_p if found else floor
    bound = value if complete else max(root_bound, value)
    return value, count, complete, bound, nodes


# --- subset-sum ----------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def fill_depth_first(items, nitems, w, cap, enough, node_limit, taken):  # pragma: no cover
    """Subset-sum by depth-first search over items[:nitems] (heaviest first): the greedy
    filling first, then backtracking until a subset weighs at least `enough` (and at most
    cap) or the node limit. Returns (weight, count, exhausted, nodes): the heaviest subset
    seen, in taken[:count]; exhausted when the search ended by itself (the subset is then
    the heaviest that fits, or weighs `enough`)."""
    suffix = np.zeros(nitems + 1, dtype=np.int64)
    for k in range(nitems - 1, -1, -1):
        suffix[k] = suffix[k + 1] + w[items[k]]
    x = np.zeros(nitems, dtype=np.bool_)
    best_x = np.zeros(nitems, dtype=np.bool_)
    best = 0
    k = 0
    cw = 0
    nodes = 0
    exhausted = False
    while nodes < node_limit:
        nodes += 1
        if k < nitems and cw + suffix[k] > best:
            i = items[k]
            if w[i] <= cap - cw:
                x[k] = True
                cw += w[i]
            k += 1
            continue
        if cw > best:  # a leaf (or a pruned node) holds the heaviest subset of its path
            best = cw
            best_x[:] = x
        if best >= enough:
            exhausted = True
            break
        j = k - 1
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            exhausted = True
            break
        x[j] = False
        cw -= w[items[j]]
        k = j + 1
    count = 0
    for k in range(nitems):
        if best_x[k]:
            taken[count] = items[k]
            count += 1
    return best, count, exhausted, nodes


@njit(cache=True, nogil=True)
def subset_sums(items, w):  # pragma: no cover - numba
    """Σ w over every subset of `items`: subset `mask` at index mask."""
    sums = np.zeros(1 << items.shape[0], dtype=np.int64)
    for b in range(items.shape[0]):
        step = 1 << b
        for mask in range(step):
            sums[mask | step] = sums[mask] + w[items[b]]
    return sums


@njit(cache=True, nogil=True)
def fill_halves(items, nitems, w, cap, enough, half, taken):  # pragma: no cover - numba
    """Subset-sum by meeting in the middle, for targets finer than a depth-first search
    reaches: the 2·`half` lightest items (the last ones) are the fine part, the others fill
    greedily (heaviest first) up to about cap - (fine weight)/2, and the best pair of
    subset sums of the fine part's two halves completes the filling (4^half combinations
    from 2^(half+1) sums and two sorts). Returns (weight, count), items in taken[:count]."""
    nfine = min(2 * half, nitems)
    fine = items[nitems - nfine : nitems]
    fine_w = 0
    for k in range(nfine):
        fine_w += w[fine[k]]
    target = cap - fine_w // 2
    count = 0
    coarse = 0
    for k in range(nitems - nfine):
        i = items[k]
        if coarse + w[i] <= target:
            taken[count] = i
            count += 1
            coarse += w[i]
    room = cap - coarse  # what the fine part may add
    need = enough - coarse
    first_half = fine[: nfine // 2]
    second_half = fine[nfine // 2 :]
    sums_a = subset_sums(first_half, w)
    sums_b = subset_sums(second_half, w)
    order_a = np.argsort(sums_a)
    order_b = np.argsort(sums_b)
    best = -1
    best_a = 0
    best_b = 0
    j = order_b.shape[0] - 1
    for a in order_a:  # first-half sums ascending against second-half sums descending
        while j >= 0 and sums_a[a] + sums_b[order_b[j]] > room:
            j -= 1
        if j < 0:
            break
        total = sums_a[a] + sums_b[order_b[j]]
        if total > best:
            best = total
            best_a = a
            best_b = order_b[j]
            if best >= need:
                break
    if best < 0:
        return coarse, count
    for b in range(first_half.shape[0]):
        if best_a & (1 << b):
            taken[count] = first_half[b]
            count += 1
    for b in range(second_half.shape[0]):
        if best_b & (1 << b):
            taken[count] = second_half[b]
            count += 1
    return coarse + best, count


@njit(cache=True, nogil=True)
def fill(items, nitems, w, cap, enough, node_limit, taken, stats):  # pragma: no cover
    """A subset of items[:nitems] (heaviest first) weighing at most cap, and at least
    `enough` if the searches find one: depth first, then meeting in the middle with 2^11
    and 2^15 sums per half. Returns (weight, count), items in taken[:count]. stats[0]
    counts depth-first nodes, stats[1] meet-in-the-middle passes."""
    best, count, exhausted, nodes = fill_depth_first(
        items, nitems, w, cap, enough, node_limit, taken
    )
    stats[0] += nodes
    if exhausted:
        return best, count
    scratch = np.empty(nitems, dtype=np.int64)
    for half in (11, 15):
        if half > 11 and nitems <= 2 * 11:
            break  # the first pass already took every item into its fine part
        stats[1] += 1
        weight, got = fill_halves(items, nitems, w, cap, enough, half, scratch)
        if weight > best:
            best = weight
            count = got
            taken[:got] = scratch[:got]
        if best >= enough:
            break
    return best, count


# --- listing fillings ------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def fillings(
    rp, w, items, nitems, cap, heavier, threshold, max_out, node_limit
):  # pragma: no cover
    """Every subset F of items[:nitems] (in decreasing rp/w order) with heavier < w(F) ≤
    cap and Σ_F rp ≥ threshold (rp: float profits): depth first, Dantzig bounds on rp.
    Returns (members, starts, count, complete, nodes): filling s is
    members[starts[s]:starts[s+1]]; complete is False when there are more than max_out, or
    the node limit stopped it."""
    pw = np.zeros(nitems + 1, dtype=np.int64)
    pr = np.zeros(nitems + 1)
    for k in range(nitems):
        pw[k + 1] = pw[k] + w[items[k]]
        pr[k + 1] = pr[k] + rp[items[k]]
    members = np.empty(max(16, 4 * max_out), dtype=np.int64)
    starts = np.zeros(max_out + 2, dtype=np.int64)
    count = 0
    used = 0
    complete = True
    if threshold <= 0.0 and heavier < 0:  # the empty filling
        count = 1
    x = np.zeros(nitems, dtype=np.bool_)
    k = 0
    cw = 0
    cr = 0.0
    nodes = 0
    while True:
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        prune = k >= nitems
        if not prune:  # the Dantzig bound of what items k.. can still add
            room = cap - cw
            lo = k
            hi = nitems
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if pw[mid] - pw[k] <= room:
                    lo = mid
                else:
                    hi = mid - 1
            bound = cr + pr[lo] - pr[k]
            if lo < nitems:
                i = items[lo]
                bound += float(room - (pw[lo] - pw[k])) * rp[i] / float(w[i])
            prune = bound < threshold
        if not prune:
            i = items[k]
            if w[i] <= cap - cw:
                x[k] = True
                cw += w[i]
                cr += rp[i]
                if cr >= threshold and cw > heavier:  # recorded when its last member joins
                    if count >= max_out:
                        complete = False
                        break
                    size = 0
                    for q in range(k + 1):
                        if x[q]:
                            size += 1
                    if used + size > members.shape[0]:
                        grown = np.empty(2 * members.shape[0] + size, dtype=np.int64)
                        grown[:used] = members[:used]
                        members = grown
                    for q in range(k + 1):
                        if x[q]:
                            members[used] = items[q]
                            used += 1
                    count += 1
                    starts[count] = used
            k += 1
            continue
        j = k - 1
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            break
        x[j] = False
        cw -= w[items[j]]
        cr -= rp[items[j]]
        k = j + 1
    return members, starts, count, complete, nodes
