"""The ``prompt`` stage: box-prompted segmenters (``--model sam`` with the user's checkpoint,
``--model isnet``) as a mask engine; their soft masks composed like GrabCut's.

Per image: 1. each box's foreground probability from the engine (SAM: one image embedding, all
boxes decoded in one batched call, the candidate of ``--multimask``; IS-Net: each box's crop with a
context margin, resized to ``--input-size``, crops batched)  2. masks (probability above
``--threshold`` inside the box; a mask that lost its object falls back to the filled box)  3. one
label map: smaller boxes in front, 255 where the probability is uncertain (``docs/STORE.md``).

The store keeps the soft masks as ``maps`` (float16, in steps of 1/255), for ``grabcut
--init-from prompt``, ``refine --source prompt`` and ``fuse``. Weights are never downloaded; a
missing file is one line naming it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..algorithms.prompt import (PromptParams, choose, crop_window, inside_box, masks_and_fallbacks,
                                 prompt_label)
from ..core.config import OptionError, option
from ..core.records import ImageRecord
from ..core.results import StageResult
from .base import CPU, Stage, StageContext

ENGINES = ("isnet", "sam")


@dataclass(frozen=True)
class PromptConfig(PromptParams):
    model: str = option("isnet", choices=ENGINES)
    """The engine: isnet (IS-Net, class-agnostic salient object segmentation on each box's crop,
    ONNX through onnxruntime) or sam (Segment Anything with --weights, prompted by the box)."""
    weights: str = ""
    """The engine's weights: IS-Net's ONNX file (empty: ~/.u2net/isnet-general-use.onnx, where rembg
    keeps it) or a SAM checkpoint (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth)."""
    input_size: int = option(320, ge=32, le=2048)
    """isnet: side of the square the crop is resized to (the network was trained at 1024)."""
    margin: float = option(0.1, ge=0, le=2)
    """isnet: context around each box in its crop, as a share of the box's longer side."""
    multimask: str = option("iou", choices=("iou", "fill", "single"))
    """sam: of SAM's three candidate masks keep the one with the best predicted IoU (iou) or the one
    that best fills its box (fill); single: SAM's single-mask output."""
    batch_boxes: int = option(8, ge=1, le=1024)
    """Boxes (crops, prompts) per network call."""
    half: bool = False
    """Half precision on a GPU (SAM)."""

    def validate(self) -> None:
        super().validate()
        if self.model == "isnet" and (self.multimask != "iou" or self.half):
            raise OptionError("multimask" if self.multimask != "iou" else "half",
                              "is a sam option (--model sam)")


def check(config: PromptConfig) -> None:
    """Missing weights or packages: one line before any work."""
    if config.model == "sam":
        from ..models.sam import _package, weights_path
        _package()
        weights_path(config.weights)
    else:
        from ..models.isnet import _imports, weights_path
        _imports()
        weights_path(config.weights)


def _isnet(record: ImageRecord, image: np.ndarray, config: PromptConfig, device: str) -> np.ndarray:
    from ..models import cache
    from ..models.isnet import isnet_batch
    session = cache.isnet(config.weights, device)
    shape = image.shape[:2]
    boxes = record.boxes()
    probs = np.zeros((len(boxes), *shape), np.float32)
    windows = [crop_window(b, shape, config.margin) for b in boxes]
    for start in range(0, len(boxes), config.batch_boxes):
        chunk = range(start, min(start + config.batch_boxes, len(boxes)))
        crops = [image[windows[j][1]:windows[j][3], windows[j][0]:windows[j][2]] for j in chunk]
        for j, p in zip(chunk, isnet_batch(session, crops, config.input_size)):
            x0, y0, x1, y1 = windows[j]
            probs[j, y0:y1, x0:x1] = p
            probs[j] = inside_box(probs[j], boxes[j])
    return probs


def _sam(record: ImageRecord, image: np.ndarray, config: PromptConfig, device: str):
    from ..models import cache
    from ..models.sam import sam_batch
    boxes = record.boxes()
    candidates, ious = sam_batch(cache.sam(config.weights, device), image, boxes,
                                 multimask=config.multimask != "single", batch_boxes=config.batch_boxes,
                                 half=config.half)
    picked = np.array([choose(candidates[j], ious[j], boxes[j], config.multimask, config.threshold)
                       for j in range(len(boxes))], np.int64)
    probs = np.stack([inside_box(candidates[j, picked[j]], boxes[j]) for j in range(len(boxes))]) \
        if len(boxes) else np.zeros((0, *image.shape[:2]), np.float32)
    return probs, picked, ious[np.arange(len(boxes)), picked] if len(boxes) else np.zeros(0, np.float32)


def process_image(record: ImageRecord, image: np.ndarray, config: PromptConfig, inputs=None,
                  context: StageContext = CPU) -> StageResult:
    objects = {}
    if config.model == "sam":
        probs, picked, iou = _sam(record, image, config, context.device)
        objects = {"candidate": picked.astype(np.uint8), "predicted_iou": iou.astype(np.float32)}
    else:
        probs = _isnet(record, image, config, context.device)
    probs = (np.round(probs * 255) / 255).astype(np.float16).astype(np.float32)   # exactly what the store keeps
    boxes, classes = record.boxes(), record.classes()
    masks, fallback = masks_and_fallbacks(probs, boxes, config)
    label = prompt_label(probs, masks, fallback, boxes, classes, config)
    objects["fallback"] = fallback.astype(np.uint8)
    return StageResult(label=label, masks=masks, maps=probs.astype(np.float32), objects=objects,
                       counts={"fallback": int(fallback.sum())} if fallback.any() else {})


def recompose(sample, masks: np.ndarray, planes=None) -> np.ndarray:
    """The label this stage composes from other per-object ``masks`` of a stored image (``refine``):
    its stored probabilities for the ignore band, its fallback flags, its configuration's rule."""
    params = PromptParams(**{k: v for k, v in sample.config.items() if k in PromptParams.__dataclass_fields__})
    probs = sample.maps if sample.maps is not None else masks.astype(np.float32)
    fallback = sample.objects.get("fallback", np.zeros(len(masks), np.uint8)).astype(bool)
    return prompt_label(probs, masks.astype(bool), fallback, sample.boxes, sample.classes, params)


STAGE = Stage(
    name="prompt",
    help="Box-prompted segmenters as mask engines: SAM with your checkpoint (--model sam --weights FILE) "
         "or IS-Net (--model isnet), soft masks kept, composed like GrabCut's.",
    config_class=PromptConfig,
    process_image=process_image,
    check=check,
    recompose=recompose,
    uses_device=True,
)
