"""Scoring segment proposals against ground-truth instances: average best overlap (ABO) and recall
at IoU 0.5 / 0.7, over instances whose box refinement touches and over all, by size and class."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..catalog import Dataset
from ..core.classes import IGNORE, NUM_CLASSES, VOC_CLASSES
from ..core.errors import StoreError
from ..core.progress import Progress
from ..core.records import BadRecord

MIN_INSTANCE_BOX = 32
"""Instances whose box is at least this many pixels wide and high are the ones refinement
touches (``RefineParams.min_box``): the main proposal figures are over them."""

AREA_BINS = (("small", 0, 32 ** 2), ("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, float("inf")))
"""COCO's instance sizes by pixel area (void excluded): under 32x32, up to 96x96, above."""


class Overlap(NamedTuple):
    """One ground-truth instance against a proposal pool."""
    best: float          # best IoU of any proposal (void pixels counted in neither)
    width: int           # the instance's tight box, pixels
    height: int
    area: int            # the instance's pixels
    instance: int        # its value in the instance map (1..254)


def best_overlaps(superpixels: np.ndarray, membership, instances: np.ndarray) -> list[Overlap]:
    """For each ground-truth instance (values 1..254 of ``instances``; 0 background, 255 void)
    the best IoU of any proposal, computed exactly from the sparse form with void pixels left
    out."""
    n = membership.shape[1]
    valid = instances.ravel() != IGNORE
    sp = superpixels.ravel()
    area = np.asarray(membership.astype(np.int64) @ np.bincount(sp[valid], minlength=n)).ravel()
    out = []
    for k in np.unique(instances):
        if k in (0, IGNORE):
            continue
        inst = instances == k
        ys, xs = np.nonzero(inst)
        inter = np.asarray(membership.astype(np.int64) @ np.bincount(sp[inst.ravel()], minlength=n)).ravel()
        union = area + inst.sum() - inter
        best = float((inter / np.maximum(union, 1)).max()) if len(inter) else 0.0
        out.append(Overlap(best, int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1),
                           int(len(xs)), int(k)))
    return out


def instance_classes(instances: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(256,) class of each instance value: the most frequent ground-truth class under its
    pixels (void and background left out; 0 when it has none). Read off the class map, not the
    annotation's object order, so it holds whatever order the instances are numbered in."""
    n = max(int(classes[classes != IGNORE].max(initial=0)) + 1, NUM_CLASSES)
    keep = (instances != IGNORE) & (classes != IGNORE) & (classes > 0)
    votes = np.bincount(instances[keep].astype(np.int64) * n + classes[keep],
                        minlength=256 * n).reshape(256, n)
    return votes.argmax(axis=1)


def _overlap_summary(rows: list[Overlap]) -> dict[str, Any]:
    best = np.array([r.best for r in rows], dtype=np.float64)
    if not len(best):
        return {"abo": None, "recall_50": None, "recall_70": None, "instances": 0}
    return {"abo": round(float(best.mean()), 4), "recall_50": round(float((best >= 0.5).mean()), 4),
            "recall_70": round(float((best >= 0.7).mean()), 4), "instances": int(len(best))}


def _breakdown(rows: list[Overlap], classes: list[str], names=VOC_CLASSES) -> dict[str, Any]:
    """The summary per instance size (:data:`AREA_BINS`) and per class (``classes[i]`` is the
    class of ``rows[i]``; classes without instances, and instances the class map gives no class,
    are left out)."""
    by_size = {name: _overlap_summary([r for r in rows if lo <= r.area < hi]) for name, lo, hi in AREA_BINS}
    per_class = {c: _overlap_summary([r for r, rc in zip(rows, classes) if rc == c])
                 for c in names[1:] if c in classes}
    return {"by_size": by_size, "per_class": per_class}


def evaluate_proposals(store, dataset: Dataset, split: str, *, progress: bool = True) -> dict[str, Any]:
    """ABO and recall of a proposal store against ``SegmentationObject`` instances: the main
    figures over instances whose box is at least 32x32 px (the ones refinement touches), the
    same over all instances under ``"all"``; proposals per image; seconds per image (as the
    stage measured them)."""
    records = {r.image_id: r for r in dataset.records(split)}
    rows, classes, proposals, seconds = [], [], [], []
    bar = Progress(len(store), f"evaluate-proposals [{split}]", enabled=progress)
    for image_id in store.ids:
        p = store[image_id]
        record = records.get(image_id)
        if record is None or isinstance(record, BadRecord):
            raise StoreError(f"{store.path}: image '{image_id}' is not a readable image of split '{split}'")
        instances = dataset.object_gt(record)
        found = best_overlaps(p.superpixels, p.membership, instances)
        of = instance_classes(instances, dataset.class_gt(record))
        rows += found
        classes += [dataset.labels.names[of[r.instance]] for r in found]
        proposals.append(p.membership.shape[0])
        seconds.append(float(p.attrs.get("seconds", float("nan"))))
        bar.update()
    bar.close()
    large = [i for i, r in enumerate(rows) if r.width >= MIN_INSTANCE_BOX and r.height >= MIN_INSTANCE_BOX]
    report = _overlap_summary([rows[i] for i in large])
    names = dataset.labels.names
    report.update(_breakdown([rows[i] for i in large], [classes[i] for i in large], names))
    report.update({
        "min_box": MIN_INSTANCE_BOX,
        "all": {**_overlap_summary(rows), **_breakdown(rows, classes, names)},
        "proposals_per_image": round(float(np.mean(proposals)), 1) if proposals else None,
        "seconds_per_image": round(float(np.nanmean(seconds)), 3) if seconds and not np.isnan(seconds).all() else None,
        "images": len(store.ids), "failed_images": len(store.failed), "store": str(store.path),
    })
    return report
