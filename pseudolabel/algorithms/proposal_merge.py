"""Compiled loops of the proposal generator's region graphs (``proposals.py``), with numba: the
start partitions (Felzenszwalb-Huttenlocher) and the greedy merge hierarchies.

Each kernel does exactly what the numpy / Python code it replaced did, to the bit: the same
float32 / float64 operations in the same order (a float32 sum is numpy's pairwise summation,
:func:`_pairwise_sum32`), the same tie-breaking. ``tests/proposals_reference.py`` keeps the
replaced code and ``tests/test_proposal_kernels.py`` compares the two. Compiled on first use
and cached next to this file (``cache=True``; numba falls back to a per-user cache folder where
that is not writable).

numba updates reference counts atomically whenever an array is handed to a compiled function
that has loops of its own, or is reassigned, and inside a hot loop that is most of the time: the
merge loop is therefore written out in one function that never reassigns an array.
"""
from __future__ import annotations

import numpy as np
from .compiled import njit

from .proposal_pixels import _find

# -----------------------------------------------------------------------------------------------
# float32 sums as numpy makes them


@njit
def _block_sum32(a, lo, n):
    """numpy's float32 sum of ``a[lo:lo + n]`` for ``n <= 128``: below 8 terms one running sum,
    else eight running sums combined as a tree, then the rest added."""
    res = np.float32(0.0)
    if n < 8:
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        j = lo + i
        r0, r1, r2, r3 = r0 + a[j], r1 + a[j + 1], r2 + a[j + 2], r3 + a[j + 3]
        r4, r5, r6, r7 = r4 + a[j + 4], r5 + a[j + 5], r6 + a[j + 6], r7 + a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit
def _pairwise_sum32(a, lo, n):
    """Sum of ``a[lo:lo + n]`` (float32) exactly as numpy's ``add.reduce`` makes it: blocks of
    up to 128 by :func:`_block_sum32`; a longer run is split in two at a multiple of 8 below
    its middle and the halves' sums added. Without recursion (numba's cache cannot load
    recursive functions): a stack of runs to sum (``todo``) and of sums made (``done``)."""
    if n <= 128:
        return _block_sum32(a, lo, n)
    todo = np.empty((128, 3), np.int64)           # lo, n, halves summed already
    done = np.empty(128, np.float32)
    todo[0, 0], todo[0, 1], todo[0, 2] = lo, n, 0
    t, d = 1, 0
    while t:
        t -= 1
        lo, n, split = todo[t, 0], todo[t, 1], todo[t, 2]
        if n <= 128:
            done[d] = _block_sum32(a, lo, n)
            d += 1
        elif split:
            d -= 1
            done[d - 1] = done[d - 1] + done[d]
        else:
            n2 = n // 2
            n2 -= n2 % 8
            todo[t, 2] = 1
            todo[t + 1, 0], todo[t + 1, 1], todo[t + 1, 2] = lo + n2, n - n2, 0
            todo[t + 2, 0], todo[t + 2, 1], todo[t + 2, 2] = lo, n2, 0
            t += 3
    return done[0]


# -----------------------------------------------------------------------------------------------
# start partitions


@njit
def graph_segmentation(n, ei, ej, bmean, size, k):
    """``proposals._graph_segmentation``: edges by increasing ``bmean`` (stable), components
    joined (the second's root under the first's) when the edge is no stronger than either's
    internal maximum plus ``k / size``; (n,) int64 labels numbered by their roots' order."""
    parent = np.arange(n)
    inner = np.zeros(n)
    sz = size.astype(np.float64)
    for e in np.argsort(bmean, kind="mergesort"):
        a, c = _find(parent, ei[e]), _find(parent, ej[e])
        w = bmean[e]
        if a != c and w <= min(inner[a] + k / sz[a], inner[c] + k / sz[c]):
            parent[c] = a
            sz[a] += sz[c]
            inner[a] = max(inner[a], inner[c], w)
    root = np.zeros(n, np.bool_)
    for i in range(n):
        root[_find(parent, i)] = True
    rank = np.cumsum(root) - 1
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = rank[_find(parent, i)]
    return out


# -----------------------------------------------------------------------------------------------
# greedy merge hierarchy


@njit
def _before(k1, a1, c1, k2, a2, c2):
    """Heap entry (k1, a1, c1) pops before (k2, a2, c2): Python's order of tuples."""
    if k1 != k2:
        return k1 < k2
    if a1 != a2:
        return a1 < a2
    return c1 < c2


@njit
def _grown(a, need):
    """``a`` (1-D) copied into an array of at least ``need`` entries (doubling)."""
    if need <= len(a):
        return a
    out = np.empty(max(need, 2 * len(a)), a.dtype)
    out[:len(a)] = a
    return out


@njit
def _fill_term(size_r, y0, x0, y1, x1, size_o, v0, u0, v1, u1, wf, area):
    """The fill term of ``_merge_hierarchy``'s similarity for nodes of sizes ``size_r``,
    ``size_o`` and boxes (y0, x0, y1, x1), (v0, u0, v1, u1), float64 as numpy computed it."""
    dy = max(y1, v1) - min(y0, v0)
    dx = max(x1, u1) - min(x0, u0)
    return wf * (1.0 - (dy * dx - size_r - size_o) / area)


@njit
def _drop_stale(key, ha, hc, count, alive):
    """Heap entries of pairs with a merged node dropped, the rest heapified (sifted down from the
    last parent); returns the new count. Pops of pairs of alive nodes come out as before."""
    kept = 0
    for i in range(count):
        if alive[ha[i]] and alive[hc[i]]:
            key[kept], ha[kept], hc[kept] = key[i], ha[i], hc[i]
            kept += 1
    for top in range(kept // 2 - 1, -1, -1):
        k, a, c = key[top], ha[top], hc[top]
        i = top
        while 2 * i + 1 < kept:
            child = 2 * i + 1
            if child + 1 < kept and _before(key[child + 1], ha[child + 1], hc[child + 1], key[child], ha[child], hc[child]):
                child += 1
            if not _before(key[child], ha[child], hc[child], k, a, c):
                break
            key[i], ha[i], hc[i] = key[child], ha[child], hc[child]
            i = child
        key[i], ha[i], hc[i] = k, a, c
    return kept


@njit
def _merge_steps(n, state, merges, key, ha, hc, head, nbr, es, el, nxt, node, hist, terms, weights,
                 alive, mark, pend):
    """The merge loop from ``state`` (merges done, heap entries, list entries, pending pairs)
    on, while the heap and the lists have room for a merge's new pairs (else it returns, the
    caller grows them and calls again: no array is reassigned in here, which keeps numba's
    reference counting out of the loop; for the same reason the loop's steps are written out
    in it rather than called). Pending pairs ``pend`` (r, x, bsum, blen) are scored and pushed
    first: the adjacent pairs at the start, each merge's new ones after it.

    ``node`` (2n-1, 5): size and box of every node; ``hist`` (2n-1, D) float32 the weighted
    histograms side by side, ``terms`` (T, 4) each one's (first column, width, weight, weight
    is a Python number: the product is float32); ``weights`` (wb, ws, wf, area).
    """
    wb, ws, wf, area = weights[0], weights[1], weights[2], weights[3]
    k, count, m, todo, live = state[0], state[1], state[2], state[3], state[4]
    buf = np.empty(hist.shape[1] + 1, np.float32)
    while True:
        # score the pending pairs (the similarity as _merge_hierarchy's numpy code made it)
        for i in range(todo):
            r, x = np.int64(pend[i, 0]), np.int64(pend[i, 1])
            s = wb * (1.0 - pend[i, 2] / pend[i, 3]) + ws * (1.0 - (node[r, 0] + node[x, 0]) / area)
            for t in range(terms.shape[0]):
                lo, width = np.int64(terms[t, 0]), np.int64(terms[t, 1])
                if width < 8 or width > 128:     # one running sum / numpy's pairwise halves
                    for j in range(width):
                        buf[j] = min(hist[r, lo + j], hist[x, lo + j])
                    total = _pairwise_sum32(buf, 0, width)
                else:                            # numpy's eight running sums, then the rest
                    r0, r1 = min(hist[r, lo], hist[x, lo]), min(hist[r, lo + 1], hist[x, lo + 1])
                    r2, r3 = min(hist[r, lo + 2], hist[x, lo + 2]), min(hist[r, lo + 3], hist[x, lo + 3])
                    r4, r5 = min(hist[r, lo + 4], hist[x, lo + 4]), min(hist[r, lo + 5], hist[x, lo + 5])
                    r6, r7 = min(hist[r, lo + 6], hist[x, lo + 6]), min(hist[r, lo + 7], hist[x, lo + 7])
                    j = lo + 8
                    while j < lo + width - width % 8:
                        r0, r1 = r0 + min(hist[r, j], hist[x, j]), r1 + min(hist[r, j + 1], hist[x, j + 1])
                        r2, r3 = r2 + min(hist[r, j + 2], hist[x, j + 2]), r3 + min(hist[r, j + 3], hist[x, j + 3])
                        r4, r5 = r4 + min(hist[r, j + 4], hist[x, j + 4]), r5 + min(hist[r, j + 5], hist[x, j + 5])
                        r6, r7 = r6 + min(hist[r, j + 6], hist[x, j + 6]), r7 + min(hist[r, j + 7], hist[x, j + 7])
                        j += 8
                    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
                    while j < lo + width:
                        total += min(hist[r, j], hist[x, j])
                        j += 1
                if terms[t, 3]:
                    s = s + np.float64(np.float32(terms[t, 2]) * np.float32(total))
                else:
                    s = s + terms[t, 2] * np.float64(np.float32(total))
            if wf != 0.0:
                s = s + _fill_term(node[r, 0], node[r, 1], node[r, 2], node[r, 3], node[r, 4],
                                   node[x, 0], node[x, 1], node[x, 2], node[x, 3], node[x, 4], wf, area)
            # push (-s, r, x): sift up
            c = count
            count += 1
            while c > 0 and _before(-s, r, x, key[(c - 1) // 2], ha[(c - 1) // 2], hc[(c - 1) // 2]):
                key[c], ha[c], hc[c] = key[(c - 1) // 2], ha[(c - 1) // 2], hc[(c - 1) // 2]
                c = (c - 1) // 2
            key[c], ha[c], hc[c] = -s, r, x
        live += todo
        todo = 0
        if k == n - 1 or count + n > len(key) or m + 2 * n > len(nbr):
            state[0], state[1], state[2], state[3], state[4] = k, count, m, 0, live
            return
        if count > 2 * live + 64:           # mostly pairs of merged nodes: drop them
            count = _drop_stale(key, ha, hc, count, alive)
        # pop entries until one joins two alive nodes (the hole left at the top goes down to
        # a leaf, the last entry comes up into it: fewer comparisons than sifting it down)
        while True:
            if count == 0:
                raise IndexError("index out of range")   # what heapq.heappop says
            a, c = ha[0], hc[0]
            count -= 1
            last_k, last_a, last_c = key[count], ha[count], hc[count]
            i = 0
            while 2 * i + 1 < count:
                child = 2 * i + 1
                if child + 1 < count and _before(key[child + 1], ha[child + 1], hc[child + 1],
                                                 key[child], ha[child], hc[child]):
                    child += 1
                key[i], ha[i], hc[i] = key[child], ha[child], hc[child]
                i = child
            while i > 0 and _before(last_k, last_a, last_c, key[(i - 1) // 2], ha[(i - 1) // 2], hc[(i - 1) // 2]):
                key[i], ha[i], hc[i] = key[(i - 1) // 2], ha[(i - 1) // 2], hc[(i - 1) // 2]
                i = (i - 1) // 2
            key[i], ha[i], hc[i] = last_k, last_a, last_c
            if alive[a] and alive[c]:
                break
        r = n + k
        merges[k, 0], merges[k, 1] = a, c
        # the new node's neighbours: a's and c's alive ones, their boundaries summed (a's + c's)
        for here, other in ((a, c), (c, a)):
            p = head[here]
            while p >= 0:
                x = nbr[p]
                if alive[x] and x != other:
                    live -= 1                            # the pair (here, x) is gone
                    if mark[x, 0] == a:                  # a neighbour of both
                        pend[mark[x, 1], 2] += es[p]
                        pend[mark[x, 1], 3] += el[p]
                    else:
                        mark[x, 0], mark[x, 1] = a, todo
                        pend[todo, 0], pend[todo, 1], pend[todo, 2], pend[todo, 3] = r, x, es[p], el[p]
                        todo += 1
                p = nxt[p]
        live -= 1                                        # the pair (a, c)
        alive[a] = alive[c] = False
        alive[r] = True
        node[r, 0] = node[a, 0] + node[c, 0]
        node[r, 1], node[r, 2] = min(node[a, 1], node[c, 1]), min(node[a, 2], node[c, 2])
        node[r, 3], node[r, 4] = max(node[a, 3], node[c, 3]), max(node[a, 4], node[c, 4])
        fa, fc = node[a, 0] / node[r, 0], node[c, 0] / node[r, 0]
        for j in range(hist.shape[1]):
            hist[r, j] = np.float32(fa * np.float64(hist[a, j]) + fc * np.float64(hist[c, j]))
        for i in range(todo):
            x = np.int64(pend[i, 1])
            for here, there in ((r, x), (x, r)):
                nbr[m], es[m], el[m], nxt[m] = there, pend[i, 2], pend[i, 3], head[here]
                head[here] = m
                m += 1
        k += 1


@njit
def merge_hierarchy(n, ei, ej, bsum, blen, size0, box0, hist0, terms, wb, ws, wf, area):
    """``proposals._merge_hierarchy``: the (n-1, 2) int64 merges. ``hist0`` (n, D) float32 and
    ``terms``: the weighted histograms side by side (see :func:`_merge_steps`)."""
    N = 2 * n - 1
    E = len(ei)
    node = np.empty((N, 5))
    node[:n, 0] = size0
    node[:n, 1:] = box0
    hist = np.empty((N, hist0.shape[1]), np.float32)
    hist[:n] = hist0
    key, ha, hc = np.empty(2 * E + n), np.empty(2 * E + n, np.int64), np.empty(2 * E + n, np.int64)
    head = np.full(N, -1, np.int64)
    nbr, nxt = np.empty(4 * E + 2 * n, np.int64), np.empty(4 * E + 2 * n, np.int64)
    es, el = np.empty(4 * E + 2 * n), np.empty(4 * E + 2 * n)
    pend = np.empty((max(E, n), 4))
    for e in range(E):                      # the adjacency lists, and every pair to score
        for m, (here, there) in enumerate(((ei[e], ej[e]), (ej[e], ei[e]))):
            nbr[2 * e + m], es[2 * e + m], el[2 * e + m], nxt[2 * e + m] = there, bsum[e], blen[e], head[here]
            head[here] = 2 * e + m
        pend[e, 0], pend[e, 1], pend[e, 2], pend[e, 3] = ei[e], ej[e], bsum[e], blen[e]
    alive = np.zeros(N, np.bool_)
    alive[:n] = True
    mark = np.full((N, 2), -1, np.int64)
    merges = np.empty((n - 1, 2), np.int64)
    state = np.array([0, 0, 2 * E, E, 0])        # merges, heap entries, list entries, pending, live pairs
    weights = np.array([wb, ws, wf, area])
    while True:
        _merge_steps(n, state, merges, key, ha, hc, head, nbr, es, el, nxt, node, hist, terms, weights,
                     alive, mark, pend)
        if state[0] == n - 1:
            return merges
        key, ha, hc = _grown(key, state[1] + n), _grown(ha, state[1] + n), _grown(hc, state[1] + n)
        need = state[2] + 2 * n
        nbr, es, el, nxt = _grown(nbr, need), _grown(es, need), _grown(el, need), _grown(nxt, need)
