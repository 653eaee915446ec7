"""The ``fuse`` stage: agreement of several label stores (Simple Does It's M∩G+ idea).

Per pixel: where every source gives the same class (background included), that class stands;
where they disagree, or any source ignores the pixel, it becomes 255 (``--rule agree``). With
``--rule intersect`` (M∩G+), box pixels that are not agreed foreground are 255 too and everything
outside the boxes is background. Per object: the intersection of the sources' masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.classes import IGNORE
from ..core.config import Checked, OptionError, option
from ..core.errors import DataError
from ..core.labels import box_masks
from ..core.records import ImageRecord
from ..core.results import StageResult
from .base import CPU, Stage


@dataclass(frozen=True)
class FuseConfig(Checked):
    sources: str = "grabcut,refine"
    """Comma-separated stages whose label stores are fused (at least two, all finished)."""
    rule: str = option("agree", choices=("agree", "intersect"), since="0.2")
    """agree: every pixel where the sources agree keeps its class (background included), the rest
    255. intersect: Simple Does It's M∩G+: inside the boxes only the pixels that every source
    gives the same class keep it and the rest of each box is 255; outside the boxes background."""

    def validate(self) -> None:
        from . import STAGES
        names = self.source_names()
        if len(names) < 2 or len(set(names)) != len(names):
            raise OptionError("sources", f"must name at least two different stages, got {self.sources!r}")
        if "fuse" in names:
            raise OptionError("sources", "fuse cannot read its own store")
        labels = [n for n in STAGES if STAGES.output(n) == "labels" and n != "fuse"]
        for name in names:
            if name not in labels:
                what = f"makes {STAGES.output(name)}, not labels" if name in STAGES else "is not a stage"
                raise OptionError("sources", f"{name!r} {what}; fuse reads label stores: {', '.join(labels)}")

    def source_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.sources.split(",") if n.strip())


def inputs(config: FuseConfig) -> tuple[str, ...]:
    return config.source_names()


def process_image(record: ImageRecord, image, config: FuseConfig, inputs: dict, context=CPU) -> StageResult:
    samples = [inputs[name] for name in config.source_names()]
    boxes = record.boxes()
    for name, s in zip(config.source_names(), samples):
        if not np.array_equal(s.boxes, boxes):
            raise DataError(s.image_path, f"the {name} store's objects differ from the annotation's",
                            record.image_id)
    first = samples[0].label
    agree = np.ones(first.shape, dtype=bool)
    for s in samples[1:]:
        agree &= s.label == first
    label = np.where(agree & (first != IGNORE), first, IGNORE).astype(np.uint8)
    if config.rule == "intersect":
        inside = box_masks(boxes, first.shape).any(axis=0)
        label = np.where(inside, np.where(label == 0, IGNORE, label), 0).astype(np.uint8)
    masks = np.logical_and.reduce([s.masks for s in samples])
    return StageResult(label=label, masks=masks, counts={"pixels_disagreeing": int((~agree).sum())})


STAGE = Stage(
    name="fuse",
    help="Agreement of several label stores: where they agree the class stands, where they "
         "disagree the pixel is 255.",
    config_class=FuseConfig,
    process_image=process_image,
    needs_image=False,
    inputs=inputs,
)
