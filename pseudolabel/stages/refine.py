"""The ``refine`` stage: BBAM's proposal refinement of another stage's per-object masks.

Reads two finished stores of the same split: the source stage's (``--source grabcut``: its
per-object masks, boxes and guard flags; ``--source bbam``: its tight and loose masks) and
``proposals``. Per image:
1. refine every object's mask with the rule in ``algorithms/refine.py`` (exact counts from
   the sparse proposal x superpixel form; small boxes and objects nothing matches unchanged);
   BBAM's as its published code does: the loose masks too (stored as ``loose_masks``, unioned with
   the refined tight ones), boxes under ``min_box`` x ``min_box`` px by area skipped;
2. compose one label map with the source's own rule (``Stage.recompose`` of the source stage,
   reading its configuration and per-object flags from its store), so the only change is the
   masks (for ``grabcut``: smaller box in front, 2 px ignore band on mask boundaries, ignore ring
   on fallback boxes; for ``bbam``: refined masks as the tight masks, the loose band 255,
   cross-class conflicts 255 unless nested);
3. store the refined masks and, per object, the rule's status.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..algorithms.refine import REFINE_STATUSES, RefineParams, refine_masks, refine_tight_loose
from ..core.config import option
from ..core.errors import DataError
from ..core.records import ImageRecord
from ..core.results import StageResult
from . import get_stage
from .base import CPU, Stage

SOURCES = ("grabcut", "bbam", "prompt")
"""Stages whose per-object masks refine reads; each composes its label again with its own rule
(``Stage.recompose``)."""


@dataclass(frozen=True)
class RefineConfig(RefineParams):
    source: str = option("grabcut", choices=SOURCES)
    """Stage whose per-object masks are refined (its store must be finished)."""


def inputs(config: RefineConfig) -> tuple[str, ...]:
    return (config.source, "proposals")


def process_image(record: ImageRecord, image, config: RefineConfig, inputs: dict, context=CPU) -> StageResult:
    source, props = inputs[config.source], inputs["proposals"]
    boxes = record.boxes()
    if (source.masks.shape[0] != len(boxes) or not np.array_equal(source.boxes, boxes)
            or not np.array_equal(source.classes, record.classes())):
        raise DataError(source.image_path, f"the {config.source} store's objects differ from the "
                                           f"annotation's (was it made from other boxes?)", record.image_id)
    if props.superpixels.shape != (record.height, record.width):
        raise DataError(source.image_path, "proposals and image differ in size", record.image_id)
    # 1. refine (BBAM's masks as published: the loose ones too, small boxes by area)
    planes = {}
    if config.source == "bbam":
        masks, loose, status = refine_tight_loose(source.masks, source.planes["loose_masks"], boxes,
                                                  props.superpixels, props.membership, config, by_area=True)
        planes["loose_masks"] = loose
    else:
        masks, status = refine_masks(source.masks, boxes, props.superpixels, props.membership, config)
    # 2. compose with the source's rule, from what its store records
    label = get_stage(config.source).recompose(source, masks.astype(bool), planes)
    # 3. what the store keeps
    objects = {f"status_{s}": np.array([x == s for x in status], dtype=np.uint8) for s in REFINE_STATUSES}
    counts = {f"status_{s}": int(v.sum()) for s, v in zip(REFINE_STATUSES, objects.values()) if v.any()}
    return StageResult(label=label, masks=masks, planes=planes, objects=objects, counts=counts)


STAGE = Stage(
    name="refine",
    help="Refine another stage's per-object masks with segment proposals (BBAM's rule); "
         "reads the --source store and the proposals store of the same split.",
    config_class=RefineConfig,
    process_image=process_image,
    needs_image=False,
    inputs=inputs,
)
