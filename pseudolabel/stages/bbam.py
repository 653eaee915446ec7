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

The detector is loaded once per process and device (``models.cache``), on the device the runner
hands the stage (``StageContext``, from ``--device``; ``--gpus`` runs one process per GPU). The
device is not part of the configuration: the same configuration on a CPU and a GPU is the same
store.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from ..algorithms.bbam_params import BBAMParams
from ..core.records import ImageRecord
from ..core.results import StageResult
from .base import CPU, Stage, StageContext



@dataclass(frozen=True)
class BBAMConfig(BBAMParams):
    """All BBAM constants (see :class:`BBAMParams`) plus the detector."""

    weights: str = ""
    """Detector checkpoint: a 21-class VOC Faster R-CNN ResNet-50-FPN state dict, or torchvision's
    COCO weights (mapped to VOC); empty = fasterrcnn_resnet50_fpn_coco-258fb6c6.pth in the torch
    hub cache; 'toy' = the planted red-object detector (tests, trying the stage)."""


def get_detector(config: BBAMConfig, device: str):
    """The detector of ``config.weights`` on ``device``, loaded once per process (``models.cache``)."""
    from ..models import cache
    return cache.detector(config.weights, config.min_size, config.max_size, device)


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
    """Fail before any work when the weights are missing or unreadable (a ConfigError naming the
    file), without loading the detector in this process."""
    from ..models import cache
    if config.weights != cache.TOY:
        from ..models.detector import check_checkpoint
        check_checkpoint(config.weights or None)


def process_image(record: ImageRecord, image: np.ndarray, config: BBAMConfig, inputs=None,
                  context: StageContext = CPU) -> StageResult:
    return process_with(get_detector(config, context.device), record, image, config)


def process_batch(records: list[ImageRecord], images: list[np.ndarray], config: BBAMConfig,
                  inputs=None, context: StageContext = CPU) -> list[StageResult]:
    """Several photos of the same size: their boxes share the optimisation batches."""
    return process_many(get_detector(config, context.device), records, images, config)


def process_with(det, record: ImageRecord, image: np.ndarray, config: BBAMParams,
                 timings: dict[str, float] | None = None) -> StageResult:
    """:func:`process_image` with a given detector (``bench/bbam.py`` passes its own);
    ``timings``, when given, receives the seconds of each part (positives, optimise, masks)."""
    return process_many(det, [record], [image], config, timings)[0]


def process_many(det, records: list[ImageRecord], images: list[np.ndarray], config: BBAMParams,
                 timings: dict[str, float] | None = None) -> list[StageResult]:
    """The per-image pipeline for photos of one size, their masks optimised in shared batches."""
    import torch

    from ..algorithms.bbam import autocast, optimise_masks, select_positives
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
    results = [_photo_result(det, i, record, image, prepared[i], items, masks, losses, config)
               for i, (record, image) in enumerate(zip(records, images))]
    clock("masks")
    return results


def _photo_result(det, i: int, record: ImageRecord, image: np.ndarray, prepared: tuple, items, masks, losses,
                  config: BBAMParams) -> StageResult:
    """Photo ``i`` of a batch: its boxes' maps in the original frame (from the optimised ``masks``
    of ``items``), tight / loose masks as published, the label, per-object statuses."""
    import torch

    from ..algorithms.bbam import map_to_original, mask_stride
    from ..algorithms.bbam_masks import MASK_STATUSES, bbam_label, crop_masks, published_masks
    from ..algorithms.densecrf import dense_crf, dense_crf_batch
    boxes_in, positives, scale, size, _ = prepared
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
        tight, loose, status, loose_status = published_masks(image, maps, boxes, has_map, config, dense_crf_batch)
    label = bbam_label(tight, loose, boxes, classes)
    objects = {f"status_{s}": np.array([x == s for x in status], np.uint8) for s in MASK_STATUSES}
    objects.update({f"loose_status_{s}": np.array([x == s for x in loose_status], np.uint8) for s in MASK_STATUSES})
    objects["num_positives"] = np.array([len(p) for p in positives], np.int32)
    objects["positive_iou_level"] = np.array([p.level for p in positives], np.float32)
    objects["final_loss"] = final_loss
    counts = {name: int(v.sum()) for name, v in objects.items() if name.startswith("status_") and v.any()}
    return StageResult(label=label, masks=tight, maps=maps.cpu().numpy(), planes={"loose_masks": loose},
                       objects=objects, counts=counts)


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
    voc_only=True,
    revision=2,
)
