"""Label-map arithmetic shared by stages, the store and export: filled boxes, painting per-object
masks into one semantic map, Box2Seg's filling rates, instance maps, and decoding proposals
(unions of superpixels).

All arrays are in the original image frame; boxes follow :mod:`pseudolabel.core.records`.
"""
from __future__ import annotations

import numpy as np

from .classes import IGNORE, NUM_CLASSES


def paint_order(boxes: np.ndarray) -> np.ndarray:
    """Object indices in painting order: larger boxes first, so smaller boxes end up in
    front (Simple Does It's convention). Ties keep annotation order (stable sort)."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.argsort(-areas, kind="stable")


def box_mask(box, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the box filled (clipped to the image by slicing)."""
    x0, y0, x1, y1 = (max(int(v), 0) for v in box)
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def box_masks(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(K, H, W) bool: each box filled."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    masks = np.zeros((len(boxes), *shape), dtype=bool)
    for k, box in enumerate(boxes):
        masks[k] = box_mask(box, shape)
    return masks


def proposal_union(superpixels: np.ndarray, membership, rows) -> np.ndarray:
    """(H, W) bool union of the proposals ``rows`` of a (P, n) CSR ``membership`` over the
    superpixel map ``superpixels`` (ids 0..n-1): a lookup table over superpixel ids, so no
    proposal is decoded pixel by pixel."""
    lut = np.zeros(membership.shape[1], dtype=bool)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows):
        lut[np.unique(membership[rows].indices)] = True
    return lut[superpixels]


def paint_smaller_on_top(masks: np.ndarray, classes: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(H, W) uint8 label map: 0 background, each object's mask painted with its class,
    larger boxes first so that smaller ones are in front."""
    masks = np.asarray(masks, dtype=bool)
    label = np.zeros(masks.shape[1:], dtype=np.uint8)
    for k in paint_order(boxes):
        label[masks[k]] = classes[k]
    return label


def filling_rates(label: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                  num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Box2Seg's per-class filling rate, (num_classes,) float32 (background included) with NaN
    for classes without boxes: ``eta_c = (pixels of class c in label) / (pixels in the union of
    class c's boxes)``."""
    rates = np.full(num_classes, np.nan, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    classes = np.asarray(classes)
    for c in np.unique(classes):
        union = box_masks(boxes[classes == c], label.shape).any(axis=0)
        rates[int(c)] = np.count_nonzero(label == c) / max(np.count_nonzero(union), 1)
    return rates


def instance_map(label: np.ndarray, masks: np.ndarray, classes: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(H, W) uint8 instance map in ``SegmentationObject`` style: object k (0-based) is
    painted k+1 where its mask holds and the semantic label agrees with its class, in the
    same order as :func:`paint_smaller_on_top`; 255 where the label is 255 or where the label
    names a class that no object mask explains; 0 elsewhere. Supports up to 254 objects."""
    if len(classes) > 254:
        raise ValueError(f"an instance PNG holds at most 254 objects, this image has {len(classes)}")
    inst = np.zeros(label.shape, dtype=np.uint8)
    for k in paint_order(boxes):
        inst[np.asarray(masks[k], dtype=bool) & (label == classes[k])] = k + 1
    inst[(label == IGNORE) | ((label != 0) & (inst == 0))] = IGNORE
    return inst
