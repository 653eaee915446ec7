"""BBAM's proposal refinement rule (CVPR 2021), with exact pixel counts from the sparse
proposal x superpixel form (no proposal is ever decoded to count).

For an object's mask T, its box b and proposals m_i (unions of superpixels):

    T_r = ( union{ m_i : |m_i ∩ T| / |m_i| > 0.95 }  ∪  argmax_i IoU(m_i, T) ) ∩ b

1. boxes smaller than ``min_box`` x ``min_box`` px are left as they are;
2. proposals using a superpixel that lies entirely outside b are dropped first;
3. "contained" proposals: more than ``contain_frac`` of their pixels lie in T;
4. the best-IoU pick is taken only among proposals with more than ``inbox_frac`` of their
   pixels inside b (and IoU > 0);
5. the union is cut to the box; when nothing qualifies, T stays as it is.
The loose mask (for ignore bands) is refined the same way and unioned with the refined tight
mask, so loose ⊇ tight still holds.

Counts (per the doc's "compact representation"): per-superpixel areas ``a = bincount(sp)``,
overlaps ``t = bincount(sp[T])`` and in-box areas ``c = bincount(sp inside b)``; then
``M t``, ``M a``, ``M c`` give every proposal's intersection, area and in-box area, exactly,
for all objects of an image at once (t and c stacked as columns). The released code summed
pixel coordinates instead of counting pixels and skipped the containment test on one path;
here every count is an exact pixel count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.config import Checked, option
from ..core.labels import box_masks, proposal_union

if TYPE_CHECKING:
    import scipy.sparse as sparse

# statuses of refine_masks, per object
REFINED = "refined"
SMALL_BOX = "small_box"
NO_PROPOSAL = "no_proposal"
REFINE_STATUSES = (REFINED, SMALL_BOX, NO_PROPOSAL)


@dataclass(frozen=True)
class RefineParams(Checked):
    min_box: int = option(32, ge=0, le=100_000)
    """Boxes whose width or height is below this many pixels are left as they are."""
    contain_frac: float = option(0.95, gt=0, le=1)
    """A proposal is "contained" in the mask when more than this share of its pixels lie in it."""
    inbox_frac: float = option(0.95, gt=0, le=1)
    """The best-IoU pick is taken among proposals with more than this share of pixels in the box."""


def superpixel_counts(sp: np.ndarray, masks: np.ndarray, n: int) -> np.ndarray:
    """(n, K) int64: pixels of each superpixel inside each of the K masks (one bincount each)."""
    flat = sp.ravel()
    out = np.zeros((n, len(masks)), dtype=np.int64)
    for k, mask in enumerate(masks):
        out[:, k] = np.bincount(flat[mask.ravel()], minlength=n)
    return out


def proposal_stats(sp: np.ndarray, M: sparse.csr_matrix, masks: np.ndarray, boxes: np.ndarray):
    """Exact per-proposal counts for K objects: ``(area (P,), inter (P, K), inbox (P, K),
    outside (P, K))`` where ``outside`` counts superpixels of the proposal that lie entirely
    outside the object's box."""
    n = M.shape[1]
    area_sp = np.bincount(sp.ravel(), minlength=n).astype(np.int64)
    t = superpixel_counts(sp, masks, n)
    c = superpixel_counts(sp, box_masks(boxes, sp.shape), n)
    Mi = M.astype(np.int64)
    area = Mi @ area_sp
    inter = np.asarray(Mi @ t)
    inbox = np.asarray(Mi @ c)
    outside = np.asarray(Mi @ (c == 0).astype(np.int64))
    return area, inter, inbox, outside


def large_enough(box, params: RefineParams, by_area: bool = False) -> bool:
    """Whether refinement touches a box: both sides at least ``min_box`` (ours), or with
    ``by_area`` its area at least ``min_box`` squared (BBAM's published rule, w x h < 32 x 32
    skipped)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if by_area:
        return (x1 - x0) * (y1 - y0) >= params.min_box * params.min_box
    return x1 - x0 >= params.min_box and y1 - y0 >= params.min_box


def refine_masks(masks: np.ndarray, boxes: np.ndarray, sp: np.ndarray, M: sparse.csr_matrix,
                 params: RefineParams = RefineParams(), by_area: bool = False) -> tuple[np.ndarray, list[str]]:
    """Apply the rule to K masks of one image. ``masks`` (K, H, W) bool, ``boxes`` (K, 4)
    0-based half-open, ``sp`` (H, W) superpixel ids 0..n-1, ``M`` (P, n) membership; ``by_area``:
    see :func:`large_enough`. Returns the refined (K, H, W) bool masks and a status per object
    (:data:`REFINE_STATUSES`)."""
    masks = np.asarray(masks, dtype=bool)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    out = masks.copy()
    status = [SMALL_BOX] * len(masks)
    todo = [k for k, box in enumerate(boxes) if large_enough(box, params, by_area)]
    if not todo or M.shape[0] == 0:
        return out, [NO_PROPOSAL if k in todo else SMALL_BOX for k in range(len(masks))]
    area, inter, inbox, outside = proposal_stats(sp, M, masks[todo], boxes[todo])
    size = masks[todo].reshape(len(todo), -1).sum(1)
    safe_area = np.maximum(area, 1)[:, None]
    for j, k in enumerate(todo):
        usable = (outside[:, j] == 0) & (area > 0)                       # 2.
        contained = usable & (inter[:, j] / safe_area[:, 0] > params.contain_frac)  # 3.
        union = area + size[j] - inter[:, j]
        iou = np.where(union > 0, inter[:, j] / np.maximum(union, 1), 0.0)
        candidates = usable & (inbox[:, j] / safe_area[:, 0] > params.inbox_frac) & (iou > 0)  # 4.
        rows = np.flatnonzero(contained)
        if candidates.any():
            rows = np.append(rows, np.flatnonzero(candidates)[np.argmax(iou[candidates])])
        if len(rows) == 0:
            status[k] = NO_PROPOSAL
            continue
        x0, y0, x1, y1 = boxes[k]
        refined = np.zeros(sp.shape, dtype=bool)                           # 5.
        refined[y0:y1, x0:x1] = proposal_union(sp[y0:y1, x0:x1], M, rows)
        out[k] = refined
        status[k] = REFINED
    return out, status


def refine_tight_loose(tight: np.ndarray, loose: np.ndarray, boxes: np.ndarray, sp: np.ndarray,
                       M: sparse.csr_matrix, params: RefineParams = RefineParams(), by_area: bool = False):
    """Refine tight and loose masks (BBAM's ``BBAM_plus_mcg.py``); the refined loose mask is unioned
    with the refined tight one, so loose contains tight afterwards (the published code skipped the
    union when no proposal matched the loose mask). Returns (tight, loose, status of the tight masks)."""
    tight_r, status = refine_masks(tight, boxes, sp, M, params, by_area)
    loose_r, _ = refine_masks(loose, boxes, sp, M, params, by_area)
    return tight_r, loose_r | tight_r, status
