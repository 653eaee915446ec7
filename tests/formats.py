"""Copies of a VOC-layout dataset in the other layouts pseudolabel reads, made at test time (nothing
committed): a COCO instances JSON (``coco_copy``) and a YOLO dataset (``yolo_copy``), with the same
photos (linked), boxes and masks. For ``coco128-voc-dev`` the COCO copy takes the photos' real COCO
image and category ids from its ``provenance.json``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.catalog import open_dataset
from pseudolabel.core.classes import VOC_CLASSES


def _masks(record) -> list[np.ndarray]:
    inst = np.asarray(Image.open(record.object_gt_path))
    return [inst == k + 1 for k in range(len(record.objects))]


def _provenance(voc_root: Path) -> dict:
    path = Path(voc_root) / "provenance.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {"images": {im["id"]: im for im in data["images"]},
            "categories": {name: int(cid) for cid, name in data["coco_to_voc"].items()}}


def coco_copy(voc_root: Path, out: Path, ids: list[str], *, split: str = "train") -> Path:
    """``out/annotations/instances_<split>.json`` and ``out/<split>/<id>.jpg`` (links): COCO's own
    layout. Categories are the VOC classes with their COCO ids (real ones for coco128-voc-dev, VOC's
    own ids shifted by 100 otherwise, so that a mapping is needed); each object's annotation has its
    box and its instance mask as RLE; image ids are COCO's (or 1000 + index)."""
    from pycocotools import mask as mask_utils
    prov = _provenance(voc_root)
    cat_id = prov.get("categories") or {name: c + 100 for c, name in enumerate(VOC_CLASSES) if c}
    records = {r.image_id: r for r in open_dataset(voc_root).records("train") if r.image_id in ids}
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for n, image_id in enumerate(ids):
        r = records[image_id]
        number = prov.get("images", {}).get(image_id, {}).get("coco_image_id", 1000 + n)
        os.symlink(Path(r.image_path).resolve(), out / split / f"{image_id}.jpg")
        images.append({"id": number, "file_name": f"{image_id}.jpg", "width": r.width, "height": r.height})
        for k, (o, mask) in enumerate(zip(r.objects, _masks(r))):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            x0, y0, x1, y1 = o.box
            annotations.append({"id": 50000 + 100 * n + k, "image_id": number,
                                "category_id": cat_id[VOC_CLASSES[o.class_id]], "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": int(mask.sum()), "iscrowd": 0,
                                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    categories = [{"id": cid, "name": name, "supercategory": ""} for name, cid in sorted(cat_id.items(),
                                                                                       key=lambda kv: kv[1])]
    path = out / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return out


def yolo_copy(voc_root: Path, out: Path, ids: list[str], *, split: str = "train", polygons: bool = False) -> Path:
    """``out/data.yaml`` (the 20 VOC names, VOC's order), ``out/images/<split>/<id>.jpg`` (links) and
    ``out/labels/<split>/<id>.txt``: each object's box (``polygons``: the outline of its mask)."""
    import cv2
    records = {r.image_id: r for r in open_dataset(voc_root).records("train") if r.image_id in ids}
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    (out / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n"
                                   + "".join(f"  {c - 1}: {VOC_CLASSES[c]}\n" for c in range(1, 21)))
    for image_id in ids:
        r = records[image_id]
        os.symlink(Path(r.image_path).resolve(), out / "images" / split / f"{image_id}.jpg")
        lines = []
        for o, mask in zip(r.objects, _masks(r) if polygons else [None] * len(r.objects)):
            if polygons:
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                xy = (max(contours, key=len).reshape(-1, 2) + 0.5) / (r.width, r.height)
                lines.append(f"{o.class_id - 1} " + " ".join(f"{v:.6f}" for v in xy.ravel()))
            else:
                x0, y0, x1, y1 = o.box
                lines.append(f"{o.class_id - 1} {(x0 + x1) / 2 / r.width:.6f} {(y0 + y1) / 2 / r.height:.6f} "
                             f"{(x1 - x0) / r.width:.6f} {(y1 - y0) / r.height:.6f}")
        (out / "labels" / split / f"{image_id}.txt").write_text("".join(f"{line}\n" for line in lines))
    return out
