"""The proposal generator as it was before its loops were compiled (``pseudolabel`` 164cbf4,
``algorithms/proposals.py``): plain numpy / scipy / scikit-image and Python loops, kept to check
that the compiled generator gives the same superpixels and the same membership, row for row
(``test_proposal_generator.py``). Functions the compiled generator still shares (``_float_lab``,
``_normalised``, ``_contract``) come from the package. Slow: for small images only.
"""
from __future__ import annotations

import heapq
import itertools

import cv2
import numpy as np
import scipy.sparse as sps
from scipy.sparse.csgraph import connected_components
from skimage.segmentation import watershed

from pseudolabel.algorithms.proposal_params import ProposalParams
from pseudolabel.algorithms.proposals import _contract, _float_lab, _normalised


def boundary_map(image_rgb, params, lab_weights=None, lab=None):
    """Multi-scale Lab gradient magnitude, normalised (``_boundary_map``)."""
    lab_weights = params.lab_weights if lab_weights is None else lab_weights
    H, W = image_rgb.shape[:2]
    lab = _float_lab(image_rgb) if lab is None else lab
    if tuple(lab_weights) != (1.0, 1.0, 1.0):
        lab = lab * np.array(lab_weights, np.float32)
    acc = np.zeros((H, W), np.float32)
    for s in params.scales:
        size = (max(1, round(W * s)), max(1, round(H * s)))
        x = lab if s == 1.0 else cv2.resize(lab, size, interpolation=cv2.INTER_AREA)
        x = cv2.GaussianBlur(x, (0, 0), params.gradient_sigma)
        gx = cv2.Sobel(x, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(x, cv2.CV_32F, 0, 1)
        mag = np.sqrt((gx * gx + gy * gy).sum(axis=2))
        acc += mag if s == 1.0 else cv2.resize(mag, (W, H), interpolation=cv2.INTER_LINEAR)
    return _normalised(acc, params)


def adjacency(sp, bnd, n):
    """Unique 4-adjacent label pairs, summed boundary strength and crossings (``_adjacency``)."""
    pairs = []
    for a, b, wa, wb in ((sp[:, :-1], sp[:, 1:], bnd[:, :-1], bnd[:, 1:]), (sp[:-1], sp[1:], bnd[:-1], bnd[1:])):
        cut = a != b
        pairs.append((a[cut], b[cut], np.maximum(wa[cut], wb[cut])))
    i = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    j = np.concatenate([p[1] for p in pairs]).astype(np.int64)
    w = np.concatenate([p[2] for p in pairs]).astype(np.float64)
    key = np.minimum(i, j) * n + np.maximum(i, j)
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq // n, uniq % n, np.bincount(inv, w), np.bincount(inv).astype(np.float64)


def finest_partition(bnd, params):
    """Watershed from the local minima, then regions below min_region_size merged
    (``_finest_partition``)."""
    smooth = cv2.GaussianBlur(bnd, (0, 0), params.watershed_sigma) if params.watershed_sigma > 0 else bnd
    sp = np.unique(watershed(smooth), return_inverse=True)[1].reshape(smooth.shape).astype(np.int32)
    while True:
        n = int(sp.max()) + 1
        small = np.bincount(sp.ravel(), minlength=n) < params.min_region_size
        if n == 1 or not small.any():
            return sp
        ei, ej, bsum, blen = adjacency(sp, bnd, n)
        src, dst = np.concatenate([ei, ej]), np.concatenate([ej, ei])
        mean = np.concatenate([bsum / blen] * 2)
        keep = small[src]
        src, dst, mean = src[keep], dst[keep], mean[keep]
        order = np.lexsort((dst, mean, src))
        first = np.r_[True, src[order][1:] != src[order][:-1]]
        src, dst = src[order][first], dst[order][first]
        g = sps.coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
        sp = connected_components(g, directed=False)[1].astype(np.int32)[sp]


def histograms(codes, sp, n, n_codes):
    """(H, W, C) codes -> (n, C * n_codes) float32 per-region histograms, L1-normalised."""
    flat = sp.ravel().astype(np.int64) * n_codes
    hs = [np.bincount(flat + codes[..., c].ravel(), minlength=n * n_codes).reshape(n, n_codes)
          for c in range(codes.shape[2])]
    h = np.concatenate(hs, axis=1).astype(np.float32)
    return h / h.sum(axis=1, keepdims=True)


def region_features(image_rgb, sp, n, params):
    """Per-region size, box and Lab / HSV / texture histograms (``_region_features``)."""
    H, W = sp.shape
    flat = sp.ravel()
    size = np.bincount(flat, minlength=n).astype(np.float64)
    ys, xs = np.divmod(np.arange(H * W), W)
    box = np.empty((n, 4))
    for k, v in enumerate((ys, xs)):
        lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(lo, flat, v)
        np.maximum.at(hi, flat, v)
        box[:, k], box[:, k + 2] = lo, hi + 1
    b = params.colour_bins
    lab = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2Lab)
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)
    lab_codes = (lab.astype(np.int64) * b) >> 8
    hsv_codes = (hsv.astype(np.int64) * b) >> 8
    hsv_codes[..., 0] = hsv[..., 0].astype(np.int64) * b // 180
    grey = cv2.GaussianBlur(lab[..., 0].astype(np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    mag = np.hypot(gx, gy)
    ori = ((np.arctan2(gy, gx) + np.pi) * (8 / (2 * np.pi))).astype(np.int64) % 8
    tex = np.where(mag < 8, 16, ori + 8 * (mag >= 32))[..., None]
    return size, box, {"lab": histograms(lab_codes, sp, n, b), "hsv": histograms(hsv_codes, sp, n, b),
                       "texture": histograms(tex, sp, n, 17)}


def graph_segmentation(n, ei, ej, bmean, size, k):
    """Felzenszwalb-Huttenlocher on the region graph (``_graph_segmentation``)."""
    parent, inner, sz = list(range(n)), [0.0] * n, size.tolist()
    for e in np.argsort(bmean, kind="stable").tolist():
        a, c = ei[e], ej[e]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        w = bmean[e]
        if a != c and w <= min(inner[a] + k / sz[a], inner[c] + k / sz[c]):
            parent[c] = a
            sz[a] += sz[c]
            inner[a] = max(inner[a], inner[c], w)
    roots = np.array([parent[i] for i in range(n)])
    while not (roots[roots] == roots).all():
        roots = roots[roots]
    return np.unique(roots, return_inverse=True)[1]


def merge_hierarchy(n, ei, ej, bsum, blen, size0, box0, feats, weights, area):
    """Greedy merging of the most similar adjacent pair, a Python heap of (-similarity, a, c)
    and dicts of neighbours (``_merge_hierarchy``): (n-1, 2) merges."""
    wb, wl, wh, wt, ws, wf = weights
    size, box = np.r_[size0, np.empty(n - 1)], np.r_[box0, np.empty((n - 1, 4))]
    hists = [(w, np.r_[feats[name], np.empty((n - 1, feats[name].shape[1]), np.float32)])
             for w, name in ((wl, "lab"), (wh, "hsv"), (wt, "texture")) if w]

    def sim(r, others, bmean):
        s = wb * (1.0 - bmean) + ws * (1.0 - (size[r] + size[others]) / area)
        for w, h in hists:
            s = s + w * np.minimum(h[r], h[others]).sum(axis=-1)
        if wf:
            bb = (np.maximum(box[r, 2:], box[others, 2:]) - np.minimum(box[r, :2], box[others, :2])).prod(axis=-1)
            s = s + wf * (1.0 - (bb - size[r] - size[others]) / area)
        return s

    adj = [dict() for _ in range(n)]
    for a, c, s, l in zip(ei.tolist(), ej.tolist(), bsum.tolist(), blen.tolist()):
        adj[a][c] = adj[c][a] = (s, l)
    heap = list(zip((-sim(ei, ej, bsum / blen)).tolist(), ei.tolist(), ej.tolist()))
    heapq.heapify(heap)
    alive = [True] * n + [False] * (n - 1)
    merges = np.empty((n - 1, 2), np.int64)
    for k in range(n - 1):
        while True:
            _, a, c = heapq.heappop(heap)
            if alive[a] and alive[c]:
                break
        r = n + k
        merges[k] = a, c
        alive[a], alive[c], alive[r] = False, False, True
        size[r] = size[a] + size[c]
        box[r, :2], box[r, 2:] = np.minimum(box[a, :2], box[c, :2]), np.maximum(box[a, 2:], box[c, 2:])
        for _, h in hists:
            h[r] = size[a] / size[r] * h[a] + size[c] / size[r] * h[c]
        new = _joined_neighbours(adj, a, c, r)
        if new:
            e = np.array(list(new.values()))
            for item in zip((-sim(r, np.array(list(new)), e[:, 0] / e[:, 1])).tolist(), [r] * len(new), new):
                heapq.heappush(heap, item)
    return merges


def _joined_neighbours(adj, a, c, r):
    """Neighbours of the new node r = a + c with their summed (strength, length), a's first;
    ``adj`` updated."""
    new = {x: e for x, e in adj[a].items() if x != c}
    for x, e in adj[c].items():
        if x != a:
            new[x] = (new[x][0] + e[0], new[x][1] + e[1]) if x in new else e
    for x, e in new.items():
        adj[x].pop(a, None)
        adj[x].pop(c, None)
        adj[x][r] = e
    adj.append(new)
    adj[a] = adj[c] = None
    return new


def node_members(merges, n):
    """(2n-1, n) bool membership of every hierarchy node (``_node_members``)."""
    mem = np.zeros((2 * n - 1, n), bool)
    mem[np.arange(n), np.arange(n)] = True
    for k, (a, c) in enumerate(merges):
        np.logical_or(mem[a], mem[c], out=mem[n + k])
    return mem


def cut_combinations(merges, mem, n, ei, ej, levels_pairs, levels_triplets):
    """Adjacent pairs / connected triplets at cut levels, (m, n) bool blocks
    (``_cut_combinations``)."""
    out = []
    for K in sorted(set(levels_pairs) | set(levels_triplets)):
        if K >= n or K < 2:
            continue
        done = n - K
        born = np.r_[np.full(n, -1), np.arange(n - 1)]
        died = np.full(2 * n - 1, n - 1)
        died[merges[:, 0]] = died[merges[:, 1]] = np.arange(n - 1)
        nodes = np.nonzero((born < done) & (died >= done))[0]
        leaf_to = np.empty(n, np.int64)
        leaf_to[np.nonzero(mem[nodes])[1]] = np.repeat(np.arange(K), mem[nodes].sum(axis=1))
        u, v = leaf_to[ei], leaf_to[ej]
        keep = u != v
        A = sps.coo_matrix((np.ones(keep.sum()), (u[keep], v[keep])), shape=(K, K))
        A = ((A + A.T) > 0).tocsr()
        rows = mem[nodes]
        if K in levels_pairs:
            pu, pv = sps.triu(A, k=1).nonzero()
            out.append(rows[pu] | rows[pv])
        if K in levels_triplets:
            centre = np.repeat(np.arange(K), np.diff(A.indptr))
            reps = np.diff(A.indptr)[centre]
            y, x = np.repeat(centre, reps), np.repeat(A.indices, reps)
            within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
            z = A.indices[np.repeat(A.indptr[centre], reps) + within]
            sel = x < z
            out.append(rows[x[sel]] | rows[y[sel]] | rows[z[sel]])
    return out


def fill_holes(props, border, ei, ej):
    """Enclosed regions added to each row, Gauss-Seidel sweeps of bits over rows
    (``_fill_holes``)."""
    P, n = props.shape
    outside = np.packbits(~np.r_[props, np.ones(((-P) % 64, n), bool)].T, axis=1)
    outside = np.ascontiguousarray(outside).view(np.uint64)
    reach = np.where(border[:, None], outside, np.uint64(0))
    A = sps.coo_matrix((np.ones(len(ei)), (ei, ej)), shape=(n, n))
    A = (A + A.T).tocsr()
    nbrs = [A.indices[A.indptr[v]:A.indptr[v + 1]] for v in range(n)]
    inner = np.nonzero(~border)[0]
    changed, sweep = True, 0
    while changed:
        changed = False
        for v in (inner if sweep % 2 == 0 else inner[::-1]):
            new = (np.bitwise_or.reduce(reach[nbrs[v]], axis=0) & outside[v]) | reach[v]
            if (new != reach[v]).any():
                reach[v], changed = new, True
        sweep += 1
    holes = np.unpackbits((outside & ~reach).view(np.uint8), axis=1)[:, :P].T.astype(bool)
    return props | holes


def unique_rows(props):
    """Exact duplicate and empty rows dropped, first occurrence order (``_unique_rows``)."""
    packed = np.packbits(props, axis=1)
    packed = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    first = np.sort(np.unique(packed, return_index=True)[1])
    return props[first[props[first].any(axis=1)]]


def unique_sparse_rows(M):
    """Exact duplicate rows of a CSR bool matrix dropped, grouped by (length, two random weight
    sums), compared with the group's last kept row (``_unique_sparse_rows``)."""
    M = M.tocsr()
    M.sum_duplicates()
    M.sort_indices()
    P, n = M.shape
    h = M.astype(np.float64) @ np.random.default_rng(0).random((n, 2))
    nnz = np.diff(M.indptr)
    order = np.lexsort((np.arange(P), h[:, 1], h[:, 0], nnz))
    key = np.c_[nnz[order], h[order]]
    same = np.r_[False, (key[1:] == key[:-1]).all(axis=1)]
    keep, leader = np.ones(P, bool), order[0]
    for pos in range(P):
        r = order[pos]
        if same[pos] and np.array_equal(M.indices[M.indptr[r]:M.indptr[r + 1]],
                                        M.indices[M.indptr[leader]:M.indptr[leader + 1]]):
            keep[r] = False
        else:
            leader = r
    return M[np.nonzero(keep & (nnz > 0))[0]]


def generate_proposals(image_rgb, params=ProposalParams(), edges=None):
    """``generate_proposals`` as it was: (superpixels, CSR membership)."""
    image_rgb = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    lab = _float_lab(image_rgb)
    bnd = boundary_map(image_rgb, params, lab=lab) if edges is None else _normalised(edges, params, thinned=True)
    sp = finest_partition(bnd, params)
    n = int(sp.max()) + 1
    if n == 1:
        return sp, sps.csr_matrix(np.ones((1, 1), bool))
    size, box, feats = region_features(image_rgb, sp, n, params)
    blocks = [sps.identity(n, dtype=bool, format="csr")]
    border = np.zeros(n, bool)
    border[np.unique(np.r_[sp[0], sp[-1], sp[:, 0], sp[:, -1]])] = True
    graphs = [adjacency(sp, bnd, n)]
    for weights in params.extra_maps:
        graphs.append(adjacency(sp, boundary_map(image_rgb, params, tuple(weights), lab=lab), n))
    for (ei, ej, bsum, blen), k in itertools.product(graphs, params.start_k):
        lab = graph_segmentation(n, ei.tolist(), ej.tolist(), (bsum / blen).tolist(), size, k)
        m = int(lab.max()) + 1
        if m < 2:
            continue
        g = _contract(lab, m, ei, ej, bsum, blen, size, box, feats)
        coarse = []
        for weights in params.strategies:
            merges = merge_hierarchy(m, *g, weights, sp.size)
            mem = node_members(merges, m)
            coarse += [mem] + cut_combinations(merges, mem, m, g[0], g[1], params.pair_levels, params.triplet_levels)
        cb = np.zeros(m, bool)
        cb[lab[border]] = True
        coarse = unique_rows(fill_holes(unique_rows(np.concatenate(coarse)), cb, g[0], g[1]))
        to_sp = sps.csr_matrix((np.ones(n, bool), (lab, np.arange(n))), shape=(m, n))
        blocks.append((sps.csr_matrix(coarse) @ to_sp).astype(bool))
    return sp, unique_sparse_rows(sps.vstack(blocks, format="csr"))
