"""The ``bbam`` stage: bounding-box attribution maps from a Faster R-CNN, turned into labels.

Per image: 1. the detector's clean features; positives per box  2. one attribution mask per
box with positives, all boxes of the image optimised as one batch (``algorithms/bbam.py``)
3. maps to the original frame; tight / loose masks (rank seeds, smoothing, dense CRF,
fallbacks)  4. the semantic label with ignore bands, cross-class conflicts and nested boxes.

No object silently vanishes: every object has a ``status_*`` flag saying how its tight mask was
made, ``num_positives`` (0 = no attribution map: its ``maps`` plane is all zero) and
``final_loss`` (NaN without a map).

The detector is loaded once per worker process. Its device is not part of the configuration
(the same configuration on a CPU and a GPU is the same run): ``PSEUDOLABEL_DEVICE`` (``cpu``
by default; ``--gpus`` sets it per worker process) picks it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..algorithms.bbam_params import BBAMParams
from ..records import ImageRecord
from ..results import StageResult
from .base import Stage

TOY = "toy"


@dataclass(frozen=True)
class BBAMConfig(BBAMParams):
    """All BBAM constants (see :class:`BBAMParams`) plus the detector."""

    weights: str = ""
    """Detector checkpoint: a 21-class VOC Faster R-CNN ResNet-50-FPN state dict, or torchvision's
    COCO weights (mapped to VOC); empty = fasterrcnn_resnet50_fpn_coco-258fb6c6.pth in the torch
    hub cache; 'toy' = the planted red-object detector (tests, trying the stage)."""


_DETECTORS: dict[tuple, object] = {}


def device() -> str:
    return os.environ.get("PSEUDOLABEL_DEVICE", "cpu")


def get_detector(config: BBAMConfig):
    """The detector of ``config.weights`` on this process's device, loaded once per process."""
    key = (config.weights, config.min_size, config.max_size, device())
    if key not in _DETECTORS:
        from ..detector import Detector
        if config.weights == TOY:
            from ..toydetector import toy_detector
            _DETECTORS[key] = toy_detector(device(), size=config.min_size)
        else:
            _DETECTORS[key] = Detector.from_checkpoint(config.weights or None, device=device(),
                                                       min_size=config.min_size, max_size=config.max_size)
    return _DETECTORS[key]


class _Clock:
    """Seconds between calls, per named part (synchronising the GPU first)."""

    def __init__(self, device, timings):
        import torch
        self.device, self.timings = torch.device(device), timings
        self.last = time.perf_counter()

    def __call__(self, part: str) -> None:
        if self.timings is None:
            return
        if self.device.type == "cuda":
            import torch
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[part] = self.timings.get(part, 0.0) + now - self.last
        self.last = now


def check_weights(config: BBAMConfig) -> None:
    """Fail before any work when the weights are missing (a ConfigError naming the file)."""
    get_detector(config)


def process_image(record: ImageRecord, image: np.ndarray, config: BBAMConfig, inputs=None) -> StageResult:
    return process_with(get_detector(config), record, image, config)


def process_batch(records: list[ImageRecord], images: list[np.ndarray], config: BBAMConfig,
                  inputs=None) -> list[StageResult]:
    """Several photos of the same size: their boxes share the optimisation batches."""
    return process_many(get_detector(config), records, images, config)


def process_with(det, record: ImageRecord, image: np.ndarray, config: BBAMParams,
                 timings: dict[str, float] | None = None) -> StageResult:
    """:func:`process_image` with a given detector (``bench/bbam.py`` passes its own);
    ``timings``, when given, receives the seconds of each part (positives, optimise, masks)."""
    return process_many(det, [record], [image], config, timings)[0]


def process_many(det, records: list[ImageRecord], images: list[np.ndarray], config: BBAMParams,
                 timings: dict[str, float] | None = None) -> list[StageResult]:
    """The per-image pipeline for photos of one size, their masks optimised in shared batches."""
    import torch

    from ..algorithms.bbam import (MASK_STATUSES, bbam_label, map_to_original, maps_to_masks, mask_stride,
                                   optimise_masks, select_positives)
    from ..algorithms.densecrf import dense_crf
    clock = _Clock(det.device, timings)
    # 1. clean features, positives per box (input frame)
    prepared = []
    for record, image in zip(records, images):
        torch.manual_seed(config.seed)
        boxes = record.boxes()
        x, scale = det.prepare(image)
        size = (round(image.shape[0] * scale), round(image.shape[1] * scale))
        boxes_in = boxes.astype(np.float32) * scale
        with torch.no_grad():
            feats = det.features(x[None])
        positives = [select_positives(det, feats, b, int(c), size, config, np.random.default_rng(config.seed + k))
                     for k, (b, c) in enumerate(zip(boxes_in, record.classes()))]
        del feats
        prepared.append((boxes_in, positives, scale, size, x))
    clock("positives")
    # 2. attribution masks of every box with positives, batched across the photos
    items = [(i, k) for i, (_, positives, *_) in enumerate(prepared) for k in range(len(positives))
             if len(positives[k])]
    masks, losses = optimise_masks(
        det, list(images), np.array([prepared[i][0][k] for i, k in items], np.float32).reshape(-1, 4),
        [int(records[i].classes()[k]) for i, k in items], [prepared[i][1][k] for i, k in items], config,
        owners=[i for i, _ in items], prepared=[p[4] for p in prepared]) if items else ([], [])
    clock("optimise")
    # 3. per photo: maps in the original frame -> tight / loose masks -> the semantic label
    results = []
    for i, (record, image) in enumerate(zip(records, images)):
        boxes_in, positives, scale, size, _ = prepared[i]
        boxes, classes = record.boxes(), record.classes()
        K, (H, W) = len(boxes), image.shape[:2]
        maps = np.zeros((K, H, W), np.float32)
        final_loss = np.full(K, np.nan, np.float32)
        for (j, k), mask, loss in zip(items, masks, losses):
            if j == i:
                maps[k] = map_to_original(mask, size, (H, W))
                final_loss[k] = loss
        strides = np.array([mask_stride(b, size, config) / scale for b in boxes_in], np.float32)
        has_map = np.array([len(p) > 0 for p in positives])
        tight, loose, status = maps_to_masks(image, maps, boxes, has_map, strides, config, dense_crf)
        label = bbam_label(tight, loose, boxes, classes)
        objects = {f"status_{s}": np.array([x == s for x in status], np.uint8) for s in MASK_STATUSES}
        objects["num_positives"] = np.array([len(p) for p in positives], np.int32)
        objects["positive_iou_level"] = np.array([p.level for p in positives], np.float32)
        objects["final_loss"] = final_loss
        counts = {f"status_{s}": int(v.sum()) for s, v in zip(MASK_STATUSES, objects.values()) if v.any()}
        results.append(StageResult(label=label, masks=tight, maps=maps, planes={"loose_masks": loose},
                                   objects=objects, counts=counts))
    clock("masks")
    return results


def recompose(sample, masks: np.ndarray, planes: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The label this stage composes when other masks replace the tight masks of ``sample`` (one
    of its stored samples): loose-only pixels stay 255 (the loose masks are ``planes``'
    ``loose_masks`` when given, else the stored ones, each widened to contain its tight mask),
    cross-class conflicts 255 unless nested."""
    from ..algorithms.bbam import bbam_label
    loose = (planes or {}).get("loose_masks", sample.planes.get("loose_masks", masks)).astype(bool) | masks
    return bbam_label(masks, loose, sample.boxes, sample.classes)


STAGE = Stage(
    name="bbam",
    help="BBAM attribution maps from a torchvision Faster R-CNN (mask optimisation per box, all "
         "boxes of an image as one batch), turned into tight / loose masks and a label with "
         "ignore bands (--reference: the published one-box-at-a-time loop).",
    config_class=BBAMConfig,
    process_image=process_image,
    check=check_weights,
    process_batch=process_batch,
    batch_images=lambda config: config.batch_images,
    recompose=recompose,
)
