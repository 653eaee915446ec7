"""The ``boxes`` stage: every box filled with its class, smaller boxes painted over larger
ones. The baseline every box-supervised paper reports, and the simplest stage through the
whole pipeline."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.config import Checked
from ..core.labels import box_masks, paint_smaller_on_top
from ..core.records import ImageRecord
from ..core.results import StageResult
from .base import CPU, Stage


@dataclass(frozen=True)
class BoxesConfig(Checked):
    """The filled-box baseline has no parameters."""


def process_image(record: ImageRecord, image: np.ndarray, config: BoxesConfig, inputs=None, context=CPU) -> StageResult:
    """1. fill each box  2. paint larger boxes first, smaller on top."""
    boxes, classes = record.boxes(), record.classes()
    masks = box_masks(boxes, (record.height, record.width))
    return StageResult(label=paint_smaller_on_top(masks, classes, boxes), masks=masks)


STAGE = Stage(
    name="boxes",
    help="Filled boxes, smaller boxes painted over larger ones (the baseline).",
    config_class=BoxesConfig,
    process_image=process_image,
)
