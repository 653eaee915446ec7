"""Registry of stages. Adding a stage: one module with a frozen config dataclass and a pure
``process_image(record, image, config) -> StageResult``, registered here."""
from __future__ import annotations

from . import boxes, grabcut
from .base import Stage, StageResult

STAGES: dict[str, Stage] = {
    "boxes": Stage(
        name="boxes",
        help="Filled boxes, smaller boxes painted over larger ones (the baseline).",
        config_class=boxes.BoxesConfig,
        process_image=boxes.process_image,
    ),
    "grabcut": Stage(
        name="grabcut",
        help="GrabCut per box with guards, fused into one label map with 255 where the evidence "
             "is weak, plus Box2Seg's per-class filling rates (--reference: plain GrabCut).",
        config_class=grabcut.GrabCutConfig,
        process_image=grabcut.process_image,
    ),
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage '{name}'; known: {', '.join(STAGES)}") from None


__all__ = ["STAGES", "Stage", "StageResult", "get_stage"]
