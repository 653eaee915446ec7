"""Box AP of a detector: PASCAL VOC's AP at IoU 0.5 (all-point interpolated precision, VOC 2010+),
per class over a split's images, detections matched greedily by score, a detection on a difficult
box neither true nor false; mAP = mean over classes with at least one non-difficult box."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..catalog import Dataset, load_image
from ..core.classes import NUM_CLASSES, VOC_CLASSES
from ..core.progress import Progress
from ..core.records import ImageRecord


def image_tensor(record: ImageRecord, device, flip: bool = False):
    """The record's photo as a (3, H, W) float tensor in [0, 1] on ``device`` (mirrored when
    ``flip``), the input of a torchvision detector."""
    import torch
    image = load_image(record)
    if flip:
        image = image[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float() / 255.0

def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC 2010+ all-point interpolation)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


def average_precision(detections: list[tuple[str, float, np.ndarray]],
                      ground_truth: dict[str, tuple[np.ndarray, np.ndarray]], iou: float = 0.5) -> float | None:
    """AP of one class. ``detections``: (image id, score, box); ``ground_truth``: image id ->
    (boxes (G, 4), difficult (G,) bool). None when the class has no non-difficult box."""
    positives = sum(int((~d).sum()) for _, d in ground_truth.values())
    if positives == 0:
        return None
    used = {k: np.zeros(len(b), bool) for k, (b, _) in ground_truth.items()}
    tp, fp = [], []
    for image_id, _, box in sorted(detections, key=lambda d: -d[1]):
        boxes, difficult = ground_truth.get(image_id, (np.zeros((0, 4)), np.zeros(0, bool)))
        overlaps = _iou(np.asarray(box, float), boxes.astype(float)) if len(boxes) else np.zeros(0)
        j = int(np.argmax(overlaps)) if len(overlaps) else -1
        if j >= 0 and overlaps[j] >= iou:
            if difficult[j]:
                continue                                     # neither true nor false
            if not used[image_id][j]:
                used[image_id][j] = True
                tp.append(1)
                fp.append(0)
                continue
        tp.append(0)
        fp.append(1)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, 1e-9)
    return voc_ap(recall, precision) if len(tp) else 0.0


def evaluate_detector(model, dataset: Dataset, split: str, *, device: str = "cpu",
                      progress: bool = True) -> dict[str, Any]:
    """Box AP@0.5 per VOC class and mAP of ``model`` (a 21-class torchvision detector)."""
    import torch
    with torch.no_grad():
        return _evaluate_detector(model, dataset, split, device=device, progress=progress)


def _evaluate_detector(model, dataset: Dataset, split: str, *, device: str, progress: bool) -> dict[str, Any]:
    records = [r for r in dataset.records(split) if isinstance(r, ImageRecord)]
    model.eval()
    dets: dict[int, list] = {c: [] for c in range(1, NUM_CLASSES)}
    gts: dict[int, dict] = {c: {} for c in range(1, NUM_CLASSES)}
    bar = Progress(len(records), f"evaluate detector [{split}]", enabled=progress)
    for r in records:
        out = model([image_tensor(r, device)])[0]
        for box, label, score in zip(out["boxes"].cpu().numpy(), out["labels"].cpu().numpy(),
                                     out["scores"].cpu().numpy()):
            dets[int(label)].append((r.image_id, float(score), box))
        boxes, classes, difficult = r.boxes(), r.classes(), r.flags("difficult")
        for c in np.unique(classes):
            sel = classes == c
            gts[int(c)][r.image_id] = (boxes[sel], difficult[sel])
        bar.update()
    bar.close()
    per_class = {VOC_CLASSES[c]: average_precision(dets[c], gts[c]) for c in range(1, NUM_CLASSES)}
    present = [v for v in per_class.values() if v is not None]
    return {"map": float(np.mean(present)) if present else float("nan"), "per_class": per_class,
            "images": len(records), "split": split}
