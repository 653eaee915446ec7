"""Label spaces: the classes a dataset's labels use, and the palette they are drawn with.

Label maps use 0 for background, 1..C for the dataset's classes and 255 for "ignore" (VOC's void
band; in pseudo labels: pixels the evidence does not settle). PASCAL VOC 2012 and SBD use the 20
classes below (:data:`VOC`); a COCO or YOLO dataset brings its own list (:class:`LabelSpace`),
which every store records and every reader, export and the report follows. At most 254 classes
fit (1..254, with 0 and 255 taken).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

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


MAX_CLASSES = 254
"""Classes a label space may hold: label maps are uint8, 0 is background and 255 ignore."""


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's classes. ``names[0]`` is ``background``; class ``c`` (1..C) is ``names[c]`` in
    label maps and per-object ``classes``. ``source_ids``: the dataset's own id of each class 1..C
    (COCO category ids, YOLO class indices), kept so that exports write them back; empty for VOC."""

    names: tuple[str, ...]
    source_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "source_ids", tuple(int(i) for i in self.source_ids))
        if len(self.names) - 1 > MAX_CLASSES:
            raise ConfigError(f"{len(self.names) - 1} classes: a label map holds at most {MAX_CLASSES} (1..254; 0 is "
                              f"background and 255 ignore); merge or drop classes first")
        if len(self.names) < 2 or self.names[0] != "background":
            raise ConfigError("a label space is background followed by at least one class")
        if self.source_ids and len(self.source_ids) != len(self.names) - 1:
            raise ConfigError("a label space has one source id per class")

    @property
    def num_classes(self) -> int:
        """Classes with background: the length of a store's ``filling_rate``."""
        return len(self.names)

    @property
    def is_voc(self) -> bool:
        return self.names == VOC_CLASSES and not self.source_ids

    def source_id(self, c: int) -> int:
        """The dataset's own id of class ``c`` (1..C): its COCO category id, YOLO index, or ``c``."""
        return self.source_ids[c - 1] if self.source_ids else int(c)

    def attrs(self) -> dict[str, str]:
        """What a store records of it (root attributes ``class_names`` and ``class_ids``)."""
        out = {"class_names": json.dumps(list(self.names))}
        if self.source_ids:
            out["class_ids"] = json.dumps(list(self.source_ids))
        return out

    @classmethod
    def from_attrs(cls, meta: dict) -> "LabelSpace":
        """The label space a store records; VOC's for stores written before stores recorded one."""
        names = meta.get("class_names")
        if not names:
            return VOC
        names = json.loads(names) if isinstance(names, str) else list(names)
        ids = meta.get("class_ids")
        return cls(tuple(names), tuple(json.loads(ids)) if isinstance(ids, str) else ())

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 colours of label values: VOC's colour map, which gives every one of the
        256 values its own colour (255 is VOC's void colour)."""
        return voc_palette()


VOC = LabelSpace(VOC_CLASSES)
"""PASCAL VOC 2012's label space (SBD's too)."""
