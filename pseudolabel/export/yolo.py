"""YOLO segmentation labels (the Ultralytics layout) from a label store.

Writes, for the split::

    OUT/images/<split>/<id><suffix>  a symbolic link to each labelled photo
    OUT/labels/<split>/<id>.txt      one line per polygon: class index, then x1 y1 x2 y2 ...
    OUT/data.yaml                   path, train/val folders, class names
    OUT/pseudolabel_<split>.json    where it came from and what could not be written

Class index is the class id minus one (VOC: 0 aeroplane .. 19 tvmonitor), or for a YOLO dataset its
own index, so that YOLO labels in give YOLO-seg labels out with the same classes. Coordinates are
normalised by the image's width and height, at pixel centres ((x + 0.5) / W), so that filling a
polygon back at pixel resolution gives the pixels it was traced from.

Masks become polygons with OpenCV's outer contours: a **hole** in a mask is filled (a polygon has
no holes), and a mask of **several parts** is written as one line per part (each part an
instance of the object's class; Ultralytics' own converter instead joins the parts into one
polygon by thin bridges). Parts under 3 contour points (a pixel or a line of pixels) cannot be a
polygon and are dropped. An object with an empty mask gets no line, so in YOLO's eyes its pixels
are background: those objects, the dropped parts and the images that failed in the run (not
linked, no label file) are listed in ``pseudolabel_<split>.json``. A photo whose EXIF orientation
its labels do not follow (the annotation fitted the stored pixels) is written as a PNG of its
stored pixels instead of linked, since Ultralytics turns tagged photos upright.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.progress import Progress
from ..store.reader import LabelStore
from ..catalog.pixels import load_photo
from .manifest import save_png, tag_ignored, write_text

MIN_POINTS = 3


def polygons(mask: np.ndarray) -> tuple[list[np.ndarray], int]:
    """``(parts, dropped)``: each outer contour of ``mask`` with at least 3 points as an (N, 2)
    float array of pixel-centre coordinates (x, y), and how many parts were too small."""
    import cv2

    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2).astype(np.float64) + 0.5 for c in contours if len(c) >= MIN_POINTS]
    return parts, len(contours) - len(parts)


def yolo_lines(masks: np.ndarray, classes: np.ndarray, index=lambda c: c - 1) -> tuple[list[str], list[int], int]:
    """``(lines, empty objects, dropped parts)`` of one image's per-object masks; ``index``: the
    YOLO class index of class c (c - 1)."""
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
            lines.append(f"{index(int(c))} " + " ".join(f"{v:.6f}" for v in xy.ravel()))
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


def class_index(store: LabelStore):
    """The YOLO index of each class: a YOLO dataset's own indices, else class - 1."""
    labels = store.labels
    if store.meta.get("dataset_kind") == "yolo" and labels.source_ids:
        return labels.source_id
    return lambda c: c - 1


def _data_yaml(out: Path, store: LabelStore) -> str:
    splits = sorted(p.name for p in (out / "images").iterdir() if p.is_dir())
    train = next((s for s in splits if "train" in s), splits[0])
    val = "val" if "val" in splits else train
    index, labels = class_index(store), store.labels
    names = "\n".join(f"  {index(c)}: {labels.names[c]}" for c in range(1, labels.num_classes))
    return (f"# written by pseudolabel export --format yolo; splits here: {', '.join(splits)}\n"
            f"path: {out.resolve()}\ntrain: images/{train}\nval: images/{val}\nnames:\n{names}\n")


def export_yolo(store: LabelStore, out: str | os.PathLike, written, *, split: str,
                progress: bool = True) -> YoloExport:
    """Labels and photo links of ``store`` under ``out`` (the files ``written`` claims: see
    ``export.manifest``); each image is named by its id (``labels/<split>/<id>.txt`` beside
    ``images/<split>/<id><photo suffix>``), which is how Ultralytics pairs them."""
    out = Path(out)
    photos = {i: Path(str(store.image_attr(i, "image_path", ""))) for i in store.ids}
    ignored = set(tag_ignored(store))
    names = {i: f"images/{split}/{i}{'.png' if i in ignored else photos[i].suffix}" for i in store.ids}
    written.claim([f"labels/{split}/{i}.txt" for i in store.ids] + list(names.values())
                  + ["data.yaml", f"pseudolabel_{split}.json"])
    written.begin()
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    empty, dropped, lines_written = [], 0, 0
    bar = Progress(len(store), f"export {store.stage} (yolo)", enabled=progress)
    for image_id in store.ids:
        s = store.read(image_id, masks=True)
        lines, empty_k, small = yolo_lines(s.masks, s.classes, class_index(store))
        empty += [[image_id, k] for k in empty_k]
        dropped += small
        lines_written += len(lines)
        write_text(out / "labels" / split / f"{image_id}.txt", "".join(f"{line}\n" for line in lines))
        link = out / names[image_id]
        link.unlink(missing_ok=True)                  # ours (claimed): an earlier export's link
        if image_id in ignored:                       # labels in the stored frame: a copy without the tag
            save_png(load_photo(s.image_path, 1), link)
        else:
            link.symlink_to(Path(s.image_path).resolve())
        bar.update()
    bar.close()
    write_text(out / "data.yaml", _data_yaml(out, store))
    write_text(out / f"pseudolabel_{split}.json", json.dumps({
        "store": str(store.path), "stage": store.stage, "cache_key": store.meta.get("cache_key"),
        "images": len(store), "lines": lines_written, "empty_objects": empty, "dropped_parts": dropped,
        "failed_images": dict(store.failed), "exif_orientation_ignored": sorted(ignored)}, indent=2) + "\n")
    written.finish()
    return YoloExport(out, len(store), lines_written, len(empty), dropped, len(store.failed))
