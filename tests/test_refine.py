from __future__ import annotations

import numpy as np
import scipy.sparse as sparse

from pseudolabel.algorithms.refine import (NO_PROPOSAL, REFINED, SMALL_BOX, RefineParams, proposal_stats,
                                           refine_masks, refine_tight_loose)
from pseudolabel.core.labels import proposal_union as decode_union


def grid_superpixels(h, w, cell):
    """Superpixels = cells of a regular grid; returns (sp, number of superpixels)."""
    rows, cols = np.mgrid[0:h, 0:w]
    per_row = -(-w // cell)
    return ((rows // cell) * per_row + cols // cell).astype(np.int32), per_row * -(-h // cell)


def membership(rows, n):
    data, indices, indptr = [], [], [0]
    for r in rows:
        indices.extend(sorted(r))
        data.extend([True] * len(r))
        indptr.append(len(indices))
    return sparse.csr_matrix((np.array(data, bool), np.array(indices), np.array(indptr)), shape=(len(rows), n))


def test_sparse_counts_equal_decoded_masks_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(20, 60, 2)
        n = int(rng.integers(5, 40))
        sp = rng.integers(0, n, (h, w)).astype(np.int32)
        sp[0, :n] = np.arange(n)[: min(n, w)] if n <= w else sp[0, :n]
        props = [rng.choice(n, size=rng.integers(1, 6), replace=False) for _ in range(rng.integers(1, 15))]
        M = membership(props, n)
        k = int(rng.integers(1, 4))
        masks = rng.random((k, h, w)) < 0.4
        boxes = []
        for _ in range(k):
            x0, y0 = rng.integers(0, w - 2), rng.integers(0, h - 2)
            boxes.append((x0, y0, rng.integers(x0 + 1, w + 1), rng.integers(y0 + 1, h + 1)))
        boxes = np.array(boxes)
        area, inter, inbox, outside = proposal_stats(sp, M, masks, boxes)
        for p in range(M.shape[0]):
            prop = decode_union(sp, M, np.array([p]))
            assert area[p] == prop.sum()
            for j in range(k):
                x0, y0, x1, y1 = boxes[j]
                inb = np.zeros_like(prop)
                inb[y0:y1, x0:x1] = True
                assert inter[p, j] == (prop & masks[j]).sum()
                assert inbox[p, j] == (prop & inb).sum()
                entirely_out = [s for s in M[p].indices if not (inb & (sp == s)).any()]
                assert outside[p, j] == len(entirely_out)


def test_contained_union_plus_best_iou_cut_to_box():
    sp, n = grid_superpixels(64, 64, 8)           # 8 x 8 cells of 8 px
    cell = lambda r, c: r * 8 + c
    box = np.array([[8, 8, 48, 48]])              # cells rows/cols 1..5
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 8:40, 8:40] = True                    # cells 1..4 x 1..4
    props = [
        [cell(1, 1), cell(1, 2)],                 # inside the mask: contained
        [cell(2, 2), cell(2, 3), cell(3, 3)],     # contained
        [cell(r, c) for r in range(1, 5) for c in range(1, 6)],   # best IoU, in the box
        [cell(0, 0), cell(1, 1)],                 # uses a superpixel entirely outside the box: dropped
    ]
    out, status = refine_masks(mask, box, sp, membership(props, n))
    assert status == [REFINED]
    expected = np.zeros((64, 64), bool)
    expected[8:40, 8:48] = True                   # union of the three usable proposals
    assert (out[0] == expected).all()


def test_best_iou_only_among_proposals_inside_the_box():
    sp = np.zeros((40, 80), np.int32)
    sp[:, 40:] = 1                                 # superpixel 1 straddles the box's right edge
    box = np.array([[0, 0, 50, 40]])
    mask = np.zeros((1, 40, 80), bool)
    mask[0, :, :48] = True
    both = [0, 1]                                  # 60% in the mask (not contained), 62.5% in the box
    out, status = refine_masks(mask, box, sp, membership([both], 2))
    assert status == [NO_PROPOSAL] and (out == mask).all()   # not eligible for the IoU pick
    out, status = refine_masks(mask, box, sp, membership([both, [0]], 2))
    assert status == [REFINED] and (out[0] == (np.arange(80) < 40)[None, :]).all()


def test_box_clipping_of_the_union():
    sp = np.zeros((40, 40), np.int32)
    sp[:, 20:] = 1                                 # two superpixels, each straddling the box edge
    box = np.array([[0, 0, 32, 40]])
    mask = np.zeros((1, 40, 40), bool)
    mask[0, :, :20] = True
    out, status = refine_masks(mask, box, sp, membership([[0]], 2))
    assert status == [REFINED] and (out[0] == mask[0]).all()
    out, status = refine_masks(mask, box, sp, membership([[0, 1]], 2), RefineParams(inbox_frac=0.5))
    expected = np.zeros((40, 40), bool)
    expected[:, :32] = True                        # the pick covers both; cut to the box
    assert status == [REFINED] and (out[0] == expected).all()


def test_small_boxes_are_left_alone():
    sp, n = grid_superpixels(64, 64, 8)
    box = np.array([[8, 8, 30, 60]])               # 22 px wide < 32
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 10:20, 10:20] = True
    out, status = refine_masks(mask, box, sp, membership([[9, 10]], n))
    assert status == [SMALL_BOX] and (out == mask).all()


def test_loose_contains_tight_after_refinement():
    sp, n = grid_superpixels(64, 64, 8)
    box = np.array([[0, 0, 64, 64]])
    tight = np.zeros((1, 64, 64), bool)
    tight[0, 16:48, 16:48] = True
    loose = np.zeros((1, 64, 64), bool)
    loose[0, 30:34, 30:34] = True                  # a degenerate loose mask smaller than tight
    props = [[r * 8 + c for r in range(2, 6) for c in range(2, 6)]]
    t, l, status = refine_tight_loose(tight, loose, box, sp, membership(props, n))
    assert status == [REFINED] and (l | t == l).all()


def test_bbam_masks_are_skipped_by_area_as_published_grabcut_by_side():
    from pseudolabel.algorithms.refine import large_enough
    params = RefineParams()
    assert large_enough((0, 0, 20, 60), params, by_area=True)          # 1200 px >= 32 x 32
    assert not large_enough((0, 0, 20, 60), params)                    # a side under 32 px
    assert not large_enough((0, 0, 31, 33), params, by_area=True)      # 1023 px
    assert large_enough((0, 0, 32, 32), params) and large_enough((0, 0, 32, 32), params, by_area=True)
