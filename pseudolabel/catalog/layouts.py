"""Data roots and their layouts: PASCAL VOC 2012 and SBD (here), COCO instances JSON
(``coco.py``) and YOLO labels (``yolo.py``); :func:`open_dataset` recognises which."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import LayoutError
from ..core.records import ImageRecord, id_problem
from .dataset import MAX_OBJECTS, Dataset, Record, bounded
from .pixels import load_class_gt, load_object_gt
from .sbd import sbd_record
from .voc import voc_record

__all__ = ["MAX_OBJECTS", "SBD_CANDIDATES", "VOC_CANDIDATES", "Dataset", "Record", "VocSbd", "bounded",
           "open_dataset"]

VOC_CANDIDATES = (".", "VOC2012", "VOCdevkit/VOC2012")
SBD_CANDIDATES = (".", "SBD", "sbd", "benchmark_RELEASE/dataset", "dataset")


def _is_voc(path: Path) -> bool:
    return (path / "JPEGImages").is_dir() and (path / "ImageSets" / "Segmentation").is_dir()


def _is_sbd(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("img", "cls", "inst"))


class VocSbd(Dataset):
    """PASCAL VOC 2012 and/or SBD under one root. ``voc`` and ``sbd`` are the folders found (or
    None). Their label space is VOC's 20 classes."""

    def __init__(self, root: Path, voc: Path | None, sbd: Path | None, max_objects: int = MAX_OBJECTS):
        super().__init__(root, max_objects)
        self.voc, self.sbd = voc, sbd

    @property
    def kind(self) -> str:
        return "voc+sbd" if self.voc and self.sbd else ("voc" if self.voc else "sbd")

    def splits(self) -> list[str]:
        names: list[str] = []
        if self.voc:
            names += sorted(p.stem for p in (self.voc / "ImageSets" / "Segmentation").glob("*.txt"))
        if self.sbd and self.voc:
            names += ["sbd_train", "sbd_val", "train_aug"]
        elif self.sbd:
            names += ["train", "val"]
        return names

    def _records(self, split: str) -> list[Record]:
        """Split-file order (``train_aug``: sorted ids)."""
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
            return voc_record(self.voc, image_id)
        return sbd_record(self.sbd, image_id, voc=self.voc)

    def class_gt(self, record: Record) -> np.ndarray:
        return load_class_gt(record)

    def object_gt(self, record: ImageRecord) -> np.ndarray:
        return load_object_gt(record)

    def paired(self, record: ImageRecord, instances: np.ndarray) -> list[int | None]:
        """VOC: object k is instance k + 1; SBD: boxes are made from the non-empty instances in
        order, so object k is the k-th non-empty instance."""
        if not str(record.object_gt_path).endswith(".mat"):
            return super().paired(record, instances)
        present = [int(v) for v in np.unique(instances) if v not in (0, 255)]
        values = present[:len(record.objects)]
        return values + [None] * (len(record.objects) - len(values))


def _resolve_root(root) -> Path:
    if root is None or str(root) == "":
        raise LayoutError("no data root given: pass --data-root DIR or set PSEUDOLABEL_DATA (a VOC2012 folder, "
                          "an SBD folder, a COCO or YOLO dataset, or a folder holding VOC and SBD)")
    try:
        resolved = Path(root).expanduser().resolve(strict=False)
        is_dir = resolved.is_dir()
    except (RuntimeError, OSError) as exc:            # a symbolic link loop, a name too long, ...
        raise LayoutError(f"{root}: cannot resolve the data root ({exc})") from None
    try:
        str(resolved).encode("utf-8")
    except UnicodeEncodeError:
        raise LayoutError(f"{os.fsencode(resolved)!r}: the data root's path is not valid UTF-8; stores record "
                          f"it as UTF-8 text, so rename the folder (or reach it through a link whose "
                          f"path is UTF-8)") from None
    if not is_dir:
        raise LayoutError(f"{resolved}: data root does not exist or is not a folder")
    return resolved


def open_dataset(root: str | os.PathLike | None, max_objects: int = MAX_OBJECTS,
                 annotations: str | os.PathLike | None = None) -> Dataset:
    """Resolve a data root to its layout, or raise :class:`LayoutError` saying what was looked for.
    ``annotations``: a COCO instances JSON whose images are under ``root``. ``max_objects``: images
    with more objects are bad records (see :data:`MAX_OBJECTS`)."""
    from .coco import CocoDataset, find_coco
    from .yolo import YoloDataset, find_yolo
    root = _resolve_root(root)
    if annotations is not None:
        return CocoDataset.from_file(root, annotations, max_objects)
    voc = next((root / c for c in VOC_CANDIDATES if _is_voc(root / c)), None)
    sbd = next((root / c for c in SBD_CANDIDATES if _is_sbd(root / c)), None)
    if voc is not None or sbd is not None:
        return VocSbd(root, voc.resolve() if voc else None, sbd.resolve() if sbd else None, max_objects)
    coco = find_coco(root)
    if coco:
        return CocoDataset(root, coco, max_objects)
    yaml_file = find_yolo(root)
    if yaml_file is not None:
        return YoloDataset(root, yaml_file, max_objects)
    raise LayoutError(
        f"{root}: no dataset found. Expected a PASCAL VOC 2012 folder (JPEGImages/, Annotations/, "
        f"ImageSets/Segmentation/) or an SBD folder (img/, cls/, inst/), at the root or under "
        f"{', '.join(c for c in VOC_CANDIDATES + SBD_CANDIDATES if c != '.')}; a COCO dataset "
        f"(annotations/instances_<split>.json, or --annotations FILE); or a YOLO dataset (data.yaml with "
        f"names, images/<split>/, labels/<split>/)")


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


