"""PASCAL VOC 2012 classes and palette: the label vocabulary every stage and export shares.

Label maps use 0 for background, 1..20 for the classes below (VOC order) and 255 for
"ignore" (VOC's void band; in pseudo labels: pixels the evidence does not settle).
"""
from __future__ import annotations

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
NUM_CLASSES = len(VOC_CLASSES)  # 21, background included
IGNORE = 255
CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(VOC_CLASSES)}


def voc_palette() -> np.ndarray:
    """The 256-entry VOC colour map, shape (256, 3) uint8, as in the VOC devkit's
    ``labelcolormap`` (bits of the index spread over R, G, B); index 255 is (224, 224, 192).
    Genuine ``SegmentationClass`` PNGs carry exactly this palette."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette
