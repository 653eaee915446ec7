"""Exports: a finished label store to the files trainers read. Each format is a module with one
``export_*(store, out, written, ...)`` function that reads a :class:`~pseudolabel.store.LabelStore`
and writes files (exports never import a stage):

* ``png``: palette PNGs laid out like VOC (``SegmentationClass``, ``SegmentationObject``);
* ``coco``: one COCO instance-segmentation JSON for the split, RLE masks (``pycocotools``);
* ``yolo``: Ultralytics YOLO segmentation polygons, one ``.txt`` per image, and ``data.yaml``.

Every export writes only files it names first (``manifest.Written``): a file already in the
folder that no pseudolabel export wrote stops it before anything is written, a re-export removes
only the files of the manifest it replaces, and a folder inside the data root is refused.
"""
from __future__ import annotations

import os
from pathlib import Path

from .manifest import Written, manifest_path, read_manifest, refuse_inside, tag_ignored
from .png import export_png, save_palette_png

FORMATS = ("png", "coco", "yolo")


def identity(store, fmt: str, instances: bool = True) -> dict:
    """What an export is of: the store (path, cache key, completion time) and its options."""
    return {"store": str(Path(store.path).resolve()), "cache_key": store.meta.get("cache_key", ""),
            "completed": store.meta.get("completed", ""), "instances": instances, "format": fmt}


def up_to_date(store, out: str | os.PathLike, fmt: str, *, split: str, instances: bool = True) -> bool:
    """Whether ``out`` holds the export of this very store with these options."""
    previous = read_manifest(manifest_path(Path(out), fmt, split))
    return previous is not None and {k: previous.get(k) for k in identity(store, fmt, instances)} == \
        identity(store, fmt, instances)


def export_store(store, out: str | os.PathLike, fmt: str, *, split: str, instances: bool = True,
                 progress: bool = True) -> tuple[int, str]:
    """Write ``store`` under ``out`` in format ``fmt``; returns the number of images written and
    a line saying what was written where."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    out = Path(out)
    refuse_inside(out, store.meta.get("dataset_root"))
    written = Written(out, fmt, split, identity(store, fmt, instances))
    failed = f"; {len(store.failed)} failed image(s) left out" if store.failed else ""
    ignored = tag_ignored(store) if fmt != "yolo" else []
    if ignored:
        failed += (f"; {len(ignored)} photo(s) carry an EXIF orientation their labels do not follow (their "
                   f"annotation fits the stored pixels; a loader that applies the tag turns them away from their "
                   f"labels): {', '.join(ignored[:5])}{', ...' if len(ignored) > 5 else ''}")
    if fmt == "png":
        n = export_png(store, out, written, instances=instances, progress=progress)
        return n, f"exported {n} images to {out}{failed}"
    if fmt == "coco":
        from .coco import export_coco
        r = export_coco(store, out / f"instances_{split}.json", written, progress=progress)
        return r.images, (f"exported {r.images} images, {r.annotations} annotations ({r.empty} with an empty "
                          f"mask, area 0) to {r.path}{failed}")
    from .yolo import export_yolo
    r = export_yolo(store, out, written, split=split, progress=progress)
    return r.images, (f"exported {r.images} images, {r.lines} polygons to {out / 'labels' / split} "
                      f"({r.empty} empty object(s) and {r.dropped_parts} part(s) under 3 points not "
                      f"written; see {out / f'pseudolabel_{split}.json'}){failed}")


__all__ = ["FORMATS", "Written", "export_png", "export_store", "identity", "save_palette_png", "up_to_date"]
