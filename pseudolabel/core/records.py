"""Immutable dataset records: what stages see instead of files.

Coordinate convention (the only one inside the package): boxes are integer
``(x0, y0, x1, y1)`` in the original image's pixel grid, 0-based and half-open, so a box
covers rows ``y0 .. y1-1`` and columns ``x0 .. x1-1`` and ``mask[y0:y1, x0:x1]`` is its
area. Read as continuous coordinates they are the pixel edges, which is also the frame
torchvision detectors use. The catalog converts VOC's 1-based inclusive XML corners once:
``x0 = xmin - 1, y0 = ymin - 1, x1 = xmax, y1 = ymax``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np



def id_problem(image_id: str) -> str | None:
    """What makes ``image_id`` unusable as a file name under a folder (stores, journals and exports
    name files by it), or None: a path separator, a NUL, ``.`` / ``..``, an empty name, or text that
    is not UTF-8. Checked wherever an id is read (split files, store indexes, journals)."""
    if not isinstance(image_id, str) or not image_id:
        return "empty"
    if "/" in image_id or "\\" in image_id or "\0" in image_id:
        return "a path, not a file name (a separator or NUL)"
    if image_id in (".", "..") or image_id != image_id.strip():
        return "not a file name (. or .., or spaces around it)"
    try:
        image_id.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    return None


@dataclass(frozen=True)
class ObjectRecord:
    """One annotated object: class ``class_id`` in 1..C of the dataset's label space, box in the
    convention above, VOC flags; ``source_id``: the dataset's own id of the annotation (COCO's
    annotation id), when it has one."""

    class_id: int
    box: tuple[int, int, int, int]
    difficult: bool = False
    truncated: bool = False
    source_id: int | None = None

    @property
    def area(self) -> int:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


@dataclass(frozen=True)
class ImageRecord:
    """One image of a split, with its objects and where its files live.

    ``width``/``height`` are the size the annotation declares; the image loader checks the
    decoded image against them. Ground-truth paths are ``None`` when the dataset has none (a COCO
    dataset's ground truth is in its JSON: the path is that file's). ``source_id``: the dataset's
    own id of the image (COCO's image id). ``ignore_boxes``: regions that are neither object nor
    background (COCO's ``iscrowd`` annotations): background pixels inside them are 255.
    """

    image_id: str
    image_path: str
    width: int
    height: int
    objects: tuple[ObjectRecord, ...]
    annotation_path: str = ""
    class_gt_path: str | None = None
    object_gt_path: str | None = None
    source_id: int | None = None
    ignore_boxes: tuple[tuple[int, int, int, int], ...] = ()

    def boxes(self) -> np.ndarray:
        """(K, 4) int32 boxes in the package convention."""
        return np.array([o.box for o in self.objects], dtype=np.int32).reshape(-1, 4)

    def classes(self) -> np.ndarray:
        """(K,) uint8 class ids 1..C."""
        return np.array([o.class_id for o in self.objects], dtype=np.uint8)

    def flags(self, name: str) -> np.ndarray:
        """(K,) bool per-object flag (``difficult`` or ``truncated``)."""
        return np.array([getattr(o, name) for o in self.objects], dtype=bool)

    def source_ids(self) -> np.ndarray | None:
        """(K,) int64 annotation ids of the objects, when every object has one (COCO), else None."""
        ids = [o.source_id for o in self.objects]
        return np.array(ids, dtype=np.int64) if ids and None not in ids else None


@dataclass(frozen=True)
class BadRecord:
    """An image whose annotation could not be read: kept in the split so that a run can stop
    with a message naming the file, or skip it and record it as failed."""

    image_id: str
    path: str
    problem: str
    class_gt_path: str | None = None
    """The image's ground-truth segmentation, when there is one: evaluation counts its pixels as
    uncommitted, like those of any failed image."""

    @property
    def reason(self) -> str:
        return f"{self.path}: {self.problem}"
