"""MCG-style segment proposals (numpy / scipy / scikit-image / OpenCV, loops compiled with numba).

Boundary strength comes from multi-scale colour gradients, or from a learned edge detector's
map when the caller passes one (``generate_proposals(..., edges)``). The output is the compact
form the BBAM refinement rule reads (``docs/PROPOSALS.md``): a superpixel map ``sp`` and a sparse
proposal x superpixel membership matrix ``M``.

Conventions
-----------
* ``image_rgb``: ``(H, W, 3) uint8`` RGB; grey images arrive as 3 equal channels.
* ``sp``: ``(H, W) int32`` finest-partition labels ``0 .. n-1``, every value used.
* ``M``: ``(P, n)`` CSR bool; row ``p`` is proposal ``p`` as a set of superpixels.
* Region ids inside a hierarchy: leaves ``0 .. n-1`` are superpixels, merge ``k`` creates node
  ``n + k``; nodes are described by membership rows packed 64 regions to a uint64 word
  (``(n_nodes, ceil(n / 64))``, bit ``r & 63`` of word ``r >> 6``: region ``r``).

Pipeline of :func:`generate_proposals`
--------------------------------------
1. Boundary strength ``(H, W) float32`` in ``[0, 1]``: Lab gradient magnitude (channels
   weighted by ``lab_weights``) at several image scales, each resized back to full resolution,
   averaged, divided by a high percentile.
2. Finest partition: watershed from the local minima of the (slightly smoothed) boundary map,
   then regions below ``min_region_size`` pixels are merged into the neighbour across their
   weakest boundary (repeated until none is left).
3. Region adjacency graph: per adjacent pair the summed boundary strength and length of the
   shared boundary (4-connectivity); per region size, bounding box, Lab / HSV colour histograms
   and a texture (gradient orientation) histogram.
4. Start partitions: Felzenszwalb-Huttenlocher on the region graph (edge weight = mean boundary
   strength) at each ``start_k``, for the main boundary map and for each of ``extra_maps``
   (other channel weightings scoring the same superpixel edges). From each start partition,
   several greedy merge hierarchies (selective-search style) merge the most similar adjacent
   pair until one region is left; similarity is a weighted sum of boundary weakness, colour and
   texture histogram intersection, size and fill terms. Every node of every hierarchy is a
   proposal; the superpixels are proposals too.
5. At cut levels of every hierarchy (the partition left when K regions remain), adjacent pairs
   and connected triplets of regions are added as proposals.
6. Holes filled (superpixels not connected to the image border outside a proposal join it),
   exact duplicates dropped. Both run per start partition on start regions (exact there: a
   proposal's complement is a union of start regions, each connected), before the proposals are
   expanded to superpixels as sparse rows; duplicates across start partitions are dropped on the
   sparse rows.

The loops run compiled: ``proposal_pixels`` (watershed, adjacency, small regions, region
statistics, gradient magnitude), ``proposal_merge`` (start partitions, merge hierarchies),
``proposal_rows`` (packed rows: nodes, pairs and triplets, holes, duplicates, expansion to
superpixels). Each gives, to the bit, what the numpy / Python code it replaced gave
(``tests/proposals_reference.py`` keeps that code; ``tests/test_proposal_kernels.py`` compares).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import scipy.sparse as sps
from scipy import ndimage as ndi
from skimage.morphology import local_minima

from . import proposal_merge, proposal_pixels, proposal_rows
from .proposal_params import ProposalParams

# -----------------------------------------------------------------------------------------------
# 1-2: boundary map and finest partition


def _float_lab(image_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> OpenCV float Lab (L 0..100, a / b about -100..100)."""
    return cv2.cvtColor(image_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _lab_gradients(lab: np.ndarray, lab_weights: tuple[float, ...], params: ProposalParams) -> list:
    """Per scale of ``params.scales``, the (gx, gy) Sobel gradients, (h, w, 3) float32 each, of
    the smoothed float Lab image with its channels weighted by ``lab_weights``."""
    H, W = lab.shape[:2]
    if tuple(lab_weights) != (1.0, 1.0, 1.0):
        lab = lab * np.array(lab_weights, np.float32)
    out = []
    for s in params.scales:
        size = (max(1, round(W * s)), max(1, round(H * s)))
        x = lab if s == 1.0 else cv2.resize(lab, size, interpolation=cv2.INTER_AREA)
        x = cv2.GaussianBlur(x, (0, 0), params.gradient_sigma)
        out.append((cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1)))
    return out


def _boundary_map(image_rgb: np.ndarray, params: ProposalParams,
                  lab_weights: tuple[float, ...] | None = None, lab: np.ndarray | None = None,
                  gradients: list | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 boundary strength in [0, 1]: the multi-scale Lab
    gradient magnitude (channels weighted by ``lab_weights``, default ``params.lab_weights``)
    divided by its ``boundary_percentile``-th percentile and clipped. ``lab``: the image's
    :func:`_float_lab`, when the caller has it (several maps share one conversion).
    ``gradients``: :func:`_lab_gradients` of weights that equal ``lab_weights`` on each channel
    ``lab_weights`` does not zero (maps share them: OpenCV filters each channel on its own, and
    a zeroed channel adds nothing)."""
    lab_weights = params.lab_weights if lab_weights is None else lab_weights
    H, W = image_rgb.shape[:2]
    if gradients is None:
        gradients = _lab_gradients(_float_lab(image_rgb) if lab is None else lab, lab_weights, params)
    use = np.array([w != 0 for w in lab_weights], bool)
    acc = np.zeros((H, W), np.float32)
    for s, (gx, gy) in zip(params.scales, gradients):
        mag = proposal_pixels.gradient_magnitude(gx, gy, use)
        acc += mag if s == 1.0 else cv2.resize(mag, (W, H), interpolation=cv2.INTER_LINEAR)
    return _normalised(acc, params)


def _shared_gradients(known: dict, lab_weights: tuple[float, ...]):
    """Gradients in ``known`` ({weights: :func:`_lab_gradients`}) that a map of ``lab_weights``
    can use (see :func:`_boundary_map`), or None."""
    for weights, gradients in known.items():
        if all(w == 0 or w == v for w, v in zip(lab_weights, weights)):
            return gradients
    return None


def _normalised(strength: np.ndarray, params: ProposalParams, thinned: bool = False) -> np.ndarray:
    """Boundary strength divided by its ``boundary_percentile``-th percentile, clipped to [0, 1]
    (float32): similarity terms then share one range whatever the image's contrast or the
    detector's calibration. ``thinned``: a detector's map, whose edges may be so thin that the
    percentile is 0; the strongest edge sets the scale then (colour maps keep their behaviour:
    on a photo the percentile is never 0)."""
    strength = np.asarray(strength, dtype=np.float32)
    scale = np.percentile(strength, params.boundary_percentile)
    if thinned and scale <= 1e-6:
        scale = strength.max()
    return np.minimum(strength / max(float(scale), 1e-6), 1.0).astype(np.float32)


def _adjacency(sp: np.ndarray, bnd: np.ndarray, n: int):
    """Region adjacency of a label map (4-connectivity).

    Returns ``(ei, ej, bsum, blen)``: unique pairs ``ei < ej`` and, per pair, the summed boundary
    strength (max of the two pixels across each crossing) and the number of crossings.
    Compiled: ``proposal_pixels.adjacency``.
    """
    return proposal_pixels.adjacency(np.ascontiguousarray(sp), np.ascontiguousarray(bnd), int(n))


def _watershed(image: np.ndarray) -> np.ndarray:
    """scikit-image's ``watershed(image)`` (markers: the local minima, 4-connected), compiled:
    (H, W) int32 labels 1..L, every one used (a marker keeps its own label). By steepest
    descent where that decides every pixel (``proposal_pixels.watershed_by_descent``), else
    by its own priority flooding, step for step (``proposal_pixels.watershed_flood``)."""
    minima = local_minima(image, connectivity=1)
    markers = ndi.label(minima, structure=ndi.generate_binary_structure(2, 1))[0].astype(np.int32)
    if np.isfinite(image).all():
        labels = proposal_pixels.watershed_by_descent(image, markers)
        if labels is not None:
            return labels
    output = np.pad(markers, 1)
    mask = np.pad(np.ones(image.shape, bool), 1)
    W = output.shape[1]
    proposal_pixels.watershed_flood(np.pad(image.astype(np.float64), 1).ravel(), output.ravel(), mask.ravel(),
                                    np.array([-W, -1, 1, W], np.int64))
    return output[1:-1, 1:-1]


def _finest_partition(bnd: np.ndarray, params: ProposalParams) -> np.ndarray:
    """(H, W) boundary map -> (H, W) int32 superpixel map; every region >= min_region_size px
    (unless the image is smaller)."""
    smooth = cv2.GaussianBlur(bnd, (0, 0), params.watershed_sigma) if params.watershed_sigma > 0 else bnd
    sp = _watershed(smooth) - np.int32(1)       # labels 0..n-1, every one used
    return proposal_pixels.merge_small_regions(sp, np.ascontiguousarray(bnd), int(params.min_region_size))


# -----------------------------------------------------------------------------------------------
# 3: region features


def _histograms(counts: np.ndarray) -> np.ndarray:
    """(n, d) int code counts -> (n, d) float32 per-region histograms, L1-normalised over all
    channels together."""
    h = counts.astype(np.float32)
    return h / h.sum(axis=1, keepdims=True)


def _region_features(image_rgb: np.ndarray, sp: np.ndarray, n: int, params: ProposalParams):
    """Per-region size (n,), bounding box (n, 4) as (y0, x0, y1, x1) half-open, and histograms
    {'lab', 'hsv', 'texture'} each (n, d) float32: Lab and HSV codes (``colour_bins`` per
    channel) and a texture code (gradient orientation (8 bins) x 2 magnitude levels, plus one
    "flat" code), counted in one pass (``proposal_pixels.region_stats``)."""
    lab = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2Lab)
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)  # H in 0..179
    grey = cv2.GaussianBlur(lab[..., 0].astype(np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    size, box, lab_n, hsv_n, tex_n = proposal_pixels.region_stats(
        np.ascontiguousarray(sp), int(n), lab, hsv, np.hypot(gx, gy), np.arctan2(gy, gx), int(params.colour_bins))
    return size, box, {"lab": _histograms(lab_n), "hsv": _histograms(hsv_n), "texture": _histograms(tex_n)}


# -----------------------------------------------------------------------------------------------
# 4: greedy merge hierarchy


def _graph_segmentation(n, ei, ej, bmean, size, k) -> np.ndarray:
    """Felzenszwalb-Huttenlocher segmentation of the region graph: (n,) leaf -> start-region
    labels 0..m-1. Edges are taken by increasing mean boundary; two components merge when the
    edge is no stronger than either's internal maximum plus ``k / size`` (pixels). Compiled:
    ``proposal_merge.graph_segmentation``."""
    return proposal_merge.graph_segmentation(int(n), np.asarray(ei, np.int64), np.asarray(ej, np.int64),
                                             np.asarray(bmean, np.float64), np.asarray(size, np.float64), float(k))


def _contract(lab, m, ei, ej, bsum, blen, size, box, feats):
    """Region graph and features of leaves grouped by ``lab`` (n,) -> m regions."""
    u, v = lab[ei], lab[ej]
    keep = u != v
    key = np.minimum(u, v)[keep] * m + np.maximum(u, v)[keep]
    uniq, inv = np.unique(key, return_inverse=True)
    s = np.bincount(lab, size, minlength=m)
    b = np.empty((m, 4))
    for k, red in enumerate((np.minimum, np.minimum, np.maximum, np.maximum)):
        b[:, k] = box[:, k].max() + 1 if k < 2 else -1
        red.at(b[:, k], lab, box[:, k])
    group = sps.csr_matrix((size, (lab, np.arange(len(lab)))), shape=(m, len(lab)))
    f = {name: np.asarray((group @ h) / s[:, None], np.float32) for name, h in feats.items()}
    return (uniq // m, uniq % m, np.bincount(inv, bsum[keep], minlength=len(uniq)),
            np.bincount(inv, blen[keep], minlength=len(uniq)), s, b, f)


def _merge_hierarchy(n, ei, ej, bsum, blen, size0, box0, feats, weights, area) -> np.ndarray:
    """Greedy merging of the most similar adjacent pair until one region is left.

    Returns merges ``(n-1, 2)`` int64: merge ``k`` joins nodes ``merges[k]`` into node ``n+k``.
    The loop is compiled (``proposal_merge.merge_hierarchy``); this gathers its inputs. A
    histogram's weight multiplies its float32 intersection in the precision numpy gives the
    product (float32 for a Python number: ``terms[:, 3]``).
    """
    wb, wl, wh, wt, ws, wf = weights
    hists = [(w, feats[name]) for w, name in ((wl, "lab"), (wh, "hsv"), (wt, "texture")) if w]
    hist = np.concatenate([np.zeros((n, 0), np.float32)] + [np.asarray(h, np.float32) for _, h in hists], axis=1)
    first = np.cumsum([0] + [h.shape[1] for _, h in hists])
    terms = np.array([(first[t], h.shape[1], w, (w * np.ones(1, np.float32)).dtype == np.float32)
                      for t, (w, h) in enumerate(hists)], np.float64).reshape(-1, 4)
    return proposal_merge.merge_hierarchy(
        int(n), np.asarray(ei, np.int64), np.asarray(ej, np.int64), np.asarray(bsum, np.float64),
        np.asarray(blen, np.float64), np.asarray(size0, np.float64), np.ascontiguousarray(box0, np.float64),
        np.ascontiguousarray(hist), terms, float(wb), float(ws), float(wf), float(area))


def _node_members(merges: np.ndarray, n: int) -> np.ndarray:
    """(n-1, 2) merges -> (2n-1, W) membership of every hierarchy node, packed (bit r of word
    r >> 6: region r, ``proposal_rows``)."""
    return proposal_rows.node_members(np.asarray(merges, np.int64), int(n))


# -----------------------------------------------------------------------------------------------
# 5: pairs and triplets at cut levels


def _cut_combinations(merges, mem, n, ei, ej, levels_pairs, levels_triplets) -> list[np.ndarray]:
    """Adjacent pairs / connected triplets of the regions alive when K regions are left.

    Returns a list of packed membership blocks (one: ``proposal_rows.cut_combinations``): per
    level K ascending, pairs ordered by their first then second region, triplets by centre then
    the two neighbours, regions by node id.
    """
    levels = np.array([K for K in sorted(set(levels_pairs) | set(levels_triplets)) if 2 <= K < n], np.int64)
    pairs = np.array([K in levels_pairs for K in levels.tolist()], bool)
    triplets = np.array([K in levels_triplets for K in levels.tolist()], bool)
    return [proposal_rows.cut_combinations(np.asarray(merges, np.int64), mem, int(n), np.asarray(ei, np.int64),
                                           np.asarray(ej, np.int64), levels, pairs, triplets)]


# -----------------------------------------------------------------------------------------------
# 6: hole filling and de-duplication


def _fill_holes(
    props: np.ndarray, border: np.ndarray, ei: np.ndarray, ej: np.ndarray
) -> np.ndarray:
    """(P, n) bool -> (P, n) bool with enclosed regions added; ``border`` (n,) bool marks the
    regions touching the image border (superpixels or start regions, whichever ``props`` uses).

    A superpixel outside proposal p is a hole when no path of superpixels outside p links it to a
    superpixel touching the image border. Reachability runs on bits packed over proposals,
    spread from the border superpixels (``proposal_rows.fill_holes``, on packed rows: the
    generator calls it so).
    """
    n = props.shape[1]
    filled = proposal_rows.fill_holes(_pack(props), n, np.asarray(border, bool), np.asarray(ei, np.int64),
                                      np.asarray(ej, np.int64))
    return np.unpackbits(filled.view(np.uint8), axis=1, count=n, bitorder="little").astype(bool)


def _pack(props: np.ndarray) -> np.ndarray:
    """(P, n) bool -> (P, ceil(n / 64)) uint64, bit r of word r >> 6 set when props[:, r]."""
    packed = np.packbits(np.asarray(props, bool), axis=1, bitorder="little")
    padded = np.zeros((len(packed), -(-packed.shape[1] // 8) * 8), np.uint8)
    padded[:, :packed.shape[1]] = packed
    return padded.view("<u8").astype(np.uint64)


def _unique_rows(props: np.ndarray) -> np.ndarray:
    """Drop exact duplicate and empty rows of packed rows (first occurrence order)."""
    return props[proposal_rows.first_unique_rows(props)]


# -----------------------------------------------------------------------------------------------
# public API


def generate_proposals(
    image_rgb: np.ndarray, params: ProposalParams = ProposalParams(), edges: np.ndarray | None = None
) -> tuple[np.ndarray, sps.csr_matrix]:
    """Segment proposals of one image.

    image_rgb: (H, W, 3) uint8 RGB (grey images come as 3 equal channels) ->
    ``sp``: (H, W) int32 finest-partition superpixel map, values 0..n-1 (every value used);
    ``M``: (P, n) CSR bool membership; row p = proposal p as a set of superpixels; no two rows
    equal, no empty rows. Deterministic.

    ``edges``: optional (H, W) boundary strength in [0, 1] from elsewhere (a learned edge
    detector: what MCG builds on). It replaces the colour-gradient main map: the superpixels
    and the main hierarchies follow it; ``extra_maps`` still add colour hierarchies on the same
    superpixels. Normalised like the colour map (divided by its ``boundary_percentile``).
    """
    image_rgb = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    lab = _float_lab(image_rgb)                             # one conversion for every boundary map
    known = {}                                              # gradients of each weighting made
    if edges is None:
        known[tuple(params.lab_weights)] = _lab_gradients(lab, params.lab_weights, params)
        bnd = _boundary_map(image_rgb, params, gradients=known[tuple(params.lab_weights)])
    else:
        bnd = _normalised(edges, params, thinned=True)
    sp = _finest_partition(bnd, params)
    n = int(sp.max()) + 1
    if n == 1:
        return sp, sps.csr_matrix(np.ones((1, 1), bool))
    size, box, feats = _region_features(image_rgb, sp, n, params)
    columns = _row_weights(n)
    blocks = [(np.arange(n + 1), np.arange(n, dtype=np.int32), columns)]      # the superpixels
    border = np.zeros(n, bool)
    border[np.unique(np.r_[sp[0], sp[-1], sp[:, 0], sp[:, -1]])] = True
    graphs = [_adjacency(sp, bnd, n)]
    for weights in map(tuple, params.extra_maps):
        gradients = _shared_gradients(known, weights)
        if gradients is None:
            gradients = known[weights] = _lab_gradients(lab, weights, params)
        graphs.append(_adjacency(sp, _boundary_map(image_rgb, params, weights, gradients=gradients), n))
    for (ei, ej, bsum, blen), k in itertools.product(graphs, params.start_k):
        lab = _graph_segmentation(n, ei, ej, bsum / blen, size, k)
        m = int(lab.max()) + 1
        if m < 2:
            continue
        g = _contract(lab, m, ei, ej, bsum, blen, size, box, feats)
        coarse = []
        for weights in params.strategies:
            merges = _merge_hierarchy(m, *g, weights, sp.size)
            mem = _node_members(merges, m)
            coarse += [mem] + _cut_combinations(
                merges, mem, m, g[0], g[1], params.pair_levels, params.triplet_levels
            )
        # hole filling is exact on start regions: a proposal's complement is a union of them
        # and each start region is connected
        cb = np.zeros(m, bool)
        cb[lab[border]] = True
        coarse = _unique_rows(proposal_rows.fill_holes(_unique_rows(np.concatenate(coarse)), m, cb, g[0], g[1]))
        blocks.append(proposal_rows.expand_rows(coarse, lab, n, columns))    # start regions -> superpixels
    return sp, _unique_rows_of_blocks(blocks, n)


def _row_weights(n: int) -> np.ndarray:
    """(n, 2) float64 fixed random weights of the columns: a row's two sums of them group it with
    the rows that may equal it (:func:`_unique_sparse_rows`)."""
    return np.random.default_rng(0).random((n, 2))


def _unique_rows_of_blocks(blocks: list, n: int) -> sps.csr_matrix:
    """Blocks of canonical CSR rows ``(indptr, indices, row_weight_sums)``, stacked, their exact
    duplicates dropped (first occurrence kept, order kept) as :func:`_unique_sparse_rows` does."""
    offsets = np.cumsum([0] + [ptr[-1] for ptr, _, _ in blocks])
    indptr = np.concatenate([blocks[0][0][:1]] + [ptr[1:] + off for (ptr, _, _), off in zip(blocks, offsets)])
    indices = np.concatenate([ind for _, ind, _ in blocks])
    sums = np.concatenate([h for _, _, h in blocks])
    keep = proposal_rows.first_unique_csr_rows(indptr, indices, sums)
    indptr, indices = proposal_rows.take_rows(indptr, indices, keep)
    return sps.csr_matrix((np.ones(len(indices), bool), indices, indptr), shape=(len(keep), n))


def _unique_sparse_rows(M: sps.csr_matrix) -> sps.csr_matrix:
    """Drop exact duplicate rows of a CSR bool matrix (first occurrence kept, order kept).

    Rows are grouped by (length, two sums of fixed random weights of their columns): equal rows
    always share a group. A row is dropped only if its column list equals that of the last kept
    row of its group, so no distinct row is ever dropped (a hash collision could at worst let a
    duplicate survive). Compiled: ``proposal_rows.first_unique_csr_rows``.
    """
    M = M.tocsr()
    M.sum_duplicates()
    M.sort_indices()
    sums = proposal_rows.row_weight_sums(M.indptr, M.indices, _row_weights(M.shape[1]))
    return M[proposal_rows.first_unique_csr_rows(M.indptr, M.indices, sums)]
