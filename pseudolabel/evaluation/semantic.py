"""Scoring pseudo labels against human masks: one additive confusion matrix over the split.

Rows are ground truth (21 classes; GT 255 pixels are excluded), columns are the pseudo label
(21 classes plus one column for 255, "not committed"). From that single matrix:

* ``miou``: mean over classes of TP / (TP + FP + FN), counting committed pixels only;
* ``miou_ignore_as_background``: the same with the 255 column folded into background, so
  a labeller cannot win by ignoring everything hard;
* ``coverage``: share of non-ignored GT pixels that the pseudo label commits to.

Classes with TP + FP + FN = 0 over the whole split (absent from both) are left out of the
mean and reported as null. All percentages are in percent (0..100), coverage in 0..1.

Whether one labelling beats another on a few dozen photos: :func:`paired_bootstrap` resamples
the images (the same draw for both) from their per-image matrices and gives an interval for the
difference in mIoU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..catalog import Dataset
from ..core.classes import IGNORE, NUM_CLASSES, VOC_CLASSES
from ..core.errors import DataError, StoreError
from ..core.progress import Progress
from ..core.records import BadRecord
from ..store.reader import LabelStore

def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C + 1) int64 counts (C = ``num_classes``, background included; VOC: 21 x 22): rows GT
    class 0..C-1, columns predicted class 0..C-1 and a last column for predicted 255 ("not
    committed"). GT 255 pixels are dropped. One ``bincount``."""
    n = num_classes
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: gt {gt.shape}, pred {pred.shape}")
    keep = gt != IGNORE
    gt, pred = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    if gt.size and gt.max() >= n:
        raise ValueError(f"ground truth holds values outside 0..{n - 1}/255: {np.unique(gt[gt >= n])}")
    pred = np.where(pred == IGNORE, n, pred)
    if pred.size and pred.max() > n:
        raise ValueError(f"pseudo label holds values outside 0..{n - 1}/255: {np.unique(pred[pred > n])}")
    counts = np.bincount(gt * (n + 1) + pred, minlength=n * (n + 1))
    return counts.reshape(n, n + 1)


def iou_per_class(square: np.ndarray) -> np.ndarray:
    """IoU per class from a (C, C) confusion matrix; NaN where TP + FP + FN = 0."""
    tp = np.diag(square).astype(np.float64)
    denom = square.sum(0) + square.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def scores(matrix: np.ndarray, names: tuple[str, ...] = VOC_CLASSES) -> dict[str, Any]:
    """All figures from one (C, C + 1) matrix; see the module docstring. ``names``: the classes."""
    n = matrix.shape[0]
    committed = matrix[:, :n]
    as_background = committed.copy()
    as_background[:, 0] += matrix[:, n]
    iou = iou_per_class(committed)
    iou_bg = iou_per_class(as_background)
    total = matrix.sum()
    pixel_acc = np.trace(committed) / committed.sum() if committed.sum() else float("nan")

    def pct(x: float) -> float | None:
        return None if np.isnan(x) else round(100.0 * float(x), 4)

    return {
        "miou": pct(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "miou_ignore_as_background": pct(np.nanmean(iou_bg)) if np.isfinite(iou_bg).any() else None,
        "coverage": round(float(committed.sum() / total), 6) if total else None,
        "pixel_accuracy": pct(pixel_acc),
        "per_class": {names[c]: pct(iou[c]) for c in range(n)},
        "per_class_ignore_as_background": {names[c]: pct(iou_bg[c]) for c in range(n)},
        "pixels": int(total),
    }


def miou_of(matrices: np.ndarray) -> np.ndarray:
    """``scores(m)["miou"]`` (percent) of each (C, C + 1) matrix in a ``(..., C, C + 1)`` stack,
    vectorised; NaN where no class is present."""
    matrices = np.asarray(matrices, dtype=np.float64)
    committed = matrices[..., :matrices.shape[-2]]
    tp = np.diagonal(committed, axis1=-2, axis2=-1)
    denom = committed.sum(-2) + committed.sum(-1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / denom, np.nan)
        present = np.isfinite(iou).sum(-1)
        return np.where(present > 0, 100.0 * np.nansum(iou, -1) / np.maximum(present, 1), np.nan)


def paired_bootstrap(before: np.ndarray, after: np.ndarray, *, resamples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """How sure is a change in mIoU? ``before``, ``after``: ``(N, C, C + 1)`` per-image confusion
    matrices of two labellings of the same N images (in the same order). The images are drawn
    with replacement ``resamples`` times, the same draw for both, and the change in mIoU over
    each draw gives a percentile interval. Returns ``difference`` (after - before over all
    images), ``low`` and ``high`` (the interval), ``level`` and ``resamples``. Deterministic for
    a ``seed``."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 3 or before.shape[2] != before.shape[1] + 1:
        raise ValueError(f"expected two (N, C, C + 1) stacks of per-image matrices of the same images, got "
                         f"{before.shape} and {after.shape}")
    if not len(before):
        raise ValueError("no images to resample")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"level must be in (0, 1) and resamples >= 1, got {level} and {resamples}")
    n = len(before)
    flat = np.concatenate([before.reshape(n, -1), after.reshape(n, -1)], axis=1).astype(np.float64)
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, 250):          # (250, N) draw counts x (N, 2 * 462) per chunk
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(250, resamples - start)).astype(np.float64)
        sums = (counts @ flat).reshape(len(counts), 2, *before.shape[1:])
        diffs.append(miou_of(sums[:, 1]) - miou_of(sums[:, 0]))
    diffs = np.concatenate(diffs)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(diffs, [tail, 100.0 - tail])
    difference = float(miou_of(after.sum(0)) - miou_of(before.sum(0)))
    return {"difference": round(difference, 4), "low": round(float(low), 4), "high": round(float(high), 4),
            "level": level, "resamples": resamples}


@dataclass
class Evaluation:
    matrix: np.ndarray
    images: int
    failed: int
    report: dict[str, Any]
    per_image: np.ndarray | None = None
    """``(N, C, C + 1)``: each image's matrix, in ``store.all_ids`` order (``per_image=True``)."""


def _check_store(store: LabelStore, dataset: Dataset, split: str, records: dict) -> None:
    """A StoreError unless ``store`` was made from this data, its classes and this split's images."""
    made_from = store.meta.get("dataset_root")
    if made_from is not None and made_from != str(dataset.root):
        raise StoreError(f"{store.path}: made from the data at {made_from}, not {dataset.root}; evaluate it "
                         f"with --data-root {made_from}, or make a store from this data (another --cache)")
    if store.labels != dataset.labels:
        raise StoreError(f"{store.path}: its classes ({', '.join(store.labels.names[1:4])}, ...) are not those of "
                         f"{dataset.root} ({', '.join(dataset.labels.names[1:4])}, ...)")
    missing = [i for i in store.all_ids if i not in records]
    if missing:
        raise StoreError(f"{store.path}: {len(missing)} image(s) of the store are not in split "
                         f"'{split}' of {dataset.root} (first: {missing[0]})")


def evaluate_store(store: LabelStore, dataset: Dataset, split: str, *, progress: bool = True,
                   log: Callable[[str], None] = lambda s: None, per_image: bool = False,
                   visit: Callable[[Any], None] | None = None) -> Evaluation:
    """Score a finished store against the split's ground truth (``Dataset.class_gt``). Images that
    the run recorded as failed count as uncommitted (all 255), so failures lower coverage instead of
    vanishing; that includes images whose annotation could not be read, whenever their ground truth
    can (those without are counted in ``unscored_images``). A store made from another data folder
    is refused. ``per_image``: also keep each image's matrix (for :func:`paired_bootstrap`).
    ``visit``: called with every labelled image's sample as it is read (one pass over the store for
    callers that need more of each sample than its label)."""
    records = {r.image_id: r for r in dataset.records(split)}
    _check_store(store, dataset, split, records)
    n = dataset.labels.num_classes
    matrix = np.zeros((n, n + 1), dtype=np.int64)
    kept = np.zeros((len(store.all_ids) if per_image else 0, n, n + 1), dtype=np.int64)
    unscored, images = [], []
    bar = Progress(len(store.all_ids), f"evaluate {store.stage} [{split}]", enabled=progress)
    for k, image_id in enumerate(store.all_ids):
        bar.update()
        record = records[image_id]
        if record.class_gt_path is None and (isinstance(record, BadRecord) or dataset.kind in ("coco", "yolo")):
            unscored.append(image_id)                 # no ground truth (an unreadable annotation, box labels only)
            continue
        image_matrix = _image_matrix(store, dataset, record, visit)
        matrix += image_matrix
        if per_image:
            kept[k] = image_matrix
        total = int(image_matrix.sum())
        miou = float(miou_of(image_matrix))
        images.append({"image_id": image_id, "miou": None if np.isnan(miou) else round(miou, 4),
                       "coverage": round(1.0 - image_matrix[:, n].sum() / total, 6) if total else None,
                       "failed": image_id in store.failed})
    bar.close()
    if store.all_ids and len(unscored) == len(store.all_ids) and dataset.kind in ("coco", "yolo"):
        raise DataError(dataset.annotation_file(split) or dataset.root, "no ground-truth masks to score against (COCO "
                        "'segmentation', YOLO-seg polygons or masks/<split>/<name>.png)")
    report = scores(matrix, dataset.labels.names)
    report.update(stage=store.stage, split=split, store=str(store.path), images=len(store.all_ids),
                  failed_images=len(store.failed), unscored_images=len(unscored), per_image=images,
                  ground_truth=ground_truth_note(dataset))
    return Evaluation(matrix=matrix, images=len(store.all_ids), failed=len(store.failed), report=report,
                      per_image=kept if per_image else None)


def ground_truth_note(dataset: Dataset) -> str:
    """What the scores are against, in words (COCO and YOLO masks mark no void band)."""
    if dataset.void_in_gt:
        return f"{dataset.kind} ground truth (its 255 void band excluded)"
    return (f"the {dataset.kind} file's own masks, which mark no void band: object edges count in full, so "
            f"scores read a few points lower than against VOC-style ground truth")


def _image_matrix(store: LabelStore, dataset: Dataset, record, visit) -> np.ndarray:
    """One image's confusion matrix: its ground truth against its pseudo label (all 255 when the
    image failed)."""
    gt = dataset.class_gt(record)
    if record.image_id in store.failed:
        pred = np.full(gt.shape, IGNORE, dtype=np.uint8)
    else:
        sample = store[record.image_id]
        if visit is not None:
            visit(sample)
        pred = sample.label
        if pred.shape != gt.shape:
            raise DataError(record.class_gt_path, f"ground truth is {gt.shape[1]}x{gt.shape[0]} but the pseudo "
                                                  f"label is {pred.shape[1]}x{pred.shape[0]}", record.image_id)
    return confusion_matrix(gt, pred, dataset.labels.num_classes)


def format_table(report: dict[str, Any]) -> str:
    """Human-readable per-class IoU table and summary."""
    def f(x):
        return "   -  " if x is None else f"{x:6.2f}"

    lines = [f"{'class':<14}{'IoU':>8}{'IoU(255=bg)':>13}"]
    for name in report["per_class"]:
        lines.append(f"{name:<14}{f(report['per_class'][name]):>8}{f(report['per_class_ignore_as_background'][name]):>13}")
    lines.append("-" * 35)
    lines.append(f"{'mIoU':<14}{f(report['miou']):>8}{f(report['miou_ignore_as_background']):>13}")
    if report.get("ground_truth"):
        lines.append(f"scored against {report['ground_truth']}")
    cov = report["coverage"]
    unscored = report.get("unscored_images", 0)
    failed = report["failed_images"] - unscored
    lines.append(f"coverage {100 * cov:.2f}% of {report['pixels']} non-ignored GT pixels; "
                 f"{report['images']} images ({failed} failed, counted as uncommitted"
                 + (f"; {unscored} failed without ground truth, not counted" if unscored else "") + ")"
                 if cov is not None else "no ground-truth pixels")
    worst = worst_images(report)
    if worst:
        lines.append(f"\n{len(worst)} worst images by mIoU (of the classes in each image):")
        lines += [f"  {r['image_id']:<24} mIoU {r['miou']:6.2f}  coverage {100 * r['coverage']:6.2f}%"
                  + ("  (failed)" if r["failed"] else "") for r in worst]
    return "\n".join(lines)


def worst_images(report: dict[str, Any], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` images of a report with the lowest mIoU (ties by id)."""
    scored = [r for r in report.get("per_image", ()) if r["miou"] is not None]
    return sorted(scored, key=lambda r: (r["miou"], r["image_id"]))[:n]
