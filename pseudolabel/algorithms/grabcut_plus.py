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

The min cut is scipy's ``maximum_flow`` (Dinic; scipy is a dependency already, BSD licence): no
GPL library (PyMaxflow) and no 30 MB solver suite (OR-Tools) for one max flow. Capacities are
integers, the energies scaled by :data:`SCALE`. Deterministic for a seed (k-means is seeded).
"""
from __future__ import annotations

import numpy as np

K = 5
GAMMA = 50.0
SCALE = 100.0
"""Energies x SCALE, rounded: scipy's max flow takes integer capacities."""
BIG = 10 ** 7
"""Capacity tying a pixel outside the rectangle to the background."""


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
        d = x - means[k]
        out[:, k] = np.log(weights[k]) - 0.5 * logdet[k] - 0.5 * np.einsum("ni,ij,nj->n", d, inv[k], d)
    return out


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


def min_cut(source_caps: np.ndarray, sink_caps: np.ndarray, pairs) -> np.ndarray:
    """(N,) bool: the source side of the minimum cut of a graph with terminal capacities
    ``source_caps`` (S -> p), ``sink_caps`` (p -> T) and symmetric pairwise ``pairs``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    n = len(source_caps)
    s, t = n, n + 1
    rows, cols, caps = [np.full(n, s), np.arange(n)], [np.arange(n), np.full(n, t)], [source_caps, sink_caps]
    for p, q, wt in pairs:
        c = np.round(wt * SCALE)
        rows += [p, q]
        cols += [q, p]
        caps += [c, c]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    caps = np.clip(np.concatenate(caps), 0, 2 ** 31 - 1).astype(np.int32)
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
    comp = np.zeros(h * w, np.int64)
    comp[alpha] = _kmeans(x[alpha], seed)
    comp[~alpha] = _kmeans(x[~alpha], seed + 1)
    for _ in range(iterations):
        fg, bg = _fit(x[alpha], comp[alpha]), _fit(x[~alpha], comp[~alpha])
        comp[alpha] = _component_logs(x[alpha], fg).argmax(1)         # assign, then learn (OpenCV's order)
        comp[~alpha] = _component_logs(x[~alpha], bg).argmax(1)
        fg, bg = _fit(x[alpha], comp[alpha]), _fit(x[~alpha], comp[~alpha])
        cost_bg = -_loglik(x, bg) * SCALE                            # paid when p is labelled background
        cost_fg = -_loglik(x, fg) * SCALE
        base = np.minimum(cost_bg, cost_fg)
        source = np.where(inside, np.round(cost_bg - base), np.where(sure, BIG, 0))   # S side = foreground
        sink = np.where(inside, np.round(cost_fg - base), np.where(sure, 0, BIG))
        alpha = (min_cut(source, sink, pairs) & inside) | sure
        if not alpha.any() or alpha.all():
            break
    return alpha.reshape(h, w)
