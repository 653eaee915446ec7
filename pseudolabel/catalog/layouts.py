"""Data roots and their layouts (VOC, SBD, both), splits, and the records of a split."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LayoutError
from ..core.records import BadRecord, ImageRecord, id_problem
from .sbd import sbd_record
from .voc import voc_record

Record = ImageRecord | BadRecord

MAX_OBJECTS = 1000
"""Objects an image may have by default (``--max-objects``): a stage holds one mask per object in
memory (a 640x480 photo with 1,000 objects: about 300 MB of masks), so an annotation with 20,000
boxes (a broken export, a fuzzer) must fail alone instead of taking the machine's memory. VOC's
most crowded image has 56 objects, COCO's 93 (crowd regions apart)."""

VOC_CANDIDATES = (".", "VOC2012", "VOCdevkit/VOC2012")
SBD_CANDIDATES = (".", "SBD", "sbd", "benchmark_RELEASE/dataset", "dataset")


def _is_voc(path: Path) -> bool:
    return (path / "JPEGImages").is_dir() and (path / "ImageSets" / "Segmentation").is_dir()


def _is_sbd(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("img", "cls", "inst"))


@dataclass(frozen=True)
class Dataset:
    """A data root resolved to its layout. ``voc`` and ``sbd`` are the folders found (or None)."""

    root: Path
    voc: Path | None
    sbd: Path | None
    max_objects: int = MAX_OBJECTS

    @property
    def kind(self) -> str:
        return "voc+sbd" if self.voc and self.sbd else ("voc" if self.voc else "sbd")

    @property
    def name(self) -> str:
        """Short name used in cache paths: the data root's folder name."""
        return self.root.name or "data"

    def splits(self) -> list[str]:
        names: list[str] = []
        if self.voc:
            names += sorted(p.stem for p in (self.voc / "ImageSets" / "Segmentation").glob("*.txt"))
        if self.sbd and self.voc:
            names += ["sbd_train", "sbd_val", "train_aug"]
        elif self.sbd:
            names += ["train", "val"]
        return names

    def check_split(self, split: str) -> str:
        """``split`` when the data has it, else a LayoutError listing those it has."""
        if split not in self.splits():
            raise LayoutError(f"unknown split {split!r} for the {self.kind} data at {self.root}; "
                              f"available: {', '.join(self.splits()) or 'none'}")
        return split

    # ------------------------------------------------------------------------- records
    def records(self, split: str) -> list[Record]:
        """Records of ``split`` in split-file order (``train_aug``: sorted ids). An image
        whose annotation is unreadable becomes a :class:`BadRecord` naming file and problem."""
        self.check_split(split)
        if self.voc and self.sbd:
            if split == "train_aug":
                ids = self._train_aug_ids()
            elif split in ("sbd_train", "sbd_val"):
                ids = _read_id_list(self.sbd / f"{split[4:]}.txt")
            else:
                ids = _read_id_list(self.voc / "ImageSets" / "Segmentation" / f"{split}.txt")
        elif self.voc:
            ids = _read_id_list(self.voc / "ImageSets" / "Segmentation" / f"{split}.txt")
        else:
            ids = _read_id_list(self.sbd / f"{split}.txt")
        return [self._record(i) for i in ids]

    def _train_aug_ids(self) -> list[str]:
        seg = self.voc / "ImageSets" / "Segmentation"
        voc_train = _read_id_list(seg / "train.txt")
        voc_val = set(_read_id_list(seg / "val.txt")) if (seg / "val.txt").exists() else set()
        sbd = _read_id_list(self.sbd / "train.txt") + _read_id_list(self.sbd / "val.txt")
        return sorted(set(sbd).union(voc_train) - voc_val)

    def _record(self, image_id: str) -> Record:
        voc_xml = self.voc / "Annotations" / f"{image_id}.xml" if self.voc else None
        if self.voc and (not self.sbd or voc_xml.exists()):
            record = voc_record(self.voc, image_id)
        else:
            record = sbd_record(self.sbd, image_id, voc=self.voc)
        return bounded(record, self.max_objects)


def bounded(record: Record, max_objects: int) -> Record:
    """``record``, or a :class:`BadRecord` naming its annotation when it has more than
    ``max_objects`` objects."""
    if isinstance(record, ImageRecord) and len(record.objects) > max_objects:
        return BadRecord(record.image_id, record.annotation_path or record.image_path,
                         f"{len(record.objects)} objects, more than the {max_objects} an image may have "
                         f"(--max-objects; a mask per object is held in memory)", class_gt_path=record.class_gt_path)
    return record


def open_dataset(root: str | os.PathLike | None, max_objects: int = MAX_OBJECTS) -> Dataset:
    """Resolve a data root to its layout, or raise :class:`LayoutError` saying what was
    looked for. ``max_objects``: images with more objects are bad records (see :data:`MAX_OBJECTS`)."""
    if root is None or str(root) == "":
        raise LayoutError(
            "no data root given: pass --data-root DIR or set PSEUDOLABEL_DATA "
            "(a VOC2012 folder, an SBD folder, or a folder holding both)"
        )
    try:
        root = Path(root).expanduser().resolve(strict=False)
        is_dir = root.is_dir()
    except (RuntimeError, OSError) as exc:            # a symbolic link loop, a name too long, ...
        raise LayoutError(f"{root}: cannot resolve the data root ({exc})") from None
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError:
        raise LayoutError(f"{os.fsencode(root)!r}: the data root's path is not valid UTF-8; stores record "
                          f"it as UTF-8 text, so rename the folder (or reach it through a link whose "
                          f"path is UTF-8)") from None
    if not is_dir:
        raise LayoutError(f"{root}: data root does not exist or is not a folder")
    voc = next((root / c for c in VOC_CANDIDATES if _is_voc(root / c)), None)
    sbd = next((root / c for c in SBD_CANDIDATES if _is_sbd(root / c)), None)
    if voc is None and sbd is None:
        raise LayoutError(
            f"{root}: no dataset found. Expected a PASCAL VOC 2012 folder (JPEGImages/, "
            f"Annotations/, ImageSets/Segmentation/) or an SBD folder (img/, cls/, inst/), "
            f"at the root or under {', '.join(c for c in VOC_CANDIDATES + SBD_CANDIDATES if c != '.')}"
        )
    if max_objects < 1:
        raise LayoutError(f"--max-objects must be at least 1, got {max_objects}")
    return Dataset(root=root, voc=voc.resolve() if voc else None, sbd=sbd.resolve() if sbd else None,
                   max_objects=max_objects)


def _read_id_list(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LayoutError(f"{path}: split file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: cannot read split file ({exc})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]   # an id may hold spaces
    for image_id in ids:
        problem = id_problem(image_id)
        if problem:
            raise LayoutError(f"{path}: invalid image id {image_id!r} ({problem})")
    if len(set(ids)) != len(ids):
        raise LayoutError(f"{path}: the split lists some image ids more than once")
    return ids
