"""The MCG-style generator itself (``algorithms/proposals.py``) on drawn images."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sps

from pseudolabel.algorithms.proposals import (
    ProposalParams, _fill_holes, _normalised, _unique_sparse_rows, generate_proposals,
)
from pseudolabel.evaluation.proposals import best_overlaps
from pseudolabel.core.labels import proposal_union


def decode(sp, M, p):
    return proposal_union(sp, M, [p])

from .synth import outline


def drawn_scene(seed=0):
    """(96, 128, 3) uint8 photo-like scene: a shaded background, a red disc and a blue bar on
    mild noise; returns the image and its instance map (1 = disc, 2 = bar)."""
    rng = np.random.default_rng(seed)
    H, W = 96, 128
    yy, xx = np.mgrid[:H, :W]
    img = np.empty((H, W, 3), np.float64)
    img[...] = (90 + 40 * xx / W)[..., None]                       # grey ramp
    inst = np.zeros((H, W), np.uint8)
    disc = (yy - 40) ** 2 + (xx - 40) ** 2 < 18 ** 2
    img[disc] = (200, 40, 40)
    inst[disc] = 1
    bar = (yy >= 55) & (yy < 85) & (xx >= 80) & (xx < 118)
    img[bar] = (40, 60, 190)
    inst[bar] = 2
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), inst


def rows_as_sets(M):
    M = M.tocsr()
    return {tuple(M.indices[M.indptr[p]:M.indptr[p + 1]]) for p in range(M.shape[0])}


def test_output_contract_and_determinism():
    img, _ = drawn_scene()
    sp, M = generate_proposals(img)
    n = M.shape[1]
    assert sp.shape == img.shape[:2] and sp.dtype == np.int32
    assert set(np.unique(sp)) == set(range(n))                      # every superpixel id used
    assert np.diff(M.tocsr().indptr).min() > 0                       # no empty proposal
    assert len(rows_as_sets(M)) == M.shape[0]                        # no duplicate proposal
    sp2, M2 = generate_proposals(img)
    assert np.array_equal(sp, sp2) and (M != M2).nnz == 0


def test_given_edges_find_objects_that_colour_cannot():
    """Objects painted in the background's own colours are invisible to colour gradients; a
    boundary map from elsewhere (a learned edge detector) outlining them is what finds them."""
    rng = np.random.default_rng(1)
    H, W = 96, 128
    img = np.clip(rng.normal(128, 6, (H, W, 3)), 0, 255).astype(np.uint8)   # texture only
    _, inst = drawn_scene()
    edges = outline(inst) * 0.8
    found = [r.best for r in best_overlaps(*generate_proposals(img, edges=edges), inst)]
    blind = [r.best for r in best_overlaps(*generate_proposals(img), inst)]
    assert min(found) > 0.9 and max(blind) < 0.7, (found, blind)     # not even recall@0.7 blind


def test_given_edges_are_normalised_like_colour_maps():
    """Only the shape of a detector's output matters, not its calibration: the same map at a
    quarter of the strength gives the same proposals."""
    img, inst = drawn_scene()
    sp, M = generate_proposals(img, edges=outline(inst))
    sp4, M4 = generate_proposals(img, edges=outline(inst) / 4)
    assert np.array_equal(sp, sp4) and (M != M4).nnz == 0
    # thinned edges can leave the 99th percentile at 0: the strongest edge sets the scale
    # then, so weak and strong edges stay apart instead of all saturating
    sparse_map = np.zeros((200, 200), np.float32)
    sparse_map[50, 20:120] = 0.9
    sparse_map[150, 20:120] = 0.2
    out = _normalised(sparse_map, ProposalParams(), thinned=True)
    assert out[50, 50] == 1.0 and out[150, 50] == pytest.approx(0.2 / 0.9) and out.max() == 1.0


def test_drawn_objects_are_found():
    img, inst = drawn_scene()
    sp, M = generate_proposals(img)
    best = [r.best for r in best_overlaps(sp, M, inst)]
    assert len(best) == 2 and min(best) > 0.9, best
    # decoding a proposal is a lookup over the superpixel map
    p = int(np.argmax([(decode(sp, M, i) & (inst == 1)).sum() / (decode(sp, M, i) | (inst == 1)).sum()
                       for i in range(M.shape[0])]))
    assert ((decode(sp, M, p) == (inst == 1)).mean()) > 0.98


def test_extra_maps_only_add_proposals():
    import cv2
    from skimage import data
    img = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)  # a real photo
    sp1, one_map = generate_proposals(img, ProposalParams(extra_maps=()))
    sp2, two_maps = generate_proposals(img, ProposalParams(extra_maps=((0.0, 1.0, 1.0),)))
    assert np.array_equal(sp1, sp2)                                   # same superpixels
    assert rows_as_sets(one_map) <= rows_as_sets(two_maps)
    assert two_maps.shape[0] > one_map.shape[0]


def test_fill_holes_adds_enclosed_regions_only():
    # 3x3 grid of regions, ids row by row; the centre (4) is the only one off the border
    grid = np.arange(9).reshape(3, 3)
    ei, ej = [], []
    for y in range(3):
        for x in range(3):
            if x < 2:
                ei.append(grid[y, x]); ej.append(grid[y, x + 1])
            if y < 2:
                ei.append(grid[y, x]); ej.append(grid[y + 1, x])
    border = np.ones(9, bool)
    border[4] = False
    ring = np.ones(9, bool)
    ring[4] = False                                       # a ring around the centre
    open_ring = ring.copy()
    open_ring[1] = False                                  # a gap links the centre to the border
    props = np.stack([ring, open_ring])
    filled = _fill_holes(props, border, np.array(ei), np.array(ej))
    assert filled[0].all()                                # the hole is filled
    assert np.array_equal(filled[1], open_ring)           # nothing enclosed: unchanged


def test_unique_sparse_rows_drops_exact_duplicates_only():
    rows = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]], bool)
    out = _unique_sparse_rows(sps.csr_matrix(rows)).toarray()
    assert out.tolist() == [[True, False, True, False], [False, True, True, False], [True, False, True, True]]


@pytest.mark.parametrize("option, value, message", [
    ("--extra-maps", "[[1, 2]]", "three non-negative Lab channel weights"),
    ("--extra-maps", "[[0, 0, 0]]", "not all zero"),
    ("--lab-weights", "[1, -1, 1]", "--lab-weights: a boundary map is three"),
    ("--extra-maps", "[0, 1, 1]", "--extra-maps: must be a list of lists"),
    ("--strategies", "[[1, 0, 0]]", "each is 6 weights"),
    ("--scales", "[]", "--scales: must not be empty"),
    ("--scales", "[1, 0]", "--scales: must be > 0, <= 2, got 0.0"),
    ("--extra-maps", "[[0, 1, 1]", "--extra-maps: not a JSON list"),
])
def test_bad_generator_options_are_refused_with_the_reason(invoke, voc_root, option, value, message):
    result = invoke("proposals", "--data-root", voc_root, option, value)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_generator_options_accept_lists_and_whole_numbers():
    from pseudolabel.runner import cache_key
    from pseudolabel.stages.proposals import ProposalConfig
    given = ProposalConfig(extra_maps=[[0, 1, 1]], scales=[1, 0.5, 0.25])
    assert given == ProposalConfig()
    assert cache_key(given, {}) == cache_key(ProposalConfig(), {})      # one configuration, one store
