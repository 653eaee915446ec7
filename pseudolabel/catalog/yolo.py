"""YOLO labels as a data root (the Ultralytics layout)::

    data.yaml                    names: the classes (a list, or {index: name})
    images/<split>/<name>.jpg    the photos (jpg, jpeg, png, bmp, tif, tiff, webp)
    labels/<split>/<name>.txt    one object per line: "class cx cy w h" (normalised to [0, 1]), or a
                                 segmentation polygon "class x1 y1 x2 y2 ..." (YOLO-seg)
    masks/<split>/<name>.png     optional: ground truth as label values (0 background, class + 1,
                                 255 void), grey or palette

* Splits are the folders under ``images/``; an image's id is its file name's stem; a photo without
  a label file has no objects (all background).
* Classes are ``names``: class index ``i`` of the files is class ``i + 1`` of the label space (the
  index kept as its source id, so YOLO exports write the same indices).
* Boxes are in the frame Ultralytics uses, the photo turned upright by its EXIF orientation:
  ``x0 = round((cx - w / 2) * W)``, ``x1 = round((cx + w / 2) * W)`` (at least one pixel); a polygon's
  box is its extent.
* Ground truth for ``evaluate``: the polygons of YOLO-seg labels (filled at pixel resolution, smaller
  over larger, object k paired with its own line), or ``masks/<split>/<name>.png``. Neither marks a
  void band.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.classes import IGNORE, LabelSpace
from ..core.errors import ConfigError, DataError, LayoutError
from ..core.labels import paint_order
from ..core.records import BadRecord, ImageRecord, ObjectRecord, id_problem
from .dataset import MAX_OBJECTS, Dataset, Record

PHOTOS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def find_yolo(root: Path) -> Path | None:
    """The data.yaml of a YOLO dataset at ``root`` (``data.yaml``, or the one ``*.yaml`` there),
    when ``labels/`` and ``images/`` are there too."""
    if not ((root / "labels").is_dir() and (root / "images").is_dir()):
        return None
    if (root / "data.yaml").is_file():
        return root / "data.yaml"
    found = sorted(root.glob("*.yaml"))
    return found[0] if len(found) == 1 else None


def yolo_labels(path: Path) -> LabelSpace:
    """The ``names`` of a data.yaml as a label space."""
    import yaml
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LayoutError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            indices = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise LayoutError(f"{path}: names must be a list, or a mapping of class indices 0..N-1 to names") from None
        if indices != list(range(len(indices))):
            raise LayoutError(f"{path}: the class indices of names must be 0..{len(indices) - 1}, got {indices[:10]}")
        names = [names[k] if k in names else names[str(k)] for k in indices]
    if not isinstance(names, list) or not names:
        raise LayoutError(f"{path}: no 'names' (the list of classes a YOLO dataset's data.yaml gives)")
    try:
        return LabelSpace(("background", *(str(n) for n in names)), tuple(range(len(names))))
    except ConfigError as exc:
        raise LayoutError(f"{path}: {exc}") from None


def parse_line(line: str, n_classes: int) -> tuple[int, np.ndarray]:
    """``(class index, (P, 2) normalised points)``: two corners for a box line, the vertices for
    a polygon; ValueError naming the problem."""
    values = line.split()
    if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0) or len(values) == 6:
        raise ValueError(f"{len(values)} numbers; expected 5 (class cx cy w h) or a polygon "
                         f"(class x1 y1 x2 y2 x3 y3 ...)")
    try:
        cls = int(values[0])
        numbers = np.array([float(v) for v in values[1:]])
    except ValueError:
        raise ValueError("not numbers") from None
    if not 0 <= cls < n_classes:
        raise ValueError(f"class {cls} is not one of the {n_classes} in names (0..{n_classes - 1})")
    if not np.isfinite(numbers).all() or numbers.min() < 0 or numbers.max() > 1:
        raise ValueError("values outside [0, 1] (coordinates are normalised by the image's size)")
    if len(values) == 5:
        cx, cy, w, h = numbers
        if w <= 0 or h <= 0:
            raise ValueError("a box of no area")
        return cls, np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy + h / 2]])
    return cls, numbers.reshape(-1, 2)


def _box(points: np.ndarray, width: int, height: int, polygon: bool) -> tuple[int, int, int, int]:
    if polygon:                                   # vertices at pixel centres, as YOLO-seg writes them
        xs, ys = points[:, 0] * width - 0.5, points[:, 1] * height - 0.5
        x0, y0 = math.floor(xs.min() + 1e-6), math.floor(ys.min() + 1e-6)
        x1, y1 = math.floor(xs.max() + 1e-6) + 1, math.floor(ys.max() + 1e-6) + 1
    else:
        x0, y0 = round(points[0, 0] * width), round(points[0, 1] * height)
        x1, y1 = round(points[1, 0] * width), round(points[1, 1] * height)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def upright_size(path: Path) -> tuple[int, int]:
    """A photo's (width, height) turned upright by its EXIF orientation (what Ultralytics normalises by)."""
    from .pixels import _tag
    with Image.open(path) as img:
        w, h = img.size
        return (h, w) if _tag(img) in (5, 6, 7, 8) else (w, h)


class YoloDataset(Dataset):
    """A YOLO dataset (see the module docstring)."""

    kind = "yolo"
    void_in_gt = False

    def __init__(self, root: Path, yaml_file: Path, max_objects: int = MAX_OBJECTS):
        super().__init__(root, max_objects, yolo_labels(yaml_file))
        self.yaml_file = yaml_file
        self._lines: dict[str, list[tuple[int, np.ndarray]]] = {}

    def splits(self) -> list[str]:
        return sorted(p.name for p in (self.root / "images").iterdir() if p.is_dir())

    def _records(self, split: str) -> list[Record]:
        photos = sorted(p for p in (self.root / "images" / split).iterdir() if p.suffix.lower() in PHOTOS)
        stems = [p.stem for p in photos]
        if len(set(stems)) != len(stems):
            raise LayoutError(f"{self.root / 'images' / split}: two photos share a name (image ids are file names)")
        return [self._record(split, p) for p in photos]

    def _record(self, split: str, photo: Path) -> Record:
        image_id = photo.stem
        problem = id_problem(image_id)
        if problem:
            raise LayoutError(f"{photo}: the file name gives the image id {image_id!r} ({problem})")
        label = self.root / "labels" / split / f"{image_id}.txt"
        mask = self.root / "masks" / split / f"{image_id}.png"
        try:
            width, height = upright_size(photo)
        except Exception as exc:  # noqa: BLE001 - an unreadable photo fails at load, named there
            return BadRecord(image_id, str(photo), f"cannot read the image's size ({exc})")
        lines: list[tuple[int, np.ndarray]] = []
        try:
            text = label.read_text(encoding="utf-8") if label.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            return BadRecord(image_id, str(label), f"cannot read the label file ({exc})")
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    lines.append(parse_line(line, self.labels.num_classes - 1))
                except ValueError as exc:
                    return BadRecord(image_id, str(label), f"line {n}: {exc}",
                                     class_gt_path=str(mask) if mask.exists() else None)
        self._lines[f"{split}/{image_id}"] = lines
        polygons = bool(lines) and all(len(p) > 2 for _, p in lines)
        objects = tuple(ObjectRecord(c + 1, _box(p, width, height, len(p) > 2)) for c, p in lines)
        return ImageRecord(image_id=image_id, image_path=str(photo), width=width, height=height, objects=objects,
                           annotation_path=str(label),
                           class_gt_path=str(mask) if mask.exists() else (str(label) if polygons or not lines else None),
                           object_gt_path=str(label) if polygons else None)

    # -- ground truth ------------------------------------------------------------------------
    def _polygon_masks(self, record: ImageRecord) -> list[np.ndarray]:
        import cv2
        split = Path(record.annotation_path).parent.name
        out = []
        for _, points in self._lines.get(f"{split}/{record.image_id}", []):
            mask = np.zeros((record.height, record.width), np.uint8)
            xy = np.round(points * (record.width, record.height) - 0.5).astype(np.int32)
            cv2.fillPoly(mask, [xy], 1)
            out.append(mask.astype(bool))
        return out

    def class_gt(self, record: Record) -> np.ndarray:
        path = record.class_gt_path
        if path is None:
            raise DataError(getattr(record, "annotation_path", "") or record.path,
                            "no ground truth for this image (box labels only, and no masks/ PNG)", record.image_id)
        if path.endswith(".png"):
            from .pixels import _load_png_indices
            return self.check_gt(_load_png_indices(path, record), path, record)
        label = np.zeros((record.height, record.width), np.uint8)
        masks = self._polygon_masks(record)
        for k in paint_order(record.boxes()):
            label[masks[k]] = record.objects[k].class_id
        return label

    def object_gt(self, record: ImageRecord) -> np.ndarray:
        if len(record.objects) >= IGNORE:
            raise DataError(record.annotation_path, f"{len(record.objects)} objects: instance scores take at most "
                                                    f"254 per image", record.image_id)
        instances = np.zeros((record.height, record.width), np.uint8)
        masks = self._polygon_masks(record)
        for k in paint_order(record.boxes()):
            instances[masks[k]] = k + 1
        return instances
