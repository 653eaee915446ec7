"""Compiled row kernels of the proposal generator (``proposals.py``), with numba: proposals as
sets of start regions, packed 64 regions to a uint64 word (``rows[p, r >> 6]`` bit ``r & 63``:
proposal p holds region r; bits past the last region stay 0), then as sorted superpixel rows.

Each kernel gives exactly what the numpy code it replaced gave (the same rows, in the same
order); ``tests/proposals_reference.py`` keeps that code and the tests compare the two. Compiled
on first use and cached (``cache=True``). Kernels never reassign an array inside a loop nor hand
arrays to helpers with loops of their own in hot loops: numba would update reference counts
atomically at each step.
"""
from __future__ import annotations

import numpy as np
from .compiled import njit

_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
_ONE = np.uint64(1)


@njit
def _low_bit_table():
    """(64,) table: ``table[(b * _DE_BRUIJN) >> 58]`` is the index of the one set bit of b."""
    table = np.empty(64, np.int64)
    for i in range(64):
        table[((_ONE << np.uint64(i)) * _DE_BRUIJN) >> np.uint64(58)] = i
    return table


# -----------------------------------------------------------------------------------------------
# hierarchy nodes, pairs and triplets at cut levels


@njit
def node_members(merges, n):
    """(n-1, 2) merges -> (2n-1, W) packed membership of every hierarchy node: leaf i is region
    i, merge k joins ``merges[k]`` into node n + k."""
    W = (n + 63) // 64
    mem = np.zeros((2 * n - 1, W), np.uint64)
    for i in range(n):
        mem[i, i >> 6] = _ONE << np.uint64(i & 63)
    for k in range(n - 1):
        for w in range(W):
            mem[n + k, w] = mem[merges[k, 0], w] | mem[merges[k, 1], w]
    return mem


@njit
def _cut_graph(merges, mem, n, ei, ej, K, low_bit):
    """The K nodes alive after ``n - K`` merges (ascending ids) and their adjacency as a
    (K, K) bool matrix."""
    done = n - K
    alive = np.ones(2 * n - 1, np.bool_)
    alive[n + done:] = False
    for k in range(done):
        alive[merges[k, 0]] = alive[merges[k, 1]] = False
    nodes = np.nonzero(alive)[0]
    leaf_to = np.empty(n, np.int64)
    for i in range(K):
        for w in range(mem.shape[1]):
            x = mem[nodes[i], w]
            while x:
                low = x & (~x + _ONE)
                leaf_to[64 * w + low_bit[(low * _DE_BRUIJN) >> np.uint64(58)]] = i
                x ^= low
    adj = np.zeros((K, K), np.bool_)
    for e in range(len(ei)):
        u, v = leaf_to[ei[e]], leaf_to[ej[e]]
        if u != v:
            adj[u, v] = adj[v, u] = True
    return nodes, adj


@njit
def _combinations(adj, pairs, triplets):
    """(T, 3) region indices (x, y, z) of a (K, K) adjacency: adjacent pairs (x, y, y) by x then
    y, then connected triplets by centre y, then neighbours x < z (x, then z, ascending)."""
    K = adj.shape[0]
    total = 0
    for y in range(K):
        d = adj[y].sum()
        total += pairs * (adj[y, y + 1:].sum()) + triplets * (d * (d - 1) // 2)
    out = np.empty((total, 3), np.int64)
    t = 0
    for x in range(K if pairs else 0):
        for y in range(x + 1, K):
            if adj[x, y]:
                out[t, 0], out[t, 1], out[t, 2] = x, y, y
                t += 1
    for y in range(K if triplets else 0):
        nb = np.nonzero(adj[y])[0]
        for a in range(len(nb)):
            for b in range(a + 1, len(nb)):
                out[t, 0], out[t, 1], out[t, 2] = nb[a], y, nb[b]
                t += 1
    return out


@njit
def cut_combinations(merges, mem, n, ei, ej, levels, pairs, triplets):
    """``proposals._cut_combinations`` as one packed block: for each level K of ``levels``
    (ascending), the unions of adjacent pairs (``pairs[i]``) and of connected triplets
    (``triplets[i]``) of the regions alive when K are left (:func:`_combinations`' order,
    regions by node id); ``mem`` is :func:`node_members`."""
    low_bit = _low_bit_table()
    parts = []
    total = 0
    for i in range(len(levels)):
        nodes, adj = _cut_graph(merges, mem, n, ei, ej, levels[i], low_bit)
        combos = _combinations(adj, pairs[i], triplets[i])
        parts.append((nodes, combos))
        total += len(combos)
    out = np.empty((total, mem.shape[1]), np.uint64)
    row = 0
    for nodes, combos in parts:
        for t in range(len(combos)):
            x, y, z = nodes[combos[t, 0]], nodes[combos[t, 1]], nodes[combos[t, 2]]
            for w in range(mem.shape[1]):
                out[row, w] = mem[x, w] | mem[y, w] | mem[z, w]
            row += 1
    return out


# -----------------------------------------------------------------------------------------------
# duplicate rows


@njit
def first_unique_rows(rows):
    """Indices (ascending) of the first occurrence of each distinct non-empty packed row: rows
    hashed, equal hashes compared in full, so no distinct row is ever lost."""
    P, W = rows.shape
    size = 1
    while size < 2 * P + 2:
        size *= 2
    table = np.full(size, -1, np.int64)
    hashes = np.empty(P, np.uint64)
    keep = np.empty(P, np.int64)
    kept = 0
    for p in range(P):
        h = np.uint64(0x9E3779B97F4A7C15)
        empty = True
        for w in range(W):
            h = (h ^ rows[p, w]) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
            empty &= rows[p, w] == 0
        if empty:
            continue
        hashes[p] = h
        slot = h & np.uint64(size - 1)
        while True:
            q = table[slot]
            if q < 0:
                table[slot] = p
                keep[kept] = p
                kept += 1
                break
            if hashes[q] == h:
                same = True
                for w in range(W):
                    same &= rows[p, w] == rows[q, w]
                if same:
                    break
            slot = (slot + _ONE) & np.uint64(size - 1)
    return keep[:kept]


# -----------------------------------------------------------------------------------------------
# hole filling


@njit
def _transpose64(a):
    """In place: ``a`` (64,) uint64 -> its anti-transpose, bit j of a[i] <- bit 63 - i of
    a[63 - j] (Hacker's Delight 7-3, extended to 64 bits)."""
    j = 32
    m = np.uint64(0x00000000FFFFFFFF)
    while j != 0:
        k = 0
        while k < 64:
            t = (a[k] ^ (a[k + j] >> np.uint64(j))) & m
            a[k] ^= t
            a[k + j] ^= t << np.uint64(j)
            k = (k + j + 1) & ~j
        j >>= 1
        m ^= m << np.uint64(j)


@njit
def _outside_bits(rows, n):
    """Packed rows (P, W) over n regions -> (n, ceil(P / 64)) uint64: bit p of region v set when
    v is outside row p (64 x 64 bit blocks transposed)."""
    P, W = rows.shape
    B = (P + 63) // 64
    out = np.zeros((n, B), np.uint64)
    a = np.empty(64, np.uint64)
    for b in range(B):
        for w in range(W):
            valid = ~np.uint64(0) if 64 * w + 64 <= n else (_ONE << np.uint64(n - 64 * w)) - _ONE
            for i in range(64):          # reversed rows: the anti-transpose is then a transpose
                p = 64 * b + 63 - i
                a[i] = ~rows[p, w] & valid if p < P else np.uint64(0)
            _transpose64(a)
            for i in range(64):          # a[i]: region 64 w + 63 - i, bit j: row 64 b + j
                v = 64 * w + 63 - i
                if v < n:
                    out[v, b] = a[i]
    return out


@njit
def _csr_graph(n, ei, ej):
    """Undirected graph of the pairs (ei, ej) as CSR arrays (indptr, indices), both directions."""
    deg = np.zeros(n + 1, np.int64)
    for e in range(len(ei)):
        deg[ei[e] + 1] += 1
        deg[ej[e] + 1] += 1
    indptr = np.cumsum(deg)
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[-1], np.int64)
    for e in range(len(ei)):
        indices[fill[ei[e]]] = ej[e]
        fill[ei[e]] += 1
        indices[fill[ej[e]]] = ei[e]
        fill[ej[e]] += 1
    return indptr, indices


@njit
def fill_holes(rows, n, border, ei, ej):
    """``proposals._fill_holes`` on packed rows over n regions: a new array where every row also
    holds the regions outside it that no path outside it links to a ``border`` region.

    Bits over rows (64 per word) of "outside and linked to the border" spread from the border
    regions along the graph, region by region from a queue, until nothing changes: the least
    fixed point, as the sweeps of the replaced code reached it.
    """
    outside = _outside_bits(rows, n)
    B = outside.shape[1]
    indptr, indices = _csr_graph(n, ei, ej)
    reach = np.zeros_like(outside)
    queue = np.empty(n, np.int64)
    queued = np.zeros(n, np.bool_)
    head = tail = 0
    for v in range(n):
        if border[v]:
            reach[v] = outside[v]
            queue[tail % n] = v
            tail += 1
            queued[v] = True
    while head != tail:
        v = queue[head % n]
        head += 1
        queued[v] = False
        for q in range(indptr[v], indptr[v + 1]):
            u = indices[q]
            grown = False
            for b in range(B):
                new = reach[v, b] & outside[u, b] & ~reach[u, b]
                if new:
                    reach[u, b] |= new
                    grown = True
            if grown and not queued[u]:
                queue[tail % n] = u
                tail += 1
                queued[u] = True
    out = rows.copy()
    low_bit = _low_bit_table()
    for v in range(n):
        for b in range(B):
            holes = outside[v, b] & ~reach[v, b]
            while holes:
                low = holes & (~holes + _ONE)
                out[64 * b + low_bit[(low * _DE_BRUIJN) >> np.uint64(58)], v >> 6] |= _ONE << np.uint64(v & 63)
                holes ^= low
    return out


# -----------------------------------------------------------------------------------------------
# start regions -> superpixels


@njit
def expand_rows(rows, lab, n, weights):
    """Packed rows over start regions, ``lab`` (n,) superpixel -> region: the rows over
    superpixels as CSR (indptr int64, indices int32 ascending within rows), and per row the
    sums of ``weights`` (n, 2) over its superpixels, added in ascending order from 0 (scipy's
    ``M @ weights``: what ``proposals._unique_sparse_rows`` groups rows by)."""
    P, W = rows.shape
    m = lab.max() + 1
    count = np.zeros(m + 1, np.int64)
    for s in range(n):
        count[lab[s] + 1] += 1
    start = np.cumsum(count)
    members = np.empty(n, np.int64)
    fill = start[:-1].copy()
    for s in range(n):
        members[fill[lab[s]]] = s
        fill[lab[s]] += 1
    low_bit = _low_bit_table()
    indptr = np.zeros(P + 1, np.int64)
    for p in range(P):
        total = 0
        for w in range(W):
            x = rows[p, w]
            while x:
                low = x & (~x + _ONE)
                total += count[64 * w + low_bit[(low * _DE_BRUIJN) >> np.uint64(58)] + 1]
                x ^= low
        indptr[p + 1] = indptr[p] + total
    indices = np.empty(indptr[P], np.int32)
    sums = np.zeros((P, 2))
    words = np.zeros((n + 63) // 64, np.uint64)
    for p in range(P):
        for w in range(W):
            x = rows[p, w]
            while x:
                low = x & (~x + _ONE)
                r = 64 * w + low_bit[(low * _DE_BRUIJN) >> np.uint64(58)]
                for i in range(start[r], start[r + 1]):
                    words[members[i] >> 6] |= _ONE << np.uint64(members[i] & 63)
                x ^= low
        pos = indptr[p]
        h0, h1 = 0.0, 0.0
        for w in range(len(words)):
            x = words[w]
            words[w] = 0
            while x:
                low = x & (~x + _ONE)
                s = 64 * w + low_bit[(low * _DE_BRUIJN) >> np.uint64(58)]
                indices[pos] = s
                h0 += weights[s, 0]
                h1 += weights[s, 1]
                pos += 1
                x ^= low
        sums[p, 0], sums[p, 1] = h0, h1
    return indptr, indices, sums


# -----------------------------------------------------------------------------------------------
# duplicate superpixel rows


@njit
def row_weight_sums(indptr, indices, weights):
    """(P, 2) float64: per row of a canonical CSR matrix, the sums of ``weights`` (n, 2) over its
    columns, added in column order from 0 (as scipy's product ``M @ weights`` does)."""
    P = len(indptr) - 1
    h = np.zeros((P, 2))
    for p in range(P):
        h0, h1 = 0.0, 0.0
        for q in range(indptr[p], indptr[p + 1]):
            h0 += weights[indices[q], 0]
            h1 += weights[indices[q], 1]
        h[p, 0], h[p, 1] = h0, h1
    return h


@njit
def first_unique_csr_rows(indptr, indices, h):
    """``proposals._unique_sparse_rows``'s choice, as it made it: indices (ascending) of the rows
    of a canonical CSR matrix (sorted indices, no duplicates) that it keeps.

    Rows are grouped by (length, ``h`` (P, 2): :func:`row_weight_sums`); a row is dropped when
    its columns equal those of its group's last kept row. Empty rows are dropped.
    """
    P = len(indptr) - 1
    size = 1
    while size < 2 * P + 2:
        size *= 2
    table = np.full(size, -1, np.int64)       # slot -> a row of the group (its first)
    leader = np.empty(P, np.int64)            # group's first row -> its last kept row
    bits = h.view(np.uint64)                  # sums of positives: never -0.0
    keep = np.empty(P, np.int64)
    kept = 0
    for p in range(P):
        a, b = indptr[p], indptr[p + 1]
        if a == b:
            continue
        x = np.uint64(b - a) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ bits[p, 0]) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ bits[p, 1]) * np.uint64(0x94D049BB133111EB)
        slot = (x ^ (x >> np.uint64(29))) & np.uint64(size - 1)
        while True:
            g = table[slot]
            if g < 0:
                table[slot] = leader[p] = p
                keep[kept] = p
                kept += 1
                break
            if indptr[g + 1] - indptr[g] == b - a and h[g, 0] == h[p, 0] and h[g, 1] == h[p, 1]:
                if not _same_columns(indptr, indices, leader[g], p):
                    leader[g] = p
                    keep[kept] = p
                    kept += 1
                break
            slot = (slot + _ONE) & np.uint64(size - 1)
    return keep[:kept]


@njit
def _same_columns(indptr, indices, p, q):
    """Rows p and q of a canonical CSR matrix hold the same columns."""
    a, b, c = indptr[p], indptr[p + 1], indptr[q]
    if indptr[q + 1] - c != b - a:
        return False
    for i in range(b - a):
        if indices[a + i] != indices[c + i]:
            return False
    return True


@njit
def take_rows(indptr, indices, rows):
    """Rows ``rows`` of a CSR matrix: (indptr int64, indices of the same dtype)."""
    out_ptr = np.zeros(len(rows) + 1, np.int64)
    for i in range(len(rows)):
        out_ptr[i + 1] = out_ptr[i] + indptr[rows[i] + 1] - indptr[rows[i]]
    out = np.empty(out_ptr[-1], indices.dtype)
    for i in range(len(rows)):
        out[out_ptr[i]:out_ptr[i + 1]] = indices[indptr[rows[i]]:indptr[rows[i] + 1]]
    return out_ptr, out
