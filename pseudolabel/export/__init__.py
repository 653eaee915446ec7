"""Exports: a finished label store to the files trainers read. Each format is a module with one
``export_*(store, out, ...)`` function that reads a :class:`~pseudolabel.store.LabelStore` and
writes files (exports never import a stage):

* ``png``: palette PNGs laid out like VOC (``SegmentationClass``, ``SegmentationObject``);
* ``coco``: one COCO instance-segmentation JSON for the split, RLE masks (``pycocotools``);
* ``yolo``: Ultralytics YOLO segmentation polygons, one ``.txt`` per image, and ``data.yaml``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .png import export_png, save_palette_png

FORMATS = ("png", "coco", "yolo")


def export_store(store, out: str | os.PathLike, fmt: str, *, split: str, instances: bool = True,
                 progress: bool = True) -> tuple[int, str]:
    """Write ``store`` under ``out`` in format ``fmt``; returns the number of images written and
    a line saying what was written where."""
    out = Path(out)
    failed = f"; {len(store.failed)} failed image(s) left out" if store.failed else ""
    if fmt == "png":
        n = export_png(store, out, instances=instances, progress=progress)
        return n, f"exported {n} images to {out}{failed}"
    if fmt == "coco":
        from .coco import export_coco
        r = export_coco(store, out / f"instances_{split}.json", progress=progress)
        return r.images, (f"exported {r.images} images, {r.annotations} annotations ({r.empty} with an empty "
                          f"mask, area 0) to {r.path}{failed}")
    if fmt == "yolo":
        from .yolo import export_yolo
        r = export_yolo(store, out, split=split, progress=progress)
        return r.images, (f"exported {r.images} images, {r.lines} polygons to {out / 'labels' / split} "
                          f"({r.empty} empty object(s) and {r.dropped_parts} part(s) under 3 points not "
                          f"written; see {out / f'pseudolabel_{split}.json'}){failed}")
    raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")


__all__ = ["FORMATS", "export_store", "export_png", "save_palette_png"]
