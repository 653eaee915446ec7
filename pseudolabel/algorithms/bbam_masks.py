"""BBAM's attribution maps to tight / loose masks and to a semantic label, as the published code does
it (``jbeomlee93/BBAM``: ``tools/BBAM/make_annotation/anno_utils.py``, ``get_top_CRF`` and
``get_final_mask_with_topCRF``; ``create_semantic_labels.py``), on the maps' device, every box of a
photo (and every fallback level) through the dense CRF as one batch.

For a box ``b`` of ``A`` pixels in a ``W x H`` photo, its map ``m`` (original frame) and a rank
``theta`` (``tight_rank`` 0.85 for the tight mask, ``loose_rank`` 0.2 for the loose one):

1. ``m = (m - min m) / max m`` over the whole map (min subtracted, divided by the max, as published);
   a map whose max is 0 counts as no map (5.);
2. zero outside the box; the threshold ``t`` is the value of rank ``int(A (1 - theta))`` of the
   image's values in descending order (0-based), plus 1e-8; ``m = clip(m / t, 0, 1)``: the top
   ``1 - theta`` of the box saturate and everything below is scaled up by ``1 / t``;
3. Gaussian blur over the whole image (zeros outside the box), ``sigma = k = int(blur_min + blur_range
   sqrt(A / (W H)))`` original pixels and a ``(2k + 1)`` window (cut at one sigma, as OpenCV does with
   that window), mirrored borders (OpenCV's ``BORDER_REFLECT_101``); zero outside the box again and
   ``m = (m - min) / max`` again;
4. the dense CRF over the whole image on ``(m, 1 - m)``; foreground where its probability exceeds
   ``crf_keep``; accepted when it holds more than ``tiny_fg_frac`` of the box, or when the box covers
   more than ``small_box_frac`` of the image. Otherwise, for ``c`` in ``fallback_confidences``: a prior
   that is ``c`` on the box, 1 on the foreground found, 0 elsewhere in the image, through the CRF;
   the first foreground above ``fallback_accept_frac`` of the box is kept, else the last one;
5. a box without a map (no positives): for ``c`` in ``no_map_confidences``, a prior ``c`` on the box
   and 0 elsewhere; the first foreground above ``tiny_fg_frac`` of the box is kept, else the last one
   (the published code then drops the object and misaligns the others; here it is kept and flagged).

Every object gets a status for its tight and its loose mask (:data:`MASK_STATUSES`); an empty mask
is flagged ``empty``, never reported as made from the map. The label (:func:`bbam_label`) follows
``create_semantic_labels.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.classes import IGNORE
from .bbam_params import BBAMParams

MASK_STATUSES = ("map", "fallback", "fallback_unaccepted", "no_map_fallback", "no_map_unaccepted", "box", "empty")
"""How an object's tight (or loose) mask was made, exactly one per object: from its map; from a box
prior because the map's mask was too small; the last box prior's result although none passed the
size test (as published); from a box prior because the box had no map (no positives); the last such
prior's result although none passed; the filled box (``mask_rule="crop"`` only, when no prior gave
anything); and ``empty`` whenever the mask ended up empty, whatever made it."""
MASK_RULES = ("published", "crop")


def blur_sigma(area: int, height: int, width: int, params: BBAMParams) -> int:
    """The published blur's sigma and half window ``k = int(16 + 48 sqrt(A / (W H)))``."""
    return int(params.blur_min + params.blur_range * math.sqrt(area / (height * width)))


def _reflect101(n: int, pad: int, device) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` on each side, mirrored as OpenCV's
    ``BORDER_REFLECT_101`` (``dcb|abcd|cba``), however large the pad."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * n - 2
    i = i.abs() % period
    return torch.where(i >= n, period - i, i)


def gaussian_blur(m: torch.Tensor, k: int) -> torch.Tensor:
    """(H, W) blurred by a Gaussian of sigma ``k`` over a ``(2k + 1)`` window, normalised over the
    window, mirrored borders: ``cv2.GaussianBlur(m, (2k+1, 2k+1), k)``."""
    if k <= 0:
        return m
    x = torch.arange(-k, k + 1, device=m.device, dtype=torch.float64)
    w = torch.exp(-x * x / (2.0 * k * k))
    w = (w / w.sum()).to(m.dtype)
    H, W = m.shape
    rows, cols = _reflect101(H, k, m.device), _reflect101(W, k, m.device)
    padded = m[rows][:, cols]
    out = F.conv2d(padded[None, None], w.view(1, 1, 1, -1))
    return F.conv2d(out, w.view(1, 1, -1, 1))[0, 0]


def map_prior(m: torch.Tensor, box, theta: float, params: BBAMParams) -> torch.Tensor | None:
    """Steps 1-3 for one box: the (H, W) foreground probability the CRF starts from, or None when
    the map is empty (its max is 0)."""
    H, W = m.shape
    x0, y0, x1, y1 = (int(v) for v in box)
    lo, hi = m.min(), m.max()
    if not hi > 0:
        return None
    m = (m - lo) / hi                                       # 1. as published: divided by the max
    roi = torch.zeros_like(m)
    roi[y0:y1, x0:x1] = 1
    m = m * roi                                             # 2. the box only
    area = (y1 - y0) * (x1 - x0)
    rank = int(area * (1 - theta))
    inside = m[y0:y1, x0:x1].flatten()
    value = inside.sort(descending=True).values[rank] if rank < inside.numel() else m.new_zeros(())
    m = (m / (value + 1e-8)).clamp(0, 1)                    # scaled up below t, 1 above
    m = gaussian_blur(m, blur_sigma(area, H, W, params))   # 3. over the whole image
    m = m * roi
    lo, hi = m.min(), m.max()
    return (m - lo) / hi if hi > 0 else m


@dataclass
class _Problem:
    """One mask to make: object ``k``, tight or loose, its box and area."""

    k: int
    kind: str              # "tight" | "loose"
    box: tuple[int, int, int, int]
    area: int
    prior: torch.Tensor | None = None
    found: torch.Tensor | None = None
    status: str = ""


def _crf(crf, image: torch.Tensor, priors: list[torch.Tensor], params: BBAMParams) -> torch.Tensor:
    """Foregrounds (B, H, W) bool of the CRF run on each (H, W) foreground probability, in one batch."""
    fg = torch.stack(priors).float()
    q = crf(image, torch.stack([fg, 1 - fg], 1), iterations=params.crf_iterations,
            gaussian_sxy=params.crf_gaussian_sxy, gaussian_weight=params.crf_gaussian_weight,
            bilateral_sxy=params.crf_bilateral_sxy, bilateral_srgb=params.crf_bilateral_srgb,
            bilateral_weight=params.crf_bilateral_weight)
    return q[:, 0] > params.crf_keep


def _box_priors(pending: list[_Problem], c: float, shape, device, keep_found: bool) -> list[torch.Tensor]:
    out = []
    for p in pending:
        x0, y0, x1, y1 = p.box
        prior = p.found.float().clone() if keep_found else torch.zeros(shape, device=device)
        prior[y0:y1, x0:x1] = c
        if keep_found:
            prior[p.found] = 1.0                            # the foreground found stays foreground
        out.append(prior)
    return out


def _fallbacks(pending: list[_Problem], confidences, accept_frac: float, image, params, crf,
               keep_found: bool, accepted: str, unaccepted: str) -> None:
    """Box priors of increasing confidence for every pending problem, one CRF batch per level."""
    shape = image.shape[:2]
    last = {id(p): None for p in pending}
    todo = list(pending)
    for c in confidences:
        if not todo:
            break
        masks = _crf(crf, image, _box_priors(todo, c, shape, image.device, keep_found), params)
        left = []
        for p, mask in zip(todo, masks):
            last[id(p)] = mask
            if mask.sum() > accept_frac * p.area:
                p.found, p.status = mask, accepted
            else:
                left.append(p)
        todo = left
    for p in todo:
        p.found = last[id(p)] if last[id(p)] is not None else torch.zeros(shape, dtype=torch.bool,
                                                                           device=image.device)
        p.status = unaccepted


def published_masks(image: np.ndarray | torch.Tensor, maps: torch.Tensor, boxes: np.ndarray, has_map: np.ndarray,
                    params: BBAMParams, crf) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Tight and loose (K, H, W) bool masks and their statuses per object (:data:`MASK_STATUSES`),
    from ``maps`` (K, H, W) in the original frame on any device (the CRF runs there too). ``crf``:
    ``densecrf.dense_crf_batch``. ``has_map[k]`` False: box k had no positives."""
    device = maps.device
    img = torch.as_tensor(np.ascontiguousarray(image) if not torch.is_tensor(image) else image, device=device)
    K, H, W = maps.shape
    problems, no_map = [], []
    for k, box in enumerate(np.asarray(boxes, dtype=np.int64).reshape(-1, 4)):
        x0, y0, x1, y1 = (int(v) for v in box)
        area = max((x1 - x0) * (y1 - y0), 1)
        priors = {kind: map_prior(maps[k], box, theta, params) if has_map[k] else None
                  for kind, theta in (("tight", params.tight_rank), ("loose", params.loose_rank))}
        if priors["tight"] is None or priors["loose"] is None:   # no positives, or an empty map
            no_map.append(_Problem(k, "both", (x0, y0, x1, y1), area))
            continue
        for kind, prior in priors.items():
            problems.append(_Problem(k, kind, (x0, y0, x1, y1), area, prior))
    # 4. every map's CRF at once; the small ones fall back
    if problems:
        for p, mask in zip(problems, _crf(crf, img, [p.prior for p in problems], params)):
            p.found = mask
            big = p.area > params.small_box_frac * H * W
            p.status = "map" if (mask.sum() > params.tiny_fg_frac * p.area or big) else ""
        _fallbacks([p for p in problems if not p.status], params.fallback_confidences, params.fallback_accept_frac,
                   img, params, crf, keep_found=True, accepted="fallback", unaccepted="fallback_unaccepted")
    # 5. boxes without a map
    _fallbacks(no_map, params.no_map_confidences, params.tiny_fg_frac, img, params, crf, keep_found=False,
               accepted="no_map_fallback", unaccepted="no_map_unaccepted")
    tight = np.zeros((K, H, W), bool)
    loose = np.zeros((K, H, W), bool)
    status = {"tight": [""] * K, "loose": [""] * K}
    for p in problems + no_map:
        mask = p.found.cpu().numpy()
        st = "empty" if not mask.any() else p.status
        for kind in (("tight", "loose") if p.kind == "both" else (p.kind,)):
            (tight if kind == "tight" else loose)[p.k] = mask
            status[kind][p.k] = st
    return tight, loose, status["tight"], status["loose"]


# ---------------------------------------------------------------------------------- mask_rule="crop"
def crop_masks(image: np.ndarray, maps: np.ndarray, boxes: np.ndarray, has_map: np.ndarray, strides: np.ndarray,
               params: BBAMParams, crf) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """pseudolabel 0.1.0's rule, kept as ``mask_rule="crop"`` because it keeps more of a good map
    (measured on maps made from human masks, docs/BBAM.md): each map cut to its box and min-max
    normalised, the top ``1 - rank`` of the box's pixels saturated to 1 (values below left as they
    are), smoothed with ``sigma = stride / 4`` (the mask stride in original pixels), then the dense
    CRF on the box crop (``crf``: ``densecrf.dense_crf``, one crop at a time, on the CPU). Fallback
    when the tight mask holds at most ``tiny_fg_frac`` of a box covering at most ``small_box_frac``
    of the image, or without a map: box priors of ``fallback_confidences`` on the box plus half its
    size of context until one exceeds ``tiny_fg_frac`` of the box; if none does, the filled box. The
    loose mask contains the tight one."""
    import cv2
    K, (H, W) = len(boxes), image.shape[:2]
    tight = np.zeros((K, H, W), bool)
    loose = np.zeros((K, H, W), bool)
    status = []

    def crf_fg(crop, fg):
        fg = np.clip(fg.astype(np.float32), 1e-4, 1 - 1e-4)
        q = crf(crop, np.stack([1 - fg, fg]), iterations=params.crf_iterations,
                gaussian_sxy=params.crf_gaussian_sxy, gaussian_weight=params.crf_gaussian_weight,
                bilateral_sxy=params.crf_bilateral_sxy, bilateral_srgb=params.crf_bilateral_srgb,
                bilateral_weight=params.crf_bilateral_weight)
        return np.asarray(q.cpu() if hasattr(q, "cpu") else q)[1] > params.crf_keep

    def seed(values, rank, sigma):
        lo, hi = float(values.min()), float(values.max())
        v = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        thr = float(np.quantile(v, rank))
        v = np.where((v >= thr) & (v > 0), 1.0, v).astype(np.float32)   # ties at the minimum stay 0
        return cv2.GaussianBlur(v, (0, 0), sigmaX=sigma) if sigma > 0 else v

    for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=int)):
        area = max((x1 - x0) * (y1 - y0), 1)
        crop = image[y0:y1, x0:x1]
        if has_map[k]:
            values, sigma = maps[k, y0:y1, x0:x1], float(strides[k]) / 4
            t = crf_fg(crop, seed(values, params.tight_rank, sigma))
            lo = crf_fg(crop, seed(values, params.loose_rank, sigma))
            tight[k, y0:y1, x0:x1], loose[k, y0:y1, x0:x1] = t, lo | t
            if not (area <= params.small_box_frac * H * W and t.sum() <= params.tiny_fg_frac * area):
                status.append("map")
                continue
        mx, my = (x1 - x0) // 2, (y1 - y0) // 2
        X0, Y0, X1, Y1 = max(x0 - mx, 0), max(y0 - my, 0), min(x1 + mx, W), min(y1 + my, H)
        prior = np.zeros((Y1 - Y0, X1 - X0), np.float32)
        found = None
        for c in params.fallback_confidences:
            prior[:] = 1 - c
            prior[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = c
            fg = crf_fg(image[Y0:Y1, X0:X1], prior)
            fg_box = np.zeros_like(fg)
            fg_box[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = fg[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]
            if fg_box.sum() > params.tiny_fg_frac * area:
                found = fg_box
                break
        tight[k] = False
        if found is None:
            tight[k, y0:y1, x0:x1] = True
            status.append("box")
        else:
            tight[k, Y0:Y1, X0:X1] = found
            status.append("fallback" if has_map[k] else "no_map_fallback")
        loose[k] |= tight[k]
    status = ["empty" if not tight[k].any() else s for k, s in enumerate(status)]
    loose_status = ["empty" if not loose[k].any() else s for k, s in enumerate(status)]
    return tight, loose, status, loose_status


def _inside(a: np.ndarray, b: np.ndarray) -> bool:
    """Box ``a`` lies entirely inside box ``b`` (edges included) and is not the same box."""
    return bool(a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3] and (a != b).any())


def bbam_label(tight: np.ndarray, loose: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(H, W) uint8 semantic label from per-object masks, in the order ``create_semantic_labels.py``
    applies its rules:

    1. each class's pixels: the union of its objects' tight masks (classes painted 1..20);
    2. a pixel claimed by two or more classes is 255;
    3. objects by decreasing box area: one whose box lies entirely inside another box paints its
       whole tight mask with its class (over 255 and other classes; the innermost is painted last);
    4. a pixel in any object's loose mask but not in that object's own tight mask is 255, over
       everything above (the loose band is uncertain ground);
    5. everything else is background (0)."""
    K, H, W = tight.shape
    label = np.zeros((H, W), np.uint8)
    if K == 0:
        return label
    boxes, classes = np.asarray(boxes), np.asarray(classes)
    claimed = np.zeros((H, W), np.int32)
    for c in np.unique(classes):
        union = tight[classes == c].any(0)
        label[union] = c
        claimed += union
    label[claimed > 1] = IGNORE
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for k in np.argsort(-area, kind="stable"):
        if any(_inside(boxes[k], boxes[j]) for j in range(K) if j != k):
            label[tight[k]] = classes[k]
    label[(loose & ~tight).any(0)] = IGNORE
    return label
