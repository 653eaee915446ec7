"""Scoring per-object pseudo masks against ground-truth instances (VOC ``SegmentationObject``, SBD
``inst``).

Objects and instances share their box, so each object is paired with one instance, no matching
needed: in VOC, ``SegmentationObject`` numbers the objects in the annotation's order (object k is
value k + 1); in SBD, boxes are made from the non-empty instances in order (object k is the k-th
non-empty instance). A pair whose classes disagree is not scored and is counted
(``class_mismatches``; it means the annotation and the instance map do not follow that order).

* ``miou``: mean over ground-truth instances of the IoU with the paired object's mask, void (255)
  pixels counted in neither; an instance no object is paired with, and every instance of an image
  whose run failed, counts 0. Per class and per size (COCO's areas) too.
* ``ap``, ``ap50``, ``ap75``: COCO mask AP (``pycocotools`` COCOeval, ``segm``) of the pseudo
  masks as detections against the instances, each pseudo mask scored 1.0 (no stage gives a
  confidence), so the ranking is the annotation order and AP says how many masks clear each IoU
  threshold rather than how well they are ranked. COCOeval knows no void: there the instance is
  its whole mask and the void band around it counts against the pseudo mask, so AP is the stricter
  figure. Percentages 0..100.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np

from ..catalog import Dataset
from ..core.classes import IGNORE, VOC_CLASSES
from ..core.errors import DataError, StoreError
from .proposals import AREA_BINS, instance_classes
from ..export.coco import encode
from ..core.progress import Progress
from ..core.records import BadRecord
from ..store.reader import LabelStore


def _pct(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(100.0 * float(x), 4)


def _mean(values) -> float | None:
    return _pct(float(np.mean(values))) if len(values) else None


class _Tally:
    """What the figures are computed from, image by image: ``rows`` (class, area, IoU) of every
    ground-truth instance, the COCO-style ground truth and detections, and the counts."""

    def __init__(self):
        self.rows: list[tuple[int, int, float]] = []
        self.gt_anns: list[dict] = []
        self.dt_anns: list[dict] = []
        self.images: list[dict] = []
        self.mismatches = self.unpaired = self.unscored = 0

    def add(self, n: int, record, instances: np.ndarray, of: np.ndarray, sample, pairs_of: list) -> None:
        """Image ``n``: its ground-truth ``instances`` (classes ``of`` each value; ``pairs_of``: the
        instance value of each object) against the store's ``sample`` (None for a failed image:
        every instance scores 0)."""
        from pycocotools import mask as mask_utils
        h, w = instances.shape
        self.images.append({"id": n, "height": h, "width": w})
        valid = instances != IGNORE
        pairs = {}
        for k, value in enumerate(pairs_of):
            if value is None:
                continue
            if of[value] != record.objects[k].class_id:
                self.mismatches += 1
                continue
            pairs[value] = k
        for value in (int(v) for v in np.unique(instances) if v not in (0, IGNORE)):
            gt = instances == value
            area = int(gt.sum())
            rle = encode(gt)
            self.gt_anns.append({"id": len(self.gt_anns) + 1, "image_id": n, "category_id": int(of[value]),
                                 "segmentation": rle, "area": area, "iscrowd": 0,
                                 "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
            k = pairs.get(value)
            if k is None:
                self.unpaired += sample is not None
                iou = 0.0
            else:
                mask = sample.masks[k] if sample is not None else np.zeros_like(gt)
                union = ((mask | gt) & valid).sum()
                iou = float((mask & gt & valid).sum() / union) if union else 0.0
            self.rows.append((int(of[value]), area, iou))
        for k, mask in enumerate(sample.masks if sample is not None else ()):
            if mask.any():
                self.dt_anns.append({"id": len(self.dt_anns) + 1, "image_id": n, "category_id": int(sample.classes[k]),
                                     "segmentation": encode(mask), "score": 1.0, "area": int(mask.sum())})


def evaluate_instances(store: LabelStore, dataset: Dataset, split: str, *, progress: bool = True) -> dict[str, Any]:
    """The instance figures of a finished label store (see the module docstring)."""
    records = {r.image_id: r for r in dataset.records(split)}
    tally = _Tally()
    bar = Progress(len(store.all_ids), f"evaluate --instances {store.stage} [{split}]", enabled=progress)
    for n, image_id in enumerate(store.all_ids, start=1):
        record = records.get(image_id)
        if record is None:
            raise StoreError(f"{store.path}: image '{image_id}' is not in split '{split}' of {dataset.root}")
        bar.update()
        if isinstance(record, BadRecord) or not dataset.has_object_gt(record):
            tally.unscored += 1
            continue
        instances = dataset.object_gt(record)
        sample = None if image_id in store.failed else store.read(image_id, masks=True)
        if sample is not None and sample.masks.shape[1:] != instances.shape:
            raise DataError(record.object_gt_path, f"instances are {instances.shape[1]}x{instances.shape[0]} but "
                                                   f"the pseudo masks are {sample.masks.shape[2]}x"
                                                   f"{sample.masks.shape[1]}", image_id)
        tally.add(n, record, instances, instance_classes(instances, dataset.class_gt(record)), sample,
                  dataset.paired(record, instances))
    bar.close()
    gt_anns = [a for a in tally.gt_anns if a["category_id"] > 0]      # an instance the class map gives no class
    rows = tally.rows
    return {
        "stage": store.stage, "split": split, "store": str(store.path),
        "miou": _mean(np.array([r[2] for r in rows])), "instances": len(rows),
        "per_class": {dataset.labels.names[c]: _mean([r[2] for r in rows if r[0] == c])
                      for c in range(1, dataset.labels.num_classes) if any(r[0] == c for r in rows)},
        "by_size": {name: _mean([r[2] for r in rows if lo <= r[1] < hi]) for name, lo, hi in AREA_BINS},
        "class_mismatches": tally.mismatches, "unpaired_instances": tally.unpaired,
        "images": len(store.all_ids), "failed_images": len(store.failed), "unscored_images": tally.unscored,
        **coco_ap(tally.images, gt_anns, tally.dt_anns, dataset.labels.names),
    }


def coco_ap(images: list[dict], gt_anns: list[dict], dt_anns: list[dict], names=VOC_CLASSES) -> dict[str, float | None]:
    """COCO mask AP, AP50, AP75 (percent) of detections ``dt_anns`` against ``gt_anns``."""
    if not gt_anns:
        return {"ap": None, "ap50": None, "ap75": None}
    if not dt_anns:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        gt = COCO()
        gt.dataset = {"images": images, "annotations": gt_anns,
                      "categories": [{"id": c, "name": names[c]} for c in range(1, len(names))]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dt_anns), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"ap": _pct(max(ev.stats[0], 0.0)), "ap50": _pct(max(ev.stats[1], 0.0)), "ap75": _pct(max(ev.stats[2], 0.0))}


def format_instances(report: dict[str, Any]) -> str:
    def f(x):
        return "   -  " if x is None else f"{x:6.2f}"

    lines = [f"instances: mean IoU {f(report['miou'])} over {report['instances']} ground-truth instances; "
             f"mask AP {f(report['ap'])}, AP50 {f(report['ap50'])}, AP75 {f(report['ap75'])} (every mask scored 1.0)",
             "  by size: " + ", ".join(f"{k} {f(v).strip()}" for k, v in report["by_size"].items())]
    problems = []
    if report["unpaired_instances"]:
        problems.append(f"{report['unpaired_instances']} instance(s) without an object (IoU 0)")
    if report["class_mismatches"]:
        problems.append(f"{report['class_mismatches']} object(s) whose paired instance has another class (not scored)")
    if report["failed_images"]:
        problems.append(f"{report['failed_images']} failed image(s), their instances IoU 0")
    if problems:
        lines.append("  " + "; ".join(problems))
    return "\n".join(lines)
