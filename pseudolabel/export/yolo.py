"""YOLO segmentation labels (the Ultralytics layout) from a label store.

Writes, for the split::

    OUT/images/<split>/<photo>      a symbolic link to each labelled photo
    OUT/labels/<split>/<stem>.txt   one line per polygon: class index, then x1 y1 x2 y2 ...
    OUT/data.yaml                   path, train/val folders, class names
    OUT/pseudolabel_<split>.json    where it came from and what could not be written

Class index is the VOC class id minus one (0 aeroplane .. 19 tvmonitor). Coordinates are
normalised by the image's width and height, at pixel centres ((x + 0.5) / W), so that filling a
polygon back at pixel resolution gives the pixels it was traced from.

Masks become polygons with OpenCV's outer contours: a **hole** in a mask is filled (a polygon has
no holes), and a mask of **several parts** is written as one line per part (each part an
instance of the object's class; Ultralytics' own converter instead joins the parts into one
polygon by thin bridges). Parts under 3 contour points (a pixel or a line of pixels) cannot be a
polygon and are dropped. An object with an empty mask gets no line, so in YOLO's eyes its pixels
are background: those objects, the dropped parts and the images that failed in the run (not
linked, no label file) are listed in ``pseudolabel_<split>.json``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.classes import NUM_CLASSES, VOC_CLASSES
from ..core.progress import Progress
from ..store.reader import LabelStore

MIN_POINTS = 3


def polygons(mask: np.ndarray) -> tuple[list[np.ndarray], int]:
    """``(parts, dropped)``: each outer contour of ``mask`` with at least 3 points as an (N, 2)
    float array of pixel-centre coordinates (x, y), and how many parts were too small."""
    import cv2

    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2).astype(np.float64) + 0.5 for c in contours if len(c) >= MIN_POINTS]
    return parts, len(contours) - len(parts)


def yolo_lines(masks: np.ndarray, classes: np.ndarray) -> tuple[list[str], list[int], int]:
    """``(lines, empty objects, dropped parts)`` of one image's per-object masks."""
    lines, empty, dropped = [], [], 0
    h, w = masks.shape[1:]
    for k, (mask, c) in enumerate(zip(masks, classes)):
        if not mask.any():
            empty.append(k)
            continue
        parts, small = polygons(mask)
        dropped += small
        for part in parts:
            xy = np.clip(part / (w, h), 0.0, 1.0)
            lines.append(f"{int(c) - 1} " + " ".join(f"{v:.6f}" for v in xy.ravel()))
    return lines, empty, dropped


def read_yolo_labels(path: str | os.PathLike, width: int, height: int) -> list[tuple[int, np.ndarray]]:
    """The lines of a label file back as ``(class index, (N, 2) pixel coordinates)``."""
    out = []
    for line in Path(path).read_text().splitlines():
        values = line.split()
        xy = np.asarray(values[1:], dtype=np.float64).reshape(-1, 2) * (width, height) - 0.5
        out.append((int(values[0]), xy))
    return out


@dataclass
class YoloExport:
    out: Path
    images: int
    lines: int
    empty: int
    dropped_parts: int
    failed: int


def _data_yaml(out: Path) -> str:
    splits = sorted(p.name for p in (out / "images").iterdir() if p.is_dir())
    train = next((s for s in splits if "train" in s), splits[0])
    val = "val" if "val" in splits else train
    names = "\n".join(f"  {c - 1}: {VOC_CLASSES[c]}" for c in range(1, NUM_CLASSES))
    return (f"# written by pseudolabel export --format yolo; splits here: {', '.join(splits)}\n"
            f"path: {out.resolve()}\ntrain: images/{train}\nval: images/{val}\nnames:\n{names}\n")


def export_yolo(store: LabelStore, out: str | os.PathLike, *, split: str, progress: bool = True) -> YoloExport:
    out = Path(out)
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for old in [*labels.glob("*.txt"), *(p for p in images.iterdir() if p.is_symlink())]:
        old.unlink()                                # a previous export's files: failed images now go
    empty, dropped, lines_written = [], 0, 0
    bar = Progress(len(store), f"export {store.stage} (yolo)", enabled=progress)
    for image_id in store.ids:
        s = store.read(image_id, masks=True)
        photo = Path(s.image_path)
        lines, empty_k, small = yolo_lines(s.masks, s.classes)
        empty += [[image_id, k] for k in empty_k]
        dropped += small
        lines_written += len(lines)
        target = labels / f"{photo.stem}.txt"
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        os.replace(tmp, target)
        link = images / photo.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(photo.resolve())
        bar.update()
    bar.close()
    (out / "data.yaml").write_text(_data_yaml(out))
    (out / f"pseudolabel_{split}.json").write_text(json.dumps({
        "store": str(store.path), "stage": store.stage, "cache_key": store.meta.get("cache_key"),
        "images": len(store), "lines": lines_written, "empty_objects": empty, "dropped_parts": dropped,
        "failed_images": dict(store.failed)}, indent=2) + "\n")
    return YoloExport(out, len(store), lines_written, len(empty), dropped, len(store.failed))
