"""The ``refine`` stage: BBAM's proposal refinement of another stage's per-object masks.

Reads two finished stores of the same split: the source stage's (``--source grabcut``: its
per-object masks, boxes and guard flags; ``--source bbam``: its tight and loose masks) and
``proposals``. Per image:
1. refine every object's mask with the rule in ``algorithms/refine.py`` (exact counts from
   the sparse proposal x superpixel form; small boxes and objects nothing matches unchanged);
2. compose one label map with the source's own rule, so the only change is the masks
   (for ``grabcut``: smaller box in front, 2 px ignore band on mask boundaries, ignore ring on
   fallback boxes; for ``bbam``: refined masks as the tight masks, the loose band 255,
   cross-class conflicts 255 unless nested);
3. store the refined masks and, per object, the rule's status.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..algorithms.grabcut import FALLBACK_GUARDS, GrabCutParams, compose_label
from ..algorithms.refine import STATUSES, RefineParams, refine_masks
from ..errors import DataError
from ..labels import paint_smaller_on_top
from ..records import ImageRecord
from .base import Stage, StageResult

SOURCES = ("grabcut", "bbam")


@dataclass(frozen=True)
class RefineConfig(RefineParams):
    source: str = field(default="grabcut", metadata={"choices": SOURCES})
    """Stage whose per-object masks are refined (its store must be finished)."""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not (0 < self.contain_frac <= 1 and 0 < self.inbox_frac <= 1):
            raise ValueError("contain_frac and inbox_frac must be in (0, 1]")


def inputs(config: RefineConfig) -> tuple[str, ...]:
    return (config.source, "proposals")


def _grabcut_params(source_config: dict) -> GrabCutParams:
    names = {f.name for f in fields(GrabCutParams)}
    return GrabCutParams(**{k: v for k, v in source_config.items() if k in names})


def process_image(record: ImageRecord, image, config: RefineConfig, inputs: dict) -> StageResult:
    source, props = inputs[config.source], inputs["proposals"]
    boxes, classes = record.boxes(), record.classes()
    if source.masks.shape[0] != len(boxes) or not np.array_equal(source.boxes, boxes):
        raise DataError(source.image_path, f"the {config.source} store's objects differ from the "
                                           f"annotation's (was it made from other boxes?)", record.image_id)
    if props.superpixels.shape != (record.height, record.width):
        raise DataError(source.image_path, "proposals and image differ in size", record.image_id)
    # 1. refine
    masks, status = refine_masks(source.masks, boxes, props.superpixels, props.membership, config)
    # 2. compose with the source's rule
    if config.source == "bbam":                     # tight = refined, loose band kept as ignore
        from ..algorithms.bbam import compose_label as bbam_label
        loose = source.planes.get("loose_masks", masks).astype(bool) | masks.astype(bool)
        label = bbam_label(masks.astype(bool), loose, boxes, classes)
    elif source.config.get("reference"):             # plain GrabCut: smaller box in front, no 255
        label = paint_smaller_on_top(masks, classes, boxes)
    else:
        fired = [tuple(g for g in FALLBACK_GUARDS if f"guard_{g}" in source.objects and source.objects[f"guard_{g}"][k])
                 for k in range(len(boxes))]
        label = compose_label(masks.shape[1:], boxes, classes, masks, _grabcut_params(source.config), guards=fired)
    # 3. what the store keeps
    objects = {f"status_{s}": np.array([x == s for x in status], dtype=np.uint8) for s in STATUSES}
    counts = {f"status_{s}": int(v.sum()) for s, v in zip(STATUSES, objects.values()) if v.any()}
    return StageResult(label=label, masks=masks, objects=objects, counts=counts)


STAGE = Stage(
    name="refine",
    help="Refine another stage's per-object masks with segment proposals (BBAM's rule); "
         "reads the --source store and the proposals store of the same split.",
    config_class=RefineConfig,
    process_image=process_image,
    needs_image=False,
    inputs=inputs,
)
