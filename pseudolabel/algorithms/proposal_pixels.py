"""Compiled pixel loops of the proposal generator (``proposals.py``), with numba: the
watershed, the region adjacency and the merge of small regions, the per-region statistics,
the gradient magnitude of the boundary maps.

Each kernel gives exactly what the numpy / scikit-image / scipy code it replaced gave (the
same labels, the same float sums in the same order); ``tests/proposals_reference.py`` keeps that
code and ``tests/test_proposal_kernels.py`` compares the two. Compiled on first use and cached
(``cache=True``).
"""
from __future__ import annotations

import numpy as np
from .compiled import njit

# -----------------------------------------------------------------------------------------------
# watershed


@njit
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


@njit
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


@njit
def _ws_smaller(value, age, i, j):
    """Heap entry i comes before entry j: lower value, then earlier push."""
    if value[i] != value[j]:
        return value[i] < value[j]
    return age[i] < age[j]


@njit
def _ws_swap(value, age, index, i, j):
    value[i], value[j] = value[j], value[i]
    age[i], age[j] = age[j], age[i]
    index[i], index[j] = index[j], index[i]


@njit
def _ws_sift_up(value, age, index, child):
    while child > 0:
        parent = (child + 1) // 2 - 1
        if not _ws_smaller(value, age, child, parent):
            return
        _ws_swap(value, age, index, parent, child)
        child = parent


@njit
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


# -----------------------------------------------------------------------------------------------
# region adjacency and the finest partition


@njit
def _fmax32(a, b):
    """``np.maximum`` of two floats (a NaN wins)."""
    if a != a or a >= b:
        return a
    return b


@njit
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


@njit
def _find(parent, v):
    """Union-find root of v, halving paths."""
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@njit
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
# region features


@njit
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
# boundary maps


@njit
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
