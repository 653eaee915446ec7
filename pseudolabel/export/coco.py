"""COCO instance segmentation JSON from a label store, the format Detectron2, MMDetection and
``pycocotools`` read.

One file for the split:

* ``images``: the store's labelled images in split order, ``id`` 1..N, ``file_name`` the photo's
  file name, ``voc_id`` the dataset's image id, ``height``, ``width``;
* ``categories``: the 20 VOC classes in VOC order, ``id`` 1..20 (COCO-style: 0 is not a category);
* ``annotations``: one per object of every labelled image, in the store's object order, ``id``
  1..M: ``segmentation`` the object's own mask as uncompressed-to-compressed RLE
  (``pycocotools.mask.encode``, ``counts`` as text), ``area`` its pixel count, ``bbox`` the
  *annotated* box ``[x, y, w, h]`` (the box the mask was made from, not the mask's extent),
  ``iscrowd`` 0, and ``pseudolabel``: the object's index in the image, ``difficult``,
  ``truncated``, ``empty`` and the stage's per-object record (``status`` / ``loose_status``:
  the flag set, ``guards``: the GrabCut guards that fired, and every other per-object value);
* ``pseudolabel``: the store it came from, its stage, configuration and cache key, and the
  images that failed in the run (id -> reason), which are *not* in ``images``: an image that
  failed has no labels, and listing it would teach a trainer that its objects are background.

Masks are each object's own mask as the stage made it: they may overlap, and the semantic
label's 255 (ignore) does not apply to them. An object whose mask is empty is still written, with
an empty RLE, ``area`` 0 and ``pseudolabel.empty`` true, so that counts match the annotation;
trainers that drop zero-area annotations (Detectron2 and MMDetection do) drop it there, visibly.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.classes import VOC, LabelSpace
from ..core.progress import Progress
from ..store.reader import LabelStore
from .manifest import write_text


def categories(labels: LabelSpace = VOC) -> list[dict[str, Any]]:
    """The store's classes as COCO categories: the dataset's own ids (a COCO input's category ids),
    else 1..C."""
    return [{"id": labels.source_id(c), "name": labels.names[c], "supercategory": "voc" if labels.is_voc else ""}
            for c in range(1, labels.num_classes)]


def encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of an (H, W) bool mask, ``counts`` as text (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def object_record(objects: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """The stage's per-object arrays for object ``k``, readable: one-hot ``status_*`` and
    ``loose_status_*`` flags become ``status`` and ``loose_status`` names, ``guard_*`` flags a
    ``guards`` list, everything else a number."""
    out: dict[str, Any] = {}
    guards = []
    for name in sorted(objects):
        value = np.asarray(objects[name])[k]
        for prefix, key in (("loose_status_", "loose_status"), ("status_", "status")):
            if name.startswith(prefix):
                if value:
                    out[key] = name[len(prefix):]
                break
        else:
            if name.startswith("guard_"):
                if value:
                    guards.append(name[len("guard_"):])
            else:
                out[name] = value.item() if np.isfinite(value) else None
    if any(n.startswith("guard_") for n in objects):
        out["guards"] = guards
    return out


def sample_annotations(s, image: int, first_id: int, labels: LabelSpace = VOC) -> list[dict[str, Any]]:
    """The annotations of one :class:`~pseudolabel.store.reader.Sample` (read with masks) as
    image ``image``, ids from ``first_id`` (the dataset's own annotation ids where the store has
    them)."""
    out = []
    for k in range(len(s.classes)):
        x0, y0, x1, y1 = (int(v) for v in s.boxes[k])
        area = int(np.count_nonzero(s.masks[k]))
        out.append({
            "id": int(s.source_ids[k]) if s.source_ids is not None else first_id + k, "image_id": image,
            "category_id": labels.source_id(int(s.classes[k])),
            "segmentation": encode(s.masks[k]), "area": area, "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0,
            "pseudolabel": {"object": k, "difficult": bool(s.difficult[k]), "truncated": bool(s.truncated[k]),
                            "empty": area == 0, **object_record(s.objects, k)},
        })
    return out


@dataclass
class CocoExport:
    path: Path
    images: int
    annotations: int
    empty: int
    failed: int


def coco_dict(store: LabelStore, *, progress: bool = True) -> dict[str, Any]:
    """The COCO dictionary of a store (see the module docstring)."""
    images, annotations = [], []
    labels = store.labels
    bar = Progress(len(store), f"export {store.stage} (coco)", enabled=progress)
    for n, image_id in enumerate(store.ids, start=1):
        s = store.read(image_id, masks=True)
        h, w = s.label.shape
        number = int(s.attrs.get("source_id", n))
        images.append({"id": number, "file_name": Path(s.image_path).name, "voc_id": image_id, "height": int(h),
                       "width": int(w)})
        annotations += sample_annotations(s, number, len(annotations) + 1, labels)
        bar.update()
    bar.close()
    meta = store.meta
    return {
        "info": {"description": f"pseudo labels of stage {store.stage} ({meta.get('dataset')}, {meta.get('split')})",
                 "version": str(meta.get("package_version", "")), "date_created": str(meta.get("completed", ""))},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(labels),
        "pseudolabel": _provenance(store, annotations),
    }


def _provenance(store: LabelStore, annotations: list[dict]) -> dict[str, Any]:
    meta = store.meta
    return {"store": str(store.path), "stage": store.stage, "split": meta.get("split"),
            "dataset": meta.get("dataset"), "cache_key": meta.get("cache_key"), "config": store.config,
            "failed_images": dict(store.failed), "empty_annotations": sum(a["area"] == 0 for a in annotations)}


def round_trip(store: LabelStore, source: dict[str, Any], *, progress: bool = True) -> dict[str, Any]:
    """The COCO file a store was made from, each annotation's ``segmentation`` (and ``area``)
    replaced by its object's pseudo mask, everything else as it was: image ids, category ids,
    annotation ids and their order, crowd annotations, extra fields. Images whose run failed are
    left out with their annotations (listed under ``pseudolabel``)."""
    masks: dict[int, dict[str, Any]] = {}
    bar = Progress(len(store), f"export {store.stage} (coco, into its source file)", enabled=progress)
    for image_id in store.ids:
        s = store.read(image_id, masks=True)
        number = int(s.attrs.get("source_id", -1))
        for a in sample_annotations(s, number, 0, store.labels):
            masks[a["id"]] = a
        bar.update()
    bar.close()
    done = {int(store.image_attr(i, "source_id", -1)) for i in store.ids}
    out = {k: v for k, v in source.items() if k not in ("images", "annotations")}
    out["images"] = [im for im in source["images"] if im.get("id") in done]
    out["annotations"] = []
    for ann in source.get("annotations", []):
        if ann.get("image_id") not in done:
            continue
        new = dict(ann)
        if not ann.get("iscrowd") and ann.get("id") in masks:
            mine = masks[ann["id"]]
            new.update(segmentation=mine["segmentation"], area=mine["area"], pseudolabel=mine["pseudolabel"])
        out["annotations"].append(new)
    out["pseudolabel"] = _provenance(store, [a for a in masks.values()])
    return out


def _source_file(store: LabelStore) -> dict[str, Any] | None:
    """The COCO file a store of a COCO dataset was made from, when it is still there and has its
    annotations' ids."""
    path = store.meta.get("dataset_annotations")
    if store.meta.get("dataset_kind") != "coco" or not path or not Path(path).is_file():
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("images"), list) else None


def export_coco(store: LabelStore, path: str | os.PathLike, written, *, progress: bool = True) -> CocoExport:
    """Write ``path`` (atomically; a file ``written`` claims, see ``export.manifest``) and return
    what it holds."""
    path = Path(path)
    written.claim([path.name])
    source = _source_file(store)
    data = round_trip(store, source, progress=progress) if source is not None else coco_dict(store, progress=progress)
    written.begin()
    write_text(path, json.dumps(data, separators=(",", ":")))
    written.finish()
    return CocoExport(path, len(data["images"]), len(data["annotations"]),
                      data["pseudolabel"]["empty_annotations"], len(store.failed))
