"""GrabCut+ (Simple Does It, Khoreva et al. 2017): GrabCut whose pairwise term comes from a
learned boundary detector (HED) instead of colour contrast.

OpenCV's ``cv2.grabCut`` fixes its pairwise term, so this is GrabCut written out, as OpenCV does
it, with the one change: colour models are two 5-component full-covariance GMMs (foreground from
the rectangle, background from outside it), initialised by k-means (OpenCV's, seeded), and each
iteration assigns every pixel to its model's likeliest component, re-learns both models, and
solves the min cut of unary terms ``-log p(colour | model)`` plus pairwise terms on the 8-connected
grid. Pairwise weights follow OpenCV's form with the boundary strength in place of the colour
difference: ``w_pq = gamma / dist(p, q) * exp(-beta * max(E_p, E_q)^2)``, ``beta = 1 / (2 mean
max(E_p, E_q)^2)`` over the window's pairs (the colour version uses ``||z_p - z_q||^2``), so a pair
across a strong boundary is cheap to cut and a pair inside a region is not.

The min cut is Boykov and Kolmogorov's max flow (the algorithm cv2.grabCut runs), compiled by
numba (BSD licence) when it is installed; without numba, scipy's ``maximum_flow`` (Dinic; a
dependency already) finds the same cut, many times slower: no GPL library (PyMaxflow) and no 30 MB
solver suite (OR-Tools) for one max flow. Both return the smallest source side of a minimum cut,
which is the same for every maximum flow, so the masks do not depend on the solver. Capacities are
integers, the energies scaled by :data:`SCALE`. Per window the graph is built once (only the
terminal links change between iterations), pixels outside the rectangle are left out of it, and
each cut starts from the previous cut's flow. Deterministic for a seed (k-means is seeded).
"""
from __future__ import annotations

import numpy as np

K = 5
GAMMA = 50.0
SCALE = 100.0
"""Energies x SCALE, rounded: the max flow works on integer capacities (exact, and scipy's
takes nothing else)."""
BIG = 10 ** 7
"""Capacity tying a pixel outside the rectangle to the background."""


def _compile(kernel):
    """``kernel`` compiled by numba (BSD licence; cached on disk after the first run where numba
    finds a writable place: :mod:`.compiled`), or None without numba: then the callers run
    numpy's and scipy's code for the same numbers, slower."""
    try:
        from .compiled import njit
    except ImportError:
        return None
    return njit(kernel, nogil=True)


def _fit(x: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means, inverse covariances and log-determinants of a K-component GMM from hard
    assignments (empty components get weight 0); covariances regularised like OpenCV's (+0.01 I)."""
    weights = np.zeros(K)
    means = np.zeros((K, x.shape[1]))
    inv = np.tile(np.eye(x.shape[1]), (K, 1, 1))
    logdet = np.zeros(K)
    for k in range(K):
        xs = x[comp == k]
        if len(xs) == 0:
            continue
        weights[k] = len(xs) / len(x)
        means[k] = xs.mean(0)
        cov = np.cov(xs.T, bias=True) if len(xs) > 1 else np.zeros((x.shape[1], x.shape[1]))
        cov = cov + 0.01 * np.eye(x.shape[1])
        inv[k] = np.linalg.inv(cov)
        logdet[k] = np.linalg.slogdet(cov)[1]
    return weights, means, inv, logdet


def _component_logs(x: np.ndarray, gmm) -> np.ndarray:
    """(N, K) log(weight_k N(x | k)) (constant terms dropped; -inf for empty components)."""
    weights, means, inv, logdet = gmm
    out = np.full((len(x), K), -np.inf)
    for k in range(K):
        if weights[k] <= 0:
            continue
        if _quadratic_logs_compiled is not None:
            _quadratic_logs_compiled(x, means[k], inv[k], np.log(weights[k]) - 0.5 * logdet[k], out[:, k])
            continue
        d = x - means[k]
        out[:, k] = np.log(weights[k]) - 0.5 * logdet[k] - 0.5 * np.einsum("ni,ij,nj->n", d, inv[k], d)
    return out


def _quadratic_logs(x, mean, inv, const, out):
    """``out[n] = const - 0.5 (x_n - mean)' inv (x_n - mean)``, summed in the order numpy's einsum
    ``ni,ij,nj->n`` sums (i outer, j inner, one accumulator): the same bits as the numpy code,
    without its (N, C) temporaries and its generic loop."""
    c = x.shape[1]
    d = np.empty(c)
    for n in range(x.shape[0]):
        for i in range(c):
            d[i] = x[n, i] - mean[i]
        q = 0.0
        for i in range(c):
            for j in range(c):
                q += d[i] * inv[i, j] * d[j]
        out[n] = const - 0.5 * q


_quadratic_logs_compiled = _compile(_quadratic_logs)


def _loglik(x: np.ndarray, gmm) -> np.ndarray:
    logs = _component_logs(x, gmm)
    top = logs.max(1)
    return top + np.log(np.exp(logs - top[:, None]).sum(1))


def _kmeans(x: np.ndarray, seed: int) -> np.ndarray:
    import cv2

    if len(x) <= K:
        return np.arange(len(x)) % K
    cv2.setRNGSeed(int(seed))
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 10, 0)
    _, labels, _ = cv2.kmeans(x.astype(np.float32), K, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return labels.ravel()


def _pairs(h: int, w: int):
    """The 8-connected grid's pairs (each once) and their distances."""
    idx = np.arange(h * w).reshape(h, w)
    pairs = [(idx[:, :-1], idx[:, 1:], 1.0), (idx[:-1, :], idx[1:, :], 1.0),
             (idx[:-1, :-1], idx[1:, 1:], np.sqrt(2.0)), (idx[:-1, 1:], idx[1:, :-1], np.sqrt(2.0))]
    return [(a.ravel(), b.ravel(), d) for a, b, d in pairs]


def pairwise_weights(edges: np.ndarray, gamma: float = GAMMA):
    """``[(p, q, w)]``: the grid's pairs with their weights from the boundary map ``edges`` ((h, w),
    GrabCut+), or from colour contrast when ``edges`` is an (h, w, 3) image (GrabCut's own term:
    ``||z_p - z_q||^2`` in place of ``max(E_p, E_q)^2``)."""
    h, w = edges.shape[:2]
    pairs = _pairs(h, w)
    if edges.ndim == 3:
        z = edges.reshape(h * w, -1).astype(np.float64)
        diffs = [((z[p] - z[q]) ** 2).sum(1) for p, q, _ in pairs]
    else:
        e = edges.ravel().astype(np.float64)
        diffs = [np.maximum(e[p], e[q]) ** 2 for p, q, _ in pairs]
    mean = float(np.mean(np.concatenate(diffs))) if diffs else 0.0
    beta = 1.0 / (2.0 * mean) if mean > 0 else 0.0
    return [(p, q, gamma / d * np.exp(-beta * diff)) for (p, q, d), diff in zip(pairs, diffs)]


TERMINAL, ORPHAN, FREE = -1, -2, -3
"""Parent codes of :func:`_maxflow`'s search trees (a parent >= 0 is the arc to the parent)."""


def _maxflow(first, head, sister, cap, rcap, source, sink):
    """(n,) bool: the nodes reachable from the source in the residual graph of a maximum flow,
    found by Boykov and Kolmogorov's augmenting-path algorithm (PAMI 2004: two search trees, from
    the source and from the sink, grown until they touch, then the path's flow is pushed and the
    trees repaired by adopting orphans), written from the paper.

    The graph (see :class:`Graph`): arcs ``first[p]:first[p + 1]`` leave node p, arc a goes to
    ``head[a]`` with capacity ``cap[a]`` and has the reverse arc ``sister[a]``; terminal links
    ``source`` (S -> p) and ``sink`` (p -> T). ``rcap`` holds the residual capacities of a flow to
    start from (``cap`` for none; the last cut's, warm, when only the terminal links changed) and
    is left holding the new flow's. The residual terminal capacity ``tr[p]`` (S -> p when
    positive, p -> T when negative) is ``source - sink`` less p's flow into the grid: a flow of
    the graph with the same constant added to both terminal links of p, which has the same
    minimum cuts (Kohli and Torr's reparametrisation, ICCV 2005).

    The reachable set is the same for every maximum flow (the smallest source side of a minimum
    cut), so the result equals scipy's Dinic's, cold or warm: the solver and the start only change
    the time. Compiled by numba when it is installed (:data:`_maxflow_compiled`); else
    :meth:`Graph.cut` asks scipy."""
    n = len(source)
    tr = source - sink
    for p in range(n):
        for a in range(first[p], first[p + 1]):
            tr[p] -= cap[a] - rcap[a]
    parent = np.full(n, FREE, np.int32)
    sink = np.zeros(n, np.bool_)                  # the tree of a node with a parent: True = T's
    ts = np.zeros(n, np.int32)                    # distance heuristic: when dist[p] was known right
    dist = np.zeros(n, np.int32)                  # arcs to the terminal at time ts[p]
    queued = np.zeros(n, np.bool_)
    active = np.empty(n, np.int32)                # FIFO ring of active nodes, each at most once
    orphans = np.empty(n, np.int32)               # FIFO of one augmentation's orphans (each once)
    a_head = 0
    a_len = 0
    for p in range(n):
        if tr[p] != 0:
            parent[p] = TERMINAL
            sink[p] = tr[p] < 0
            dist[p] = 1
            active[a_len] = p
            a_len += 1
            queued[p] = True
    time = 0
    current = -1
    while True:
        # the next active node: the same one again after an augmentation, while it is in a tree
        p = current
        current = -1
        if p < 0 or parent[p] == FREE:
            p = -1
            while a_len > 0:
                q = active[a_head]
                a_head = a_head + 1 if a_head + 1 < n else 0
                a_len -= 1
                queued[q] = False
                if parent[q] != FREE:
                    p = q
                    break
            if p < 0:
                break
        # growth: free neighbours join p's tree; an arc into the other tree closes a path
        bridge = -1                               # the arc from the S tree into the T tree
        for a in range(first[p], first[p + 1]):
            b = sister[a]
            if rcap[b if sink[p] else a] == 0:    # the arc away from p's terminal
                continue
            q = head[a]
            if parent[q] == FREE:
                sink[q] = sink[p]
                parent[q] = b
                ts[q] = ts[p]
                dist[q] = dist[p] + 1
                if not queued[q]:
                    active[(a_head + a_len) % n] = q
                    a_len += 1
                    queued[q] = True
            elif sink[q] != sink[p]:
                bridge = b if sink[p] else a
                break
            elif ts[q] <= ts[p] and dist[q] > dist[p]:
                parent[q] = b                     # a shorter way to the terminal
                ts[q] = ts[p]
                dist[q] = dist[p] + 1
        if bridge < 0:
            continue
        current = p
        time += 1
        # augmentation along S -> ... -> u -> v -> ... -> T by the path's bottleneck
        u, v = head[sister[bridge]], head[bridge]
        flow = rcap[bridge]
        x = u
        while parent[x] != TERMINAL:
            flow = min(flow, rcap[sister[parent[x]]])
            x = head[parent[x]]
        flow = min(flow, tr[x])
        x = v
        while parent[x] != TERMINAL:
            flow = min(flow, rcap[parent[x]])
            x = head[parent[x]]
        flow = min(flow, -tr[x])
        rcap[bridge] -= flow
        rcap[sister[bridge]] += flow
        o_head = 0
        o_len = 0
        for side in range(2):                     # 0: the S half, 1: the T half
            x = u if side == 0 else v
            while True:
                a = parent[x]
                if a == TERMINAL:
                    tr[x] += -flow if side == 0 else flow
                    saturated = tr[x] == 0
                else:
                    down = sister[a] if side == 0 else a      # the arc the flow went along
                    rcap[down] -= flow
                    rcap[sister[down]] += flow
                    saturated = rcap[down] == 0
                if saturated:
                    parent[x] = ORPHAN
                    orphans[o_len] = x
                    o_len += 1
                if a == TERMINAL:
                    break
                x = head[a]
        # adoption: an orphan takes a tree neighbour that still reaches the terminal, the
        # nearest, or becomes free (its children orphans, its tree neighbours active)
        while o_head < o_len:
            x = orphans[o_head]
            o_head += 1
            best = -1
            best_d = 0
            for a in range(first[x], first[x + 1]):
                if rcap[a if sink[x] else sister[a]] == 0:   # the arc towards x's terminal
                    continue
                y = head[a]
                if parent[y] == FREE or parent[y] == ORPHAN or sink[y] != sink[x]:
                    continue
                d = 0                             # y's distance to the terminal, -1: via an orphan
                z = y
                while True:
                    if ts[z] == time:
                        d += dist[z]
                        break
                    c = parent[z]
                    d += 1
                    if c == TERMINAL:
                        ts[z] = time
                        dist[z] = 1
                        break
                    if c == ORPHAN:
                        d = -1
                        break
                    z = head[c]
                if d < 0:
                    continue
                if best < 0 or d < best_d:
                    best = a
                    best_d = d
                z = y
                while ts[z] != time:              # remember the distances found on the way
                    ts[z] = time
                    dist[z] = d
                    d -= 1
                    z = head[parent[z]]
            if best >= 0:
                parent[x] = best
                ts[x] = time
                dist[x] = best_d + 1
                continue
            for a in range(first[x], first[x + 1]):
                y = head[a]
                if parent[y] == FREE or sink[y] != sink[x]:
                    continue
                if rcap[a if sink[x] else sister[a]] > 0 and not queued[y]:
                    active[(a_head + a_len) % n] = y
                    a_len += 1
                    queued[y] = True
                c = parent[y]
                if c >= 0 and head[c] == x:
                    parent[y] = ORPHAN
                    orphans[o_len] = y
                    o_len += 1
            parent[x] = FREE
    # the source side: depth-first from the nodes S still reaches
    reached = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    top = 0
    for p in range(n):
        if tr[p] > 0:
            reached[p] = True
            stack[top] = p
            top += 1
    while top > 0:
        top -= 1
        p = stack[top]
        for a in range(first[p], first[p + 1]):
            q = head[a]
            if rcap[a] > 0 and not reached[q]:
                reached[q] = True
                stack[top] = q
                top += 1
    return reached


_maxflow_compiled = _compile(_maxflow)


def _arcs(p, q, cap, free):
    """The arrays of :class:`Graph` from pairs p[k] - q[k] of capacity cap[k] > 0 on n nodes of
    which the ``free`` ones stay: ``first``, ``head``, ``sister`` and ``cap`` of the arcs between
    free nodes (renumbered in order; pair k is an arc and its reverse, each next in its tail's run
    of arcs), ``border`` (n,): each free node's capacity to nodes that are not, ``inflow`` (n,):
    each node's capacity to all."""
    n = len(free)
    index = np.cumsum(free) - 1
    nodes = index[-1] + 1 if n else 0
    first = np.zeros(nodes + 1, np.int32)
    border = np.zeros(n, np.int64)
    inflow = np.zeros(n, np.int64)
    for k in range(len(p)):
        inflow[p[k]] += cap[k]
        inflow[q[k]] += cap[k]
        if free[p[k]] and free[q[k]]:
            first[index[p[k]] + 1] += 1
            first[index[q[k]] + 1] += 1
        elif free[p[k]]:
            border[p[k]] += cap[k]
        elif free[q[k]]:
            border[q[k]] += cap[k]
    for v in range(nodes):
        first[v + 1] += first[v]
    head = np.empty(first[nodes], np.int32)
    sister = np.empty(first[nodes], np.int32)
    arc_cap = np.empty(first[nodes], np.int64)
    pos = first[:-1].copy()
    for k in range(len(p)):
        if not (free[p[k]] and free[q[k]]):
            continue
        u, v = index[p[k]], index[q[k]]
        a = pos[u]
        pos[u] += 1
        b = pos[v]                                # after a: a loop p = q has two arcs
        pos[v] += 1
        head[a], head[b] = v, u
        sister[a], sister[b] = b, a
        arc_cap[a], arc_cap[b] = cap[k], cap[k]
    return first, head, sister, arc_cap, border, inflow


def _arcs_numpy(p, q, cap, free):
    """:func:`_arcs` by numpy (without numba): the same arrays but for the order of each node's arcs."""
    n = len(free)
    index = np.cumsum(free) - 1
    inflow = np.bincount(p, cap, n).astype(np.int64) + np.bincount(q, cap, n).astype(np.int64)
    free_p, free_q = free[p], free[q]
    border = (np.bincount(p[free_p & ~free_q], cap[free_p & ~free_q], n)
              + np.bincount(q[free_q & ~free_p], cap[free_q & ~free_p], n)).astype(np.int64)
    both = free_p & free_q
    p, q, cap = index[p[both]], index[q[both]], cap[both]
    m = len(p)
    tail = np.concatenate([p, q])                                     # arc k's reverse is k + m
    order = np.argsort(tail, kind="stable")
    rank = np.empty(2 * m, np.int64)
    rank[order] = np.arange(2 * m)
    first = np.concatenate([[0], np.cumsum(np.bincount(tail, minlength=int(free.sum())))]).astype(np.int64)
    return (first, np.concatenate([q, p])[order], rank[(order + m) % max(2 * m, 1)],
            np.concatenate([cap, cap])[order], border, inflow)


_arcs_compiled = _compile(_arcs)


class Graph:
    """The pairwise part of a min-cut graph, as arcs: built once per window, then cut with
    terminal capacities that change every iteration (GrabCut's unary terms) while the pairs do
    not. ``pairs``: ``[(p, q, w)]`` of :func:`pairwise_weights` (or any symmetric pairs);
    capacities ``round(w * SCALE)``, clipped to int32 as scipy takes them.

    ``sink_side``: (n,) bool, nodes the caller ties to T by more sink capacity than everything
    that can flow into them (their source capacity and pairs; GrabCut's pixels outside the
    rectangle, :data:`BIG`), so that every minimum cut leaves them on the sink side: they are
    left out and their pairs become sink capacity of the other end. Same minimum cuts on the
    other nodes, about a third of a GrabCut window's; :meth:`cut` checks the promise."""

    def __init__(self, n: int, pairs, sink_side: np.ndarray | None = None):
        p = np.concatenate([np.asarray(a, np.int64) for a, _, _ in pairs]) if pairs else np.zeros(0, np.int64)
        q = np.concatenate([np.asarray(b, np.int64) for _, b, _ in pairs]) if pairs else np.zeros(0, np.int64)
        w = np.concatenate([np.round(np.asarray(c, np.float64) * SCALE) for _, _, c in pairs]) if pairs else np.zeros(0)
        cap = np.clip(w, 0, 2 ** 31 - 1).astype(np.int64)
        keep = cap > 0
        self.n = n
        self.free = np.ones(n, bool) if sink_side is None else ~np.asarray(sink_side, bool)
        build = _arcs_compiled if _arcs_compiled is not None else _arcs_numpy
        self.first, self.head, self.sister, self.cap, self.border, inflow = build(p[keep], q[keep], cap[keep], self.free)
        self.inflow = inflow[~self.free]
        self.rcap = self.cap.copy()                                   # the last cut's flow

    def cut(self, source_caps: np.ndarray, sink_caps: np.ndarray) -> np.ndarray:
        """(n,) bool: the source side (the smallest) of the minimum cut with terminal capacities
        ``source_caps`` (S -> p) and ``sink_caps`` (p -> T), rounded energies. Starts from the
        last cut's flow (the same answer as from none, in less time when the terminal links
        changed little)."""
        source = np.clip(source_caps, 0, 2 ** 31 - 1).astype(np.int64)
        sink = np.clip(sink_caps, 0, 2 ** 31 - 1).astype(np.int64)
        if not (sink[~self.free] > source[~self.free] + self.inflow).all():
            raise ValueError("a node of sink_side can be cut from the sink: its sink capacity is too small")
        sink = sink + self.border
        side = np.zeros(self.n, bool)
        if _maxflow_compiled is not None:
            side[self.free] = _maxflow_compiled(self.first, self.head, self.sister, self.cap, self.rcap,
                                                source[self.free], sink[self.free])
        else:
            side[self.free] = self._cut_scipy(source[self.free], sink[self.free])
        return side

    def _cut_scipy(self, source: np.ndarray, sink: np.ndarray) -> np.ndarray:
        """:meth:`cut` by scipy's Dinic (without numba): the same source side, cold each time."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import breadth_first_order, maximum_flow

        n = len(source)
        s, t = n, n + 1
        tail = np.repeat(np.arange(n), np.diff(self.first))
        rows = np.concatenate([np.full(n, s), np.arange(n), tail])
        cols = np.concatenate([np.arange(n), np.full(n, t), self.head])
        # scipy takes int32 (GrabCut: a sink capacity this large, border added, never saturates)
        caps = np.clip(np.concatenate([source, sink, self.cap]), 0, 2 ** 31 - 1).astype(np.int32)
        keep = caps > 0
        graph = csr_matrix((caps[keep], (rows[keep], cols[keep])), shape=(n + 2, n + 2))
        flow = maximum_flow(graph, s, t, method="dinic").flow
        residual = (graph - flow).tocsr()
        residual.data[residual.data < 0] = 0
        residual.eliminate_zeros()
        reached = breadth_first_order(residual, s, directed=True, return_predecessors=False)
        side = np.zeros(n + 2, bool)
        side[reached] = True
        return side[:n]


def min_cut(source_caps: np.ndarray, sink_caps: np.ndarray, pairs) -> np.ndarray:
    """(N,) bool: the source side of the minimum cut of a graph with terminal capacities
    ``source_caps`` (S -> p), ``sink_caps`` (p -> T) and symmetric pairwise ``pairs``."""
    return Graph(len(source_caps), pairs).cut(source_caps, sink_caps)


def grabcut_edges(window: np.ndarray, edges: np.ndarray, rect: tuple[int, int, int, int], iterations: int,
                  seed: int = 0, gamma: float = GAMMA, init: np.ndarray | None = None) -> np.ndarray:
    """(h, w) bool foreground of GrabCut+ on ``window`` ((h, w, C) colours, or any C features: the
    GMMs are over whatever the channels are) with the pairwise term of ``edges`` ((h, w) boundary
    map in [0, 1], or an (h, w, 3) image for GrabCut's colour-contrast term), rectangle ``rect`` =
    (x, y, w, h): pixels outside it are background, inside it unknown (``GC_INIT_WITH_RECT``).
    ``init``: (h, w) uint8 OpenCV GrabCut codes instead (``GC_INIT_WITH_MASK``): 0 background and 1
    foreground fixed, 2 probable background and 3 probable foreground unknown, starting as such."""
    h, w = window.shape[:2]
    x = window.reshape(h * w, -1).astype(np.float64)
    if init is None:
        rx, ry, rw, rh = rect
        codes = np.zeros((h, w), np.uint8)
        codes[ry:ry + rh, rx:rx + rw] = 3
    else:
        codes = init
    codes = codes.ravel()
    inside, sure = (codes == 2) | (codes == 3), codes == 1        # unknown; fixed foreground
    alpha = (codes == 1) | (codes == 3)
    pairs = pairwise_weights(edges, gamma)
    tied = 8 * np.round(gamma * SCALE) < BIG                         # no pair can cut an outside pixel from T
    fixed_bg = ~inside & ~sure
    graph = Graph(h * w, pairs, fixed_bg if tied else None)         # only the terminal links change
    comp = np.zeros(h * w, np.int64)
    comp[alpha] = _kmeans(x[alpha], seed)
    comp[~alpha] = _kmeans(x[~alpha], seed + 1)
    x_inside = x[inside]                                              # the pixels the cut decides
    for _ in range(iterations):
        x_fg, x_bg = x[alpha], x[~alpha]
        fg, bg = _fit(x_fg, comp[alpha]), _fit(x_bg, comp[~alpha])
        comp[alpha] = _component_logs(x_fg, fg).argmax(1)             # assign, then learn (OpenCV's order)
        comp[~alpha] = _component_logs(x_bg, bg).argmax(1)
        fg, bg = _fit(x_fg, comp[alpha]), _fit(x_bg, comp[~alpha])
        cost_bg = -_loglik(x_inside, bg) * SCALE                     # paid when p is labelled background
        cost_fg = -_loglik(x_inside, fg) * SCALE
        base = np.minimum(cost_bg, cost_fg)
        source = np.where(sure, float(BIG), 0.0)                          # S side = foreground
        source[inside] = np.round(cost_bg - base)
        sink = np.where(fixed_bg, float(BIG), 0.0)                        # fixed background
        sink[inside] = np.round(cost_fg - base)
        alpha = (graph.cut(source, sink) & inside) | sure
        if not alpha.any() or alpha.all():
            break
    return alpha.reshape(h, w)
