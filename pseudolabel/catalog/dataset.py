"""What every dataset layout gives the rest of the package: its splits and the records of a split,
its label space, and its ground truth (for evaluation). The layouts are ``layouts.VocSbd`` (PASCAL
VOC 2012, SBD, both), ``coco.CocoDataset`` (COCO instances JSON) and ``yolo.YoloDataset`` (YOLO
detection or segmentation labels); ``layouts.open_dataset`` recognises them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.classes import IGNORE, VOC, LabelSpace
from ..core.errors import DataError, LayoutError
from ..core.records import BadRecord, ImageRecord

Record = ImageRecord | BadRecord

MAX_OBJECTS = 1000
"""Objects an image may have by default (``--max-objects``): a stage holds one mask per object in
memory (a 640x480 photo with 1,000 objects: about 300 MB of masks), so an annotation with 20,000
boxes (a broken export, a fuzzer) must fail alone instead of taking the machine's memory. VOC's
most crowded image has 56 objects, COCO's 93 (crowd regions apart)."""


def bounded(record: Record, max_objects: int) -> Record:
    """``record``, or a :class:`BadRecord` naming its annotation when it has more than
    ``max_objects`` objects."""
    if isinstance(record, ImageRecord) and len(record.objects) > max_objects:
        return BadRecord(record.image_id, record.annotation_path or record.image_path,
                         f"{len(record.objects)} objects, more than the {max_objects} an image may have "
                         f"(--max-objects; a mask per object is held in memory)", class_gt_path=record.class_gt_path)
    return record


class Dataset:
    """A data root resolved to its layout (a subclass per layout)."""

    kind = ""
    """``voc``, ``sbd``, ``voc+sbd``, ``coco`` or ``yolo``: recorded in every store."""
    void_in_gt = True
    """Whether the ground truth marks uncertain pixels (VOC's 255 band); COCO's masks do not."""

    def __init__(self, root: Path, max_objects: int = MAX_OBJECTS, labels: LabelSpace = VOC):
        if max_objects < 1:
            raise LayoutError(f"--max-objects must be at least 1, got {max_objects}")
        self.root, self.max_objects, self.labels = Path(root), max_objects, labels

    @property
    def name(self) -> str:
        """Short name used in cache paths: the data root's folder name."""
        return self.root.name or "data"

    def annotation_file(self, split: str) -> str | None:
        """The one annotation file a split is read from (COCO), else None."""
        return None

    def splits(self) -> list[str]:
        raise NotImplementedError

    def default_split(self) -> str:
        """The split a command uses when none is given: ``train``, else the data's only split."""
        splits = self.splits()
        return splits[0] if len(splits) == 1 and "train" not in splits else "train"

    def check_split(self, split: str) -> str:
        """``split`` when the data has it, else a LayoutError listing those it has."""
        if split not in self.splits():
            raise LayoutError(f"unknown split {split!r} for the {self.kind} data at {self.root}; "
                              f"available: {', '.join(self.splits()) or 'none'}")
        return split

    def records(self, split: str) -> list[Record]:
        """Records of ``split`` in the split's order. An image whose annotation is unreadable, or
        that has more than ``max_objects`` objects, is a :class:`BadRecord` naming file and problem."""
        self.check_split(split)
        return [bounded(r, self.max_objects) for r in self._records(split)]

    def _records(self, split: str) -> list[Record]:
        raise NotImplementedError

    # -- ground truth, for evaluation --------------------------------------------------------
    def class_gt(self, record: Record) -> np.ndarray:
        """Ground-truth semantic labels (H, W) uint8: 0 background, 1..C, 255 void."""
        raise NotImplementedError

    def has_object_gt(self, record: Record) -> bool:
        return isinstance(record, ImageRecord) and record.object_gt_path is not None

    def object_gt(self, record: ImageRecord) -> np.ndarray:
        """Ground-truth instances (H, W): 0 background, an instance value per instance, 255 void."""
        raise NotImplementedError

    def paired(self, record: ImageRecord, instances: np.ndarray) -> list[int | None]:
        """The instance value of each of ``record``'s objects (None when the map has no such
        instance): object k is instance k + 1 unless a layout says otherwise."""
        present = {int(v) for v in np.unique(instances) if v not in (0, IGNORE)}
        return [k + 1 if k + 1 in present else None for k in range(len(record.objects))]

    def check_gt(self, labels: np.ndarray, path, record: Record) -> np.ndarray:
        """``labels`` when every value is a class of this dataset or 255, and the size is the image's."""
        bad = (labels >= self.labels.num_classes) & (labels != IGNORE)
        if bad.any():
            raise DataError(path, f"ground truth holds class values outside 0..{self.labels.num_classes - 1}/255: "
                                  f"{sorted(set(np.unique(labels[bad]).tolist()))[:10]}", record.image_id)
        if isinstance(record, ImageRecord) and labels.shape != (record.height, record.width):
            raise DataError(path, f"ground truth is {labels.shape[1]}x{labels.shape[0]} but the image "
                                  f"is {record.width}x{record.height}", record.image_id)
        return labels
