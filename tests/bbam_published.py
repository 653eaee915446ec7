"""An independent port of the published BBAM post-processing, line by line, for the tests to hold
``pseudolabel.algorithms.bbam_masks`` to: ``get_top_CRF`` and ``get_final_mask_with_topCRF`` of
``jbeomlee93/BBAM`` (``tools/BBAM/make_annotation/anno_utils.py``) and ``get_aggregated_mask`` of
``create_semantic_labels.py``, in numpy and OpenCV as published, one box and one CRF at a time.

Only what cannot be had here is replaced: pydensecrf (no wheels) by our dense CRF on the CPU, with
pydensecrf's unary (``-log(clip(p, 1e-5, 1))``), and the maps the published code reads back from
half-size JPEGs by the maps themselves. Two published bugs are not copied: a box without a map whose
fallbacks all fail gets the last result (the published code appended nothing and misaligned every
later object), and the tight and loose masks of an object are paired by object, not by position.
"""
from __future__ import annotations

import cv2
import numpy as np

from pseudolabel.algorithms.densecrf import dense_crf


def postprocessor(img, probmap):
    """``DenseCRF(iter_max=10, pos_xy_std=1, pos_w=3, bi_xy_std=80, bi_rgb_std=3, bi_w=4)(img, probmap)``."""
    q = dense_crf(img, probmap.astype(np.float32), iterations=10, gaussian_sxy=1, gaussian_weight=3,
                  bilateral_sxy=80, bilateral_srgb=3, bilateral_weight=4, eps=1e-5)
    return q.numpy()


def get_top_CRF(mask, w, h, p_box, th_fg, img):
    nullmask_init_prob = [0.7, 0.8, 0.9, 0.95, 0.96]
    mask = (mask - np.min(mask)) / np.max(mask)
    mask = cv2.resize(mask, (w, h))
    box_size = (p_box[3] - p_box[1]) * (p_box[2] - p_box[0])
    only_roi = np.zeros(mask.shape, dtype=np.float32)
    only_roi[p_box[1]:p_box[3], p_box[0]:p_box[2]] = 1
    mask *= only_roi
    sort_flatten_mask = sorted(mask.flatten(), reverse=True)
    threshold = sort_flatten_mask[int(box_size * (1 - th_fg))] + 1e-8
    mask = np.clip(mask / threshold, 0, 1)
    kernel_size = int(16 + 48 * np.power(box_size / (w * h), 0.5))
    mask = cv2.GaussianBlur(mask.astype(np.float64), (int(kernel_size) * 2 + 1, int(kernel_size) * 2 + 1),
                            kernel_size)
    mask *= only_roi
    mask = (mask - np.min(mask)) / np.max(mask)
    mask = np.concatenate([np.expand_dims(mask, 0), np.expand_dims(1 - mask, 0)], axis=0)
    mask = postprocessor(img, mask)[0]
    total_mask = np.zeros(mask.shape)
    total_mask[mask > 0.9] = 1
    if total_mask.sum() > box_size / 5 or float(box_size / w / h) > 1 / 10:
        return total_mask
    for init_prob in nullmask_init_prob:
        total_mask_start = total_mask.copy()
        total_mask_start[p_box[1]:p_box[3], p_box[0]:p_box[2]] = init_prob
        total_mask_start[total_mask == 1] = 1
        total_mask_start = np.concatenate([np.expand_dims(total_mask_start, 0),
                                           np.expand_dims(1 - total_mask_start, 0)], axis=0)
        total_mask_start = postprocessor(img, total_mask_start)[0]
        new_mask = np.zeros(total_mask_start.shape)
        new_mask[total_mask_start > 0.9] = 1
        if new_mask.sum() > box_size / 3:
            return new_mask
    return new_mask


def mask_without_map(w, h, p_box, img):
    """``get_final_mask_with_topCRF``'s loop for a box whose map is missing or all zero."""
    new_mask = np.zeros((h, w))
    for init_prob in [0.7, 0.8, 0.9, 0.95]:
        total_mask = np.zeros((h, w))
        total_mask[p_box[1]:p_box[3], p_box[0]:p_box[2]] = init_prob
        total_mask = np.concatenate([np.expand_dims(total_mask, 0), np.expand_dims(1 - total_mask, 0)], axis=0)
        total_mask = postprocessor(img, total_mask)[0]
        box_area = float((p_box[2] - p_box[0]) * (p_box[3] - p_box[1]))
        new_mask = np.zeros(total_mask.shape)
        new_mask[total_mask > 0.9] = 1
        if new_mask.sum() > box_area / 5:
            break
    return new_mask


def final_masks(img, maps, boxes, th_fg):
    """Each box's mask for rank ``th_fg`` (0.85 tight, 0.2 loose): boxes are ours (0-based,
    half-open), which is the published ``p_box`` (VOC corners minus one, sliced half-open)."""
    h, w = img.shape[:2]
    out = []
    for m, box in zip(maps, boxes):
        p_box = [int(v) for v in box]
        if np.max(m) == 0:
            out.append(mask_without_map(w, h, p_box, img).astype(bool))
        else:
            out.append(get_top_CRF(m.astype(np.float32), w, h, p_box, th_fg, img).astype(bool))
    return np.array(out)


def aggregated_label(classes, boxes, masks, masks_ignore):
    """``create_semantic_labels.py``: ``get_aggregated_mask`` and the ignore band, with boxes given as
    ours and turned into its COCO ``[x, y, w, h]``."""
    coco = [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in np.asarray(boxes).tolist()]
    H, W = masks[0].shape

    def check_entire_overlap(box1, others):
        box1 = [box1[0], box1[1], box1[0] + box1[2], box1[1] + box1[3]]
        entire_overlap = False
        for box2 in others:
            box2 = [box2[0], box2[1], box2[0] + box2[2], box2[1] + box2[3]]
            if not (box1 == box2):
                if (box2[0] <= box1[0]) and (box2[1] <= box1[1]) and (box2[2] >= box1[2]) and (box2[3] >= box1[3]):
                    entire_overlap = True
        return entire_overlap

    total_mask = np.zeros([21, H, W])
    areas = [b[2] * b[3] for b in coco]
    box_priority = np.argsort(-np.array(areas), kind="stable")
    for box_idx in box_priority:
        total_mask[classes[box_idx], masks[box_idx] == 1] = 1
    cls_mask = np.zeros((H, W))
    for c in range(1, 21):
        cls_mask[total_mask[c] == 1] = c
    cls_mask[np.sum(total_mask, axis=0) > 1] = 255
    for box_idx in box_priority:
        if check_entire_overlap(coco[box_idx], coco):
            cls_mask[masks[box_idx] == 1] = classes[box_idx]
    ignore_mask = np.zeros((H, W))
    for m, m_ignore in zip(masks, masks_ignore):
        ignore_mask[(m == 0) & (m_ignore == 1)] = 1
    cls_mask[ignore_mask == 1] = 255
    return cls_mask.astype(np.uint8)


def simulated_map(instance: np.ndarray, box, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """An attribution map made from a human mask, as BBAM's optimised masks look: the instance
    pooled to the mask's coarse grid (the published stride for the box) inside its box, plus a
    little noise, upsampled bilinearly to the image."""
    H, W = instance.shape
    x0, y0, x1, y1 = (int(v) for v in box)
    s = 16 + 48 * np.sqrt((x1 - x0) * (y1 - y0) / (H * W))
    gh, gw = max(int(H // s), 2), max(int(W // s), 2)
    coarse = cv2.resize(instance.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    coarse = np.clip(coarse + rng.normal(0, noise, coarse.shape), 0, 1).astype(np.float32)
    full = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_LINEAR)
    out = np.zeros_like(full)
    out[y0:y1, x0:x1] = full[y0:y1, x0:x1]
    return np.clip(out, 0, 1)
