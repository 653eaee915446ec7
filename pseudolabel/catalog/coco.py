"""COCO instances JSON as a data root: ``--data-root DIR --annotations instances_train.json``, or a
folder in COCO's own layout (``annotations/instances_<split>.json`` and the images in ``<split>/``,
``images/<split>/`` or ``images/``), one split per file.

* Classes are the file's ``categories``, sorted by id: class 1..C of the label space is the c-th
  category, and its COCO id is kept (``LabelSpace.source_ids``) for exports.
* Images are the file's ``images`` in file order (those without annotations too: all
  background); an image's id is its file name's stem (``000000000009``), its COCO id is kept.
* Boxes are ``bbox`` ``[x, y, w, h]`` (floats, pixel edges) turned into integer half-open boxes
  that hold them: ``x0 = floor(x)``, ``x1 = ceil(x + w)`` (within 0.001 px of a whole number
  counts as it). A box outside its image by more than a pixel, of no area, or of an unknown
  category makes that image a bad record naming the file and the annotation id.
* ``iscrowd`` annotations are not objects: their boxes are **ignore regions** (background pixels
  of a pseudo label inside them are 255), and their masks are void in the ground truth.
* Ground truth for ``evaluate`` is each annotation's ``segmentation`` (polygons or RLE, decoded by
  pycocotools), painted smaller over larger like the labels; object k is paired with its own
  annotation. COCO masks mark no void band, so scores read lower than on VOC (the report says so).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.classes import IGNORE, LabelSpace
from ..core.errors import ConfigError, DataError, LayoutError
from ..core.labels import paint_order
from ..core.records import BadRecord, ImageRecord, ObjectRecord, id_problem
from .dataset import MAX_OBJECTS, Dataset, Record

EDGE_SLACK = 1.0
"""How far (px) a box may stick out of its image and be clipped to it (COCO's float boxes often end
a hair beyond the last pixel); further out it is a bad annotation."""


def find_coco(root: Path) -> dict[str, Path]:
    """``{split: instances file}`` of a folder in COCO's layout (``annotations/instances_<split>.json``)."""
    return {p.stem[len("instances_"):]: p for p in sorted((root / "annotations").glob("instances_*.json"))}


def split_name(path: Path) -> str:
    """``instances_train2017.json`` -> ``train2017``; any other file name -> its stem."""
    stem = Path(path).stem
    return stem[len("instances_"):] if stem.startswith("instances_") and len(stem) > len("instances_") else stem


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{path}: no such annotation file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LayoutError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")) \
            or not isinstance(data.get("annotations", []), list):
        raise LayoutError(f"{path}: not a COCO instances file (it needs the lists 'images', 'annotations' and "
                          f"'categories')")
    return data


def label_space(path: Path, categories: list) -> LabelSpace:
    """The categories of a COCO file, by id, as a label space (COCO ids kept)."""
    try:
        pairs = sorted((int(c["id"]), str(c["name"])) for c in categories)
    except (KeyError, TypeError, ValueError):
        raise LayoutError(f"{path}: every category needs an integer 'id' and a 'name'") from None
    if not pairs:
        raise LayoutError(f"{path}: no categories")
    ids = [i for i, _ in pairs]
    if len(set(ids)) != len(ids):
        raise LayoutError(f"{path}: category ids are not unique")
    try:
        return LabelSpace(("background", *(n for _, n in pairs)), tuple(ids))
    except ConfigError as exc:
        raise LayoutError(f"{path}: {exc}") from None


def coco_box(bbox, width: int, height: int) -> tuple[int, int, int, int]:
    """``[x, y, w, h]`` -> the integer half-open box holding it; ValueError naming the problem."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        raise ValueError(f"bbox must be four finite numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox {bbox!r} has no area")
    if x < -EDGE_SLACK or y < -EDGE_SLACK or x + w > width + EDGE_SLACK or y + h > height + EDGE_SLACK:
        raise ValueError(f"bbox {bbox!r} lies outside the {width}x{height} image")
    x0, y0 = max(math.floor(x + 1e-3), 0), max(math.floor(y + 1e-3), 0)
    x1, y1 = min(math.ceil(x + w - 1e-3), width), min(math.ceil(y + h - 1e-3), height)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


class CocoDataset(Dataset):
    """A COCO instances file per split (see the module docstring)."""

    kind = "coco"
    void_in_gt = False

    def __init__(self, root: Path, files: dict[str, Path], max_objects: int = MAX_OBJECTS):
        self.files = {split: Path(p).resolve() for split, p in files.items()}
        self._data: dict[str, dict[str, Any]] = {}
        first = next(iter(self.files))
        labels = label_space(self.files[first], self._load(first)["categories"])
        super().__init__(root, max_objects, labels)
        self._anns: dict[str, list[dict]] = {}               # image id -> its annotations
        self._by_record: dict[str, str] = {}                 # image id -> split

    @classmethod
    def from_file(cls, root: Path, annotations, max_objects: int = MAX_OBJECTS) -> "CocoDataset":
        path = Path(annotations).expanduser()
        if not path.is_file():
            raise LayoutError(f"{path}: --annotations names no file")
        return cls(root, {split_name(path): path}, max_objects)

    def annotation_file(self, split: str) -> str | None:
        return str(self.files[split]) if split in self.files else None

    def splits(self) -> list[str]:
        return list(self.files)

    def _load(self, split: str) -> dict[str, Any]:
        if split not in self._data:
            self._data[split] = _read(self.files[split])
        return self._data[split]

    def _images_dir(self, split: str) -> Path:
        for candidate in (self.root / split, self.root / "images" / split, self.root / "images", self.root):
            if candidate.is_dir():
                return candidate
        return self.root

    def _records(self, split: str) -> list[Record]:
        path, data = self.files[split], self._load(split)
        if data["categories"] != self._load(next(iter(self.files)))["categories"] and \
                label_space(path, data["categories"]) != self.labels:
            raise LayoutError(f"{path}: its categories differ from those of {next(iter(self.files.values()))}; "
                              f"one dataset has one list of classes")
        by_image: dict[Any, list[dict]] = {}
        for ann in data.get("annotations", []):
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise LayoutError(f"{path}: an annotation without an image_id: {str(ann)[:80]}")
            by_image.setdefault(ann["image_id"], []).append(ann)
        known = {im.get("id") for im in data["images"] if isinstance(im, dict)}
        stray = [a.get("id") for k, anns in by_image.items() if k not in known for a in anns]
        if stray:
            raise LayoutError(f"{path}: annotation(s) {stray[:5]} refer to images that are not in 'images'")
        folder, seen, out = self._images_dir(split), set(), []
        for im in data["images"]:
            record = self._record(path, folder, im, by_image)
            if record.image_id in seen:
                raise LayoutError(f"{path}: two images are named {record.image_id!r}; image ids are file names")
            seen.add(record.image_id)
            out.append(record)
        return out

    def _record(self, path: Path, folder: Path, im: Any, by_image: dict) -> Record:
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            raise LayoutError(f"{path}: an image without a file_name: {str(im)[:80]}")
        image_id = Path(im["file_name"]).stem
        problem = id_problem(image_id)
        if problem:
            raise LayoutError(f"{path}: image file name {im['file_name']!r} gives the id {image_id!r} ({problem})")
        anns = by_image.get(im.get("id"), [])
        self._anns[image_id] = anns
        try:
            width, height = int(im["width"]), int(im["height"])
            if width <= 0 or height <= 0 or width != im["width"] or height != im["height"]:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            return BadRecord(image_id, str(path), f"image {im.get('id')} needs a positive integer width and height")
        objects, crowd = [], []
        index = {cid: c for c, cid in enumerate(self.labels.source_ids, start=1)}
        for ann in anns:
            where = f"annotation {ann.get('id')} (image {im.get('id')})"
            if ann.get("category_id") not in index:
                return BadRecord(image_id, str(path), f"{where} has category id {ann.get('category_id')!r}, which "
                                                      f"is not in 'categories'", class_gt_path=None)
            try:
                box = coco_box(ann.get("bbox"), width, height)
            except ValueError as exc:
                return BadRecord(image_id, str(path), f"{where}: {exc}")
            if ann.get("iscrowd"):
                crowd.append(box)
            else:
                source = ann.get("id")
                objects.append(ObjectRecord(index[ann["category_id"]], box,
                                            source_id=int(source) if isinstance(source, int) else None))
        has_gt = bool(objects) and all(a.get("segmentation") for a in anns if not a.get("iscrowd"))
        return ImageRecord(image_id=image_id, image_path=str(folder / im["file_name"]), width=width, height=height,
                           objects=tuple(objects), annotation_path=str(path),
                           class_gt_path=str(path) if has_gt or not anns else None,
                           object_gt_path=str(path) if has_gt else None,
                           source_id=int(im["id"]) if isinstance(im.get("id"), int) else None,
                           ignore_boxes=tuple(crowd))

    # -- ground truth ------------------------------------------------------------------------
    def _masks(self, record: Record) -> tuple[list[np.ndarray], np.ndarray]:
        """The decoded masks of the record's objects (in object order) and the union of its crowd
        masks."""
        from pycocotools import mask as mask_utils
        h, w = record.height, record.width
        objects, crowd = [], np.zeros((h, w), bool)
        for ann in self._anns.get(record.image_id, []):
            seg = ann.get("segmentation")
            try:
                if isinstance(seg, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if seg else None
                elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                    rle = mask_utils.frPyObjects(seg, h, w)
                elif isinstance(seg, dict):
                    rle = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str)
                           else seg["counts"]}
                else:
                    rle = None
                mask = mask_utils.decode(rle).astype(bool) if rle is not None else np.zeros((h, w), bool)
            except Exception as exc:  # noqa: BLE001 - pycocotools raises many kinds on bad input
                raise DataError(record.annotation_path, f"annotation {ann.get('id')}: cannot decode its "
                                                        f"segmentation ({exc})", record.image_id) from None
            if mask.shape != (h, w):
                raise DataError(record.annotation_path, f"annotation {ann.get('id')}: its segmentation is "
                                                        f"{mask.shape[1]}x{mask.shape[0]}, not {w}x{h}", record.image_id)
            if ann.get("iscrowd"):
                crowd |= mask
            else:
                objects.append(mask)
        return objects, crowd

    def class_gt(self, record: Record) -> np.ndarray:
        if isinstance(record, BadRecord) or record.class_gt_path is None:
            raise DataError(getattr(record, "annotation_path", None) or record.path,
                            "no ground-truth segmentation for this image (its annotations have no 'segmentation')",
                            record.image_id)
        masks, crowd = self._masks(record)
        label = np.zeros((record.height, record.width), np.uint8)
        for k in paint_order(record.boxes()):
            label[masks[k]] = record.objects[k].class_id
        label[crowd] = IGNORE
        return label

    def object_gt(self, record: ImageRecord) -> np.ndarray:
        """Object k's own annotation is instance k + 1 (smaller masks over larger), crowd masks void."""
        if len(record.objects) >= IGNORE:
            raise DataError(record.annotation_path, f"{len(record.objects)} objects: instance scores take at most "
                                                    f"254 per image", record.image_id)
        masks, crowd = self._masks(record)
        instances = np.zeros((record.height, record.width), np.uint8)
        for k in paint_order(record.boxes()):
            instances[masks[k]] = k + 1
        instances[crowd] = IGNORE
        return instances


def write_coco(path: os.PathLike, data: dict) -> None:
    """A COCO dictionary to ``path`` (tests' fixture builders, exports)."""
    Path(path).write_text(json.dumps(data))
