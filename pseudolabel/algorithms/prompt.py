"""Box-prompted segmenters' soft masks (SAM, IS-Net) turned into per-object masks and one label map,
the way GrabCut's are: smaller boxes in front, an ignore band where the evidence is weak. Pure
functions on arrays; the networks themselves are in ``models/``.

Per object, ``p`` (H, W) in [0, 1] is the engine's foreground probability, 0 outside its box:
* mask = ``p > threshold``;
* a mask keeping less than ``collapse_frac`` of its box is a fallback (the filled box, its outer
  ring ignored, as GrabCut's guards do): the engine lost the object;
* in the label, pixels of an object's box where ``uncertain_low < p < uncertain_high`` are 255.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.classes import IGNORE
from ..core.config import Checked, OptionError, option


@dataclass(frozen=True)
class PromptParams(Checked):
    threshold: float = option(0.5, gt=0, lt=1)
    """A pixel belongs to the object's mask where the engine's probability is above this."""
    uncertain_low: float = option(0.3, ge=0, le=1)
    """Label 255 where the object's probability lies strictly between this and uncertain_high."""
    uncertain_high: float = option(0.7, ge=0, le=1)
    """Upper end of the ignore band (see uncertain_low); equal ends: no band."""
    collapse_frac: float = option(0.15, ge=0, le=1)
    """An object whose mask keeps less than this share of its box falls back to the filled box
    with its outer ring ignored (GrabCut's rule)."""
    fallback_ring_frac: float = option(0.2, ge=0, lt=0.5)
    """Outer ring of a fallback box that is 255 (this share of width / height on each side)."""

    def validate(self) -> None:
        if not self.uncertain_low <= self.threshold <= self.uncertain_high:
            raise OptionError("uncertain_low", f"the band must hold the threshold: uncertain_low <= threshold "
                                               f"({self.threshold:g}) <= uncertain_high")


def crop_window(box, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """The box grown by ``margin`` x its longer side on every side (context for the network),
    clipped to the image: ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    m = int(round(margin * max(x1 - x0, y1 - y0)))
    return max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, shape[1]), min(y1 + m, shape[0])


def inside_box(p: np.ndarray, box) -> np.ndarray:
    """``p`` with everything outside the box set to 0."""
    out = np.zeros_like(p)
    x0, y0, x1, y1 = (max(int(v), 0) for v in box)
    out[y0:y1, x0:x1] = p[y0:y1, x0:x1]
    return out


def box_iou(mask: np.ndarray, box) -> float:
    """IoU of a mask and its filled box (how well the mask fills the box)."""
    x0, y0, x1, y1 = (max(int(v), 0) for v in box)
    area = max(x1 - x0, 0) * max(y1 - y0, 0)
    inside = int(mask[y0:y1, x0:x1].sum())
    union = area + int(mask.sum()) - inside
    return inside / union if union else 0.0


def choose(candidates: np.ndarray, predicted_iou: np.ndarray, box, rule: str, threshold: float) -> int:
    """Which of an object's M candidate masks (M, H, W) to keep: ``iou``: the one the model
    predicts best; ``fill``: the one that best fills the box (IoU with the filled box)."""
    if rule == "fill":
        return int(np.argmax([box_iou(c > threshold, box) for c in candidates]))
    return int(np.argmax(predicted_iou))


def masks_and_fallbacks(probs: np.ndarray, boxes: np.ndarray, params: PromptParams) -> tuple[np.ndarray, np.ndarray]:
    """``(masks (K, H, W) bool, fallback (K,) bool)``: each mask the probability above the
    threshold inside its box, or the filled box where it kept less than ``collapse_frac``."""
    k = len(boxes)
    masks = np.zeros(probs.shape, bool)
    fallback = np.zeros(k, bool)
    for j, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.int64).reshape(-1, 4)):
        x0, y0 = max(x0, 0), max(y0, 0)
        inside = probs[j, y0:y1, x0:x1] > params.threshold
        area = max(inside.size, 1)
        if inside.sum() < params.collapse_frac * area:
            fallback[j] = True
            masks[j, y0:y1, x0:x1] = True
        else:
            masks[j, y0:y1, x0:x1] = inside
    return masks, fallback


def prompt_label(probs: np.ndarray, masks: np.ndarray, fallback: np.ndarray, boxes: np.ndarray,
                 classes: np.ndarray, params: PromptParams) -> np.ndarray:
    """One (H, W) uint8 label: objects painted larger box first (smaller in front); an object's
    mask takes its class and its box's uncertain pixels 255; a fallback's box takes its class with
    its outer ring 255 (except ring pixels a larger object's mask holds)."""
    shape = masks.shape[1:]
    label = np.zeros(shape, np.uint8)
    claimed = np.zeros(shape, bool)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for j in sorted(range(len(boxes)), key=lambda j: (-areas[j], j)):
        x0, y0, x1, y1 = boxes[j]
        x0, y0 = max(x0, 0), max(y0, 0)
        if areas[j] == 0:
            continue
        lab, held = label[y0:y1, x0:x1], claimed[y0:y1, x0:x1]
        if fallback[j]:
            bh, bw = lab.shape
            dy, dx = int(round(params.fallback_ring_frac * bh)), int(round(params.fallback_ring_frac * bw))
            ring = np.ones((bh, bw), bool)
            ring[dy:bh - dy, dx:bw - dx] = False
            lab[~ring] = classes[j]
            lab[ring & ~held] = IGNORE
            held[~ring] = True
            continue
        mask, p = masks[j, y0:y1, x0:x1], probs[j, y0:y1, x0:x1]
        lab[mask] = classes[j]
        held |= mask
        lab[(p > params.uncertain_low) & (p < params.uncertain_high)] = IGNORE
    return label
