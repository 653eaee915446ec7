"""Compiled loops of the proposal generator (``proposals.py``), with numba.

Each kernel does exactly what the numpy / Python code it replaced did, to the bit: the same
float32 / float64 operations in the same order (a float32 sum is numpy's pairwise summation,
:func:`_pairwise_sum32`), the same tie-breaking. ``tests/proposals_reference.py`` keeps the
replaced code and ``tests/test_proposal_generator.py`` compares the two.

Compiled on first use and cached next to this file (``cache=True``; numba falls back to a
per-user cache folder where that is not writable).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# -----------------------------------------------------------------------------------------------
# float32 sums as numpy makes them


@njit(cache=True)
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


@njit(cache=True)
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
# greedy merge hierarchy


@njit(cache=True)
def _first(key, ha, hc, i, j):
    """Heap entry ``i`` pops before entry ``j``: Python's order of ``(key, a, c)`` tuples."""
    if key[i] != key[j]:
        return key[i] < key[j]
    if ha[i] != ha[j]:
        return ha[i] < ha[j]
    return hc[i] < hc[j]


@njit(cache=True)
def _sift_down(key, ha, hc, count, i):
    """Move entry ``i`` of a binary min-heap of ``count`` entries down to its place."""
    while True:
        small, left = i, 2 * i + 1
        if left < count and _first(key, ha, hc, left, small):
            small = left
        if left + 1 < count and _first(key, ha, hc, left + 1, small):
            small = left + 1
        if small == i:
            return
        key[i], key[small] = key[small], key[i]
        ha[i], ha[small] = ha[small], ha[i]
        hc[i], hc[small] = hc[small], hc[i]
        i = small


@njit(cache=True)
def _sift_up(key, ha, hc, i):
    """Move entry ``i`` of a binary min-heap up to its place."""
    while i > 0:
        up = (i - 1) // 2
        if not _first(key, ha, hc, i, up):
            return
        key[i], key[up] = key[up], key[i]
        ha[i], ha[up] = ha[up], ha[i]
        hc[i], hc[up] = hc[up], hc[i]
        i = up


@njit(cache=True)
def _similarity(r, o, bmean, size, box, hist, bounds, hw32, hw64, hf32, wb, ws, wf, area, buf):
    """``_merge_hierarchy``'s similarity of nodes ``r`` and ``o``, as its numpy code computed
    it: float64 terms; each histogram intersection a float32 pairwise sum, weighted in float32
    (``hf32[t]``: a Python number weight, as numpy casts it) or float64."""
    s = wb * (1.0 - bmean) + ws * (1.0 - (size[r] + size[o]) / area)
    for t in range(len(hw64)):
        lo, hi = bounds[t], bounds[t + 1]
        for j in range(lo, hi):
            buf[j - lo] = min(hist[r, j], hist[o, j])
        total = _pairwise_sum32(buf, 0, hi - lo)
        if hf32[t]:
            s = s + np.float64(hw32[t] * total)
        else:
            s = s + hw64[t] * np.float64(total)
    if wf != 0.0:
        dy = max(box[r, 2], box[o, 2]) - min(box[r, 0], box[o, 0])
        dx = max(box[r, 3], box[o, 3]) - min(box[r, 1], box[o, 1])
        s = s + wf * (1.0 - (dy * dx - size[r] - size[o]) / area)
    return s


@njit(cache=True)
def _grown(a, need):
    """``a`` (1-D) copied into an array of at least ``need`` entries (doubling)."""
    if need <= len(a):
        return a
    out = np.empty(max(need, 2 * len(a)), a.dtype)
    out[:len(a)] = a
    return out


@njit(cache=True)
def _union_neighbours(a, c, head, nbr, es, el, nxt, alive, mark, acc_s, acc_l, out):
    """Alive neighbours of ``a`` or ``c`` (not each other) into ``out``, their count returned;
    ``acc_s`` / ``acc_l`` [x]: the summed boundary strength and length, ``a``'s plus ``c``'s."""
    deg = 0
    for node, other in ((a, c), (c, a)):
        p = head[node]
        while p >= 0:
            x = nbr[p]
            if alive[x] and x != other:
                if mark[x] == a:
                    acc_s[x] += es[p]
                    acc_l[x] += el[p]
                else:
                    mark[x] = a
                    acc_s[x], acc_l[x] = es[p], el[p]
                    out[deg] = x
                    deg += 1
            p = nxt[p]
    return deg


@njit(cache=True)
def _start_heap(ei, ej, bsum, blen, size, box, hist, bounds, hw32, hw64, hf32, wb, ws, wf, area, buf):
    """The heap of every adjacent pair's ``(-similarity, a, c)``, heapified: arrays (key, a, c)."""
    E = len(ei)
    key = np.empty(2 * E + 16)
    ha = np.empty(2 * E + 16, np.int64)
    hc = np.empty(2 * E + 16, np.int64)
    for e in range(E):
        key[e] = -_similarity(ei[e], ej[e], bsum[e] / blen[e], size, box, hist, bounds,
                              hw32, hw64, hf32, wb, ws, wf, area, buf)
        ha[e], hc[e] = ei[e], ej[e]
    for i in range(E // 2 - 1, -1, -1):
        _sift_down(key, ha, hc, E, i)
    return key, ha, hc


@njit(cache=True)
def _start_lists(N, ei, ej, bsum, blen):
    """Adjacency as linked lists: ``head[node]`` -> entries (nbr, es, el, nxt), one per
    neighbour in each direction; returns them and the number of entries used."""
    E = len(ei)
    head = np.full(N, -1, np.int64)
    nbr = np.empty(4 * E + 16, np.int64)
    nxt = np.empty(4 * E + 16, np.int64)
    es = np.empty(4 * E + 16)
    el = np.empty(4 * E + 16)
    m = 0
    for e in range(E):
        for node, x in ((ei[e], ej[e]), (ej[e], ei[e])):
            nbr[m], es[m], el[m], nxt[m] = x, bsum[e], blen[e], head[node]
            head[node] = m
            m += 1
    return head, nbr, es, el, nxt, m


@njit(cache=True)
def _pop_alive(key, ha, hc, count, alive):
    """Pop entries until one joins two alive nodes: returns (a, c, entries left)."""
    while True:
        if count == 0:
            raise IndexError("index out of range")   # what heapq.heappop says
        a, c = ha[0], hc[0]
        count -= 1
        key[0], ha[0], hc[0] = key[count], ha[count], hc[count]
        _sift_down(key, ha, hc, count, 0)
        if alive[a] and alive[c]:
            return a, c, count


@njit(cache=True)
def merge_hierarchy(n, ei, ej, bsum, blen, size0, box0, hist0, bounds, hw32, hw64, hf32, wb, ws, wf, area):
    """``proposals._merge_hierarchy``: the (n-1, 2) int64 merges. ``hist0`` (n, D) float32: the
    weighted histograms side by side, histogram ``t`` in columns ``bounds[t]:bounds[t+1]`` with
    weight ``hw32[t]`` / ``hw64[t]`` (see :func:`_similarity`)."""
    N = 2 * n - 1
    size = np.empty(N)
    size[:n] = size0
    box = np.empty((N, 4))
    box[:n] = box0
    hist = np.empty((N, hist0.shape[1]), np.float32)
    hist[:n] = hist0
    buf = np.empty(hist0.shape[1] + 1, np.float32)
    weights = (bounds, hw32, hw64, hf32, wb, ws, wf, area, buf)
    key, ha, hc = _start_heap(ei, ej, bsum, blen, size, box, hist, *weights)
    count = len(ei)
    head, nbr, es, el, nxt, m = _start_lists(N, ei, ej, bsum, blen)
    alive = np.zeros(N, np.bool_)
    alive[:n] = True
    mark = np.full(N, -1, np.int64)
    acc_s, acc_l = np.empty(N), np.empty(N)
    new = np.empty(N, np.int64)
    merges = np.empty((n - 1, 2), np.int64)
    for k in range(n - 1):
        a, c, count = _pop_alive(key, ha, hc, count, alive)
        r = n + k
        merges[k, 0], merges[k, 1] = a, c
        deg = _union_neighbours(a, c, head, nbr, es, el, nxt, alive, mark, acc_s, acc_l, new)
        alive[a] = alive[c] = False
        alive[r] = True
        size[r] = size[a] + size[c]
        box[r, 0], box[r, 1] = min(box[a, 0], box[c, 0]), min(box[a, 1], box[c, 1])
        box[r, 2], box[r, 3] = max(box[a, 2], box[c, 2]), max(box[a, 3], box[c, 3])
        fa, fc = size[a] / size[r], size[c] / size[r]
        for j in range(hist.shape[1]):
            hist[r, j] = np.float32(fa * np.float64(hist[a, j]) + fc * np.float64(hist[c, j]))
        key, ha, hc = _grown(key, count + deg), _grown(ha, count + deg), _grown(hc, count + deg)
        nbr, es, el, nxt = _grown(nbr, m + 2 * deg), _grown(es, m + 2 * deg), _grown(el, m + 2 * deg), _grown(nxt, m + 2 * deg)
        for i in range(deg):
            x = new[i]
            key[count] = -_similarity(r, x, acc_s[x] / acc_l[x], size, box, hist, *weights)
            ha[count], hc[count] = r, x
            _sift_up(key, ha, hc, count)
            count += 1
            for node, y in ((r, x), (x, r)):
                nbr[m], es[m], el[m], nxt[m] = y, acc_s[x], acc_l[x], head[node]
                head[node] = m
                m += 1
    return merges
