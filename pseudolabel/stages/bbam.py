"""The ``bbam`` stage: bounding-box attribution maps from a Faster R-CNN, turned into labels.

Per image: 1. the detector's clean features; positives per box  2. one attribution mask per
box with positives, all boxes of the image optimised as one batch (``algorithms/bbam.py``)
3. maps to the original frame; tight / loose masks as the published code makes them (rank
threshold, wide blur, dense CRF over the whole image, fallbacks; ``algorithms/bbam_masks.py``),
every box of the photo through the CRF in one batch, on the detector's device  4. the semantic
label as the published code composes it (ignore bands, cross-class conflicts, nested boxes).

No object silently vanishes: every object has a ``status_*`` flag saying how its tight mask was
made (``loose_status_*`` for its loose one; ``empty`` when a mask is empty), ``num_positives``
(0 = no attribution map: its ``maps`` plane is all zero) and ``final_loss`` (NaN without a map).

The detector is loaded once per process, on the run's device (``device.current()``, set by the
runner from ``--device``; ``--gpus`` runs one process per GPU). The device is not part of the
configuration: the same configuration on a CPU and a GPU is the same store.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from .. import device as devices
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


def get_detector(config: BBAMConfig):
    """The detector of ``config.weights`` on this process's device, loaded once per process. On a
    GPU, cuDNN picks its fastest kernels for each input size (VOC's photos come in a few sizes)."""
    device = devices.current()
    key = (config.weights, config.min_size, config.max_size, device)
    if key not in _DETECTORS:
        from ..detector import Detector
        if device.startswith("cuda"):
            import torch
            torch.backends.cudnn.benchmark = True
        if config.weights == TOY:
            from ..toydetector import toy_detector
            _DETECTORS[key] = toy_detector(device, size=config.min_size)
        else:
            _DETECTORS[key] = Detector.from_checkpoint(config.weights or None, device=device,
                                                       min_size=config.min_size, max_size=config.max_size)
    return _DETECTORS[key]


def box_rng(seed: int, image_id: str, k: int):
    """The jitter's generator of box ``k`` of image ``image_id``: its own for every box of the split."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode()), k])


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

    from ..algorithms.bbam import autocast, map_to_original, mask_stride, optimise_masks, select_positives
    from ..algorithms.bbam_masks import MASK_STATUSES, bbam_label, crop_masks, published_masks
    from ..algorithms.densecrf import dense_crf, dense_crf_batch
    clock = _Clock(det.device, timings)
    # 1. clean features, positives per box (input frame)
    prepared = []
    for record, image in zip(records, images):
        torch.manual_seed(config.seed)
        boxes = record.boxes()
        x, scale = det.prepare(image)
        size = (round(image.shape[0] * scale), round(image.shape[1] * scale))
        boxes_in = boxes.astype(np.float32) * scale
        with torch.no_grad(), autocast(det, config):      # the clean targets as the masked passes
            feats = det.features(x[None])
        positives = [select_positives(det, feats, b, int(c), size, config, box_rng(config.seed, record.image_id, k))
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
        maps = torch.zeros((K, H, W), device=det.device)
        final_loss = np.full(K, np.nan, np.float32)
        for (j, k), mask, loss in zip(items, masks, losses):
            if j == i:
                maps[k] = map_to_original(mask, size, (H, W), det.device)
                final_loss[k] = loss
        has_map = np.array([len(p) > 0 for p in positives])
        if config.mask_rule == "crop":
            strides = np.array([mask_stride(b, size, config) / scale for b in boxes_in], np.float32)
            tight, loose, status, loose_status = crop_masks(image, maps.cpu().numpy(), boxes, has_map, strides,
                                                            config, dense_crf)
        else:
            tight, loose, status, loose_status = published_masks(image, maps, boxes, has_map, config,
                                                                 dense_crf_batch)
        label = bbam_label(tight, loose, boxes, classes)
        objects = {f"status_{s}": np.array([x == s for x in status], np.uint8) for s in MASK_STATUSES}
        objects.update({f"loose_status_{s}": np.array([x == s for x in loose_status], np.uint8) for s in MASK_STATUSES})
        objects["num_positives"] = np.array([len(p) for p in positives], np.int32)
        objects["positive_iou_level"] = np.array([p.level for p in positives], np.float32)
        objects["final_loss"] = final_loss
        counts = {name: int(v.sum()) for name, v in objects.items() if name.startswith("status_") and v.any()}
        results.append(StageResult(label=label, masks=tight, maps=maps.cpu().numpy(), planes={"loose_masks": loose},
                                   objects=objects, counts=counts))
    clock("masks")
    return results


def recompose(sample, masks: np.ndarray, planes: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The label this stage composes when other tight masks replace those of ``sample`` (one of its
    stored samples), with the loose masks of ``planes`` (``loose_masks``) when given, else the stored
    ones: the published composition (``bbam_masks.bbam_label``)."""
    from ..algorithms.bbam_masks import bbam_label
    loose = (planes or {}).get("loose_masks", sample.planes.get("loose_masks", masks)).astype(bool)
    return bbam_label(masks.astype(bool), loose, sample.boxes, sample.classes)


STAGE = Stage(
    name="bbam",
    help="BBAM attribution maps from a torchvision Faster R-CNN (mask optimisation per box, all "
         "boxes of an image as one batch), turned into tight / loose masks and a label as the "
         "published code does (--reference: the published one-box-at-a-time loop).",
    config_class=BBAMConfig,
    process_image=process_image,
    check=check_weights,
    process_batch=process_batch,
    batch_images=lambda config: config.batch_images,
    recompose=recompose,
    uses_device=True,
    revision=2,
)
