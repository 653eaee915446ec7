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
def _before(k1, a1, c1, k2, a2, c2):
    """Heap entry (k1, a1, c1) pops before (k2, a2, c2): Python's order of tuples."""
    if k1 != k2:
        return k1 < k2
    if a1 != a2:
        return a1 < a2
    return c1 < c2


@njit(cache=True)
def _grown(a, need):
    """``a`` (1-D) copied into an array of at least ``need`` entries (doubling)."""
    if need <= len(a):
        return a
    out = np.empty(max(need, 2 * len(a)), a.dtype)
    out[:len(a)] = a
    return out


@njit(cache=True)
def _fill_term(size_r, y0, x0, y1, x1, size_o, v0, u0, v1, u1, wf, area):
    """The fill term of ``_merge_hierarchy``'s similarity for nodes of sizes ``size_r``,
    ``size_o`` and boxes (y0, x0, y1, x1), (v0, u0, v1, u1), float64 as numpy computed it."""
    dy = max(y1, v1) - min(y0, v0)
    dx = max(x1, u1) - min(x0, u0)
    return wf * (1.0 - (dy * dx - size_r - size_o) / area)


@njit(cache=True)
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


@njit(cache=True)
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
@njit(cache=True)
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
# watershed


@njit(cache=True)
def _ws_smaller(value, age, i, j):
    """Heap entry i comes before entry j: lower value, then earlier push."""
    if value[i] != value[j]:
        return value[i] < value[j]
    return age[i] < age[j]


@njit(cache=True)
def _ws_swap(value, age, index, i, j):
    value[i], value[j] = value[j], value[i]
    age[i], age[j] = age[j], age[i]
    index[i], index[j] = index[j], index[i]


@njit(cache=True)
def watershed_flood(image, output, mask, offsets):
    """scikit-image's (0.26) ``watershed_raveled`` without compactness or watershed lines,
    step for step: ``image`` (N,) float64 and ``output`` (N,) int32 (the markers; labelled in
    place) raveled and padded, ``mask`` (N,) bool False on the padding, ``offsets`` the
    neighbours. Its binary heap is reproduced exactly (markers all enter with age 0, so ties
    between them are settled by the heap's shape, as there)."""
    N = len(image)
    value = np.empty(N + 1)
    age = np.empty(N + 1, np.int64)
    index = np.empty(N + 1, np.int64)
    items = 0
    for p in range(N):                      # markers, raveled order
        if output[p]:
            value[items], age[items], index[items] = image[p], 0, p
            _ws_sift_up(value, age, index, items)
            items += 1
    count = 1
    while items > 0:
        v, p = value[0], index[0]
        items -= 1
        if items > 0:
            _ws_swap(value, age, index, 0, items)
            _ws_sift_down(value, age, index, items)
        for o in offsets:
            q = p + o
            if not mask[q] or output[q]:
                continue
            count += 1
            output[q] = output[p]
            value[items], age[items], index[items] = max(image[q], v), count, q
            _ws_sift_up(value, age, index, items)
            items += 1


@njit(cache=True)
def _ws_sift_up(value, age, index, child):
    while child > 0:
        parent = (child + 1) // 2 - 1
        if not _ws_smaller(value, age, child, parent):
            return
        _ws_swap(value, age, index, parent, child)
        child = parent


@njit(cache=True)
def _ws_sift_down(value, age, index, items):
    i = 0
    while True:
        left, right = 2 * i + 1, 2 * i + 2
        if left >= items:
            return
        smallest = i
        if _ws_smaller(value, age, left, i):
            smallest = left
        if right < items and _ws_smaller(value, age, right, smallest):
            smallest = right
        if smallest == i:
            return
        _ws_swap(value, age, index, i, smallest)
        i = smallest


@njit(cache=True)
def watershed_by_descent(image, markers):
    """:func:`watershed_flood`'s labels where they follow from the image alone, else None.
    ``image`` (H, W) finite, ``markers`` (H, W) int32: its local minima, labelled.

    Every local minimum is a marker, so a pixel enters the queue at its own value (a path down
    to a marker never rises) and takes the label of its first neighbour out: the lowest one.
    When, for every pixel off the markers, the lowest neighbours are strictly lower than it
    and agree on their label, no tie (nor the order of entry that breaks ties) decides
    anything: a pixel's label is its lowest neighbour's, followed down to a marker. Otherwise
    (a flat stretch off the minima, lowest neighbours of two labels) None.
    """
    H, W = image.shape
    Wp = W + 2
    pad = np.full((H + 2) * Wp, np.inf)
    for y in range(H):
        for x in range(W):
            pad[(y + 1) * Wp + x + 1] = image[y, x]
    label = np.zeros((H + 2) * Wp, np.int32)
    down = np.full((H + 2) * Wp, -1, np.int64)     # the lowest neighbour; -1: marker
    tied = np.zeros((H + 2) * Wp, np.bool_)
    for y in range(H):
        for x in range(W):
            q = (y + 1) * Wp + x + 1
            if markers[y, x]:
                label[q] = markers[y, x]
                continue
            best, low, count = -1, np.inf, 0
            for o in (-Wp, -1, 1, Wp):
                v = pad[q + o]
                if v < low:
                    best, low, count = q + o, v, 1
                elif v == low:
                    count += 1
            if not low < pad[q]:
                return None
            down[q], tied[q] = best, count > 1
    path = np.empty((H + 2) * Wp, np.int64)
    for q in range(len(pad)):
        n = 0
        while label[q] == 0 and down[q] >= 0:
            path[n] = q
            n += 1
            q = down[q]
        for i in range(n):
            label[path[i]] = label[q]
    for q in range(len(pad)):                       # lowest neighbours of one label?
        if tied[q]:
            for o in (-Wp, -1, 1, Wp):
                if pad[q + o] == pad[down[q]] and label[q + o] != label[q]:
                    return None
    out = np.empty((H, W), np.int32)
    for y in range(H):
        for x in range(W):
            out[y, x] = label[(y + 1) * Wp + x + 1]
    return out


# -----------------------------------------------------------------------------------------------
# region features


@njit(cache=True)
def region_stats(sp, n, lab, hsv, mag, ang, bins):
    """Per region of ``sp`` (H, W): pixel count (n,) float64, box (n, 4) float64 (y0, x0, y1, x1)
    half-open, and code counts (n, 3 * bins) int64 of Lab and of HSV (OpenCV 8-bit, H 0..179),
    (n, 17) of texture: 16 when the gradient ``mag`` < 8, else the orientation bin of ``ang``
    (arctan2, float32 arithmetic as numpy did it) + 8 when ``mag`` >= 32."""
    H, W = sp.shape
    size = np.zeros(n)
    box = np.empty((n, 4))
    box[:, :2] = np.inf
    box[:, 2:] = -np.inf
    lab_counts = np.zeros((n, 3 * bins), np.int64)
    hsv_counts = np.zeros((n, 3 * bins), np.int64)
    tex_counts = np.zeros((n, 17), np.int64)
    half_turn = np.float32(np.pi)
    per_radian = np.float32(8 / (2 * np.pi))
    for y in range(H):
        for x in range(W):
            r = sp[y, x]
            size[r] += 1
            box[r, 0], box[r, 1] = min(box[r, 0], y), min(box[r, 1], x)
            box[r, 2], box[r, 3] = max(box[r, 2], y + 1), max(box[r, 3], x + 1)
            for c in range(3):
                lab_counts[r, c * bins + ((np.int64(lab[y, x, c]) * bins) >> 8)] += 1
            hsv_counts[r, np.int64(hsv[y, x, 0]) * bins // 180] += 1
            for c in range(1, 3):
                hsv_counts[r, c * bins + ((np.int64(hsv[y, x, c]) * bins) >> 8)] += 1
            m = mag[y, x]
            if m < 8:
                code = 16
            else:
                code = np.int64((ang[y, x] + half_turn) * per_radian) % 8 + 8 * (m >= 32)
            tex_counts[r, code] += 1
    return size, box, lab_counts, hsv_counts, tex_counts


# -----------------------------------------------------------------------------------------------
# region adjacency and the finest partition


@njit(cache=True)
def _fmax32(a, b):
    """``np.maximum`` of two floats (a NaN wins)."""
    if a != a or a >= b:
        return a
    return b


@njit(cache=True)
def adjacency(sp, bnd, n):
    """``proposals._adjacency``: unique pairs ``ei < ej`` (ascending ``ei * n + ej``) of
    4-adjacent labels, the summed boundary strength (the larger of the two pixels, float64, added
    in the order numpy's bincount did: horizontal crossings in raster order, then vertical) and
    the number of crossings."""
    H, W = sp.shape
    crossings = 0
    for y in range(H):
        for x in range(W):
            crossings += (x + 1 < W and sp[y, x] != sp[y, x + 1]) + (y + 1 < H and sp[y, x] != sp[y + 1, x])
    size = 16
    while size < 2 * crossings:
        size *= 2
    table = np.full(size, -1, np.int64)
    keys = np.empty(crossings, np.int64)
    bsum = np.zeros(crossings)
    blen = np.zeros(crossings)
    count = 0
    for vertical in (False, True):
        dy, dx = (1, 0) if vertical else (0, 1)
        for y in range(H - dy):
            for x in range(W - dx):
                a, b = sp[y, x], sp[y + dy, x + dx]
                if a == b:
                    continue
                key = min(a, b) * np.int64(n) + max(a, b)
                slot = (key * 0x9E3779B97F4A7C15) & (size - 1)
                while table[slot] >= 0 and keys[table[slot]] != key:
                    slot = (slot + 1) & (size - 1)
                if table[slot] < 0:
                    table[slot] = count
                    keys[count] = key
                    count += 1
                e = table[slot]
                bsum[e] += np.float64(_fmax32(bnd[y, x], bnd[y + dy, x + dx]))
                blen[e] += 1.0
    order = np.argsort(keys[:count])
    uniq = keys[:count][order]
    return uniq // n, uniq % n, bsum[:count][order], blen[:count][order]


@njit(cache=True)
def _find(parent, v):
    """Union-find root of v, halving paths."""
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@njit(cache=True)
def merge_small_regions(sp, bnd, min_size):
    """``proposals._finest_partition``'s loop: while regions below ``min_size`` pixels are
    left, each joins the neighbour across its weakest mean boundary (ties: the lower label),
    joined groups numbered by their lowest label, as scipy's connected components do."""
    while True:
        n = sp.max() + 1
        size = np.bincount(sp.ravel(), minlength=n)
        small = size < min_size
        if n == 1 or not small.any():
            return sp
        ei, ej, bsum, blen = adjacency(sp, bnd, n)
        best = np.full(n, -1, np.int64)
        weakest = np.zeros(n)
        for e in range(len(ei)):
            mean = bsum[e] / blen[e]
            for s, d in ((ei[e], ej[e]), (ej[e], ei[e])):
                if small[s] and (best[s] < 0 or mean < weakest[s] or (mean == weakest[s] and d < best[s])):
                    best[s], weakest[s] = d, mean
        parent = np.arange(n)
        for s in range(n):
            if best[s] >= 0:
                parent[_find(parent, s)] = _find(parent, best[s])
        label = np.full(n, -1, np.int32)
        new = np.empty(n, np.int32)
        count = 0
        for v in range(n):
            r = _find(parent, v)
            if label[r] < 0:
                label[r] = count
                count += 1
            new[v] = label[r]
        out = np.empty_like(sp)
        for y in range(sp.shape[0]):
            for x in range(sp.shape[1]):
                out[y, x] = new[sp[y, x]]
        sp = out


# -----------------------------------------------------------------------------------------------
# boundary maps


@njit(cache=True)
def gradient_magnitude(gx, gy, use):
    """(H, W, 3) float32 gradients -> (H, W) float32 ``sqrt(sum over channels c with use[c] of
    gx² + gy²)``, float32 throughout, channels added in order from 0 as numpy's sum did (a
    channel left out is one whose gradients are all zero: adding its 0 changes nothing)."""
    H, W = gx.shape[:2]
    out = np.empty((H, W), np.float32)
    for y in range(H):
        for x in range(W):
            s = np.float32(0.0)
            for c in range(3):
                if use[c]:
                    s += gx[y, x, c] * gx[y, x, c] + gy[y, x, c] * gy[y, x, c]
            out[y, x] = np.sqrt(s)
    return out


@njit(cache=True)
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
