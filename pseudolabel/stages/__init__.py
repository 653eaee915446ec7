"""Registry of stages. Adding a stage: one module with a frozen config dataclass and a pure
``process_image(record, image, config) -> StageResult``, registered here."""
from __future__ import annotations

from . import boxes, fuse, grabcut, proposals, refine
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
    "proposals": Stage(
        name="proposals",
        help="MCG-style segment proposals (superpixels + sparse membership), or official MCG "
             ".mat files converted with --from-mcg DIR.",
        config_class=proposals.ProposalConfig,
        process_image=proposals.process_image,
        output="proposals",
    ),
    "refine": Stage(
        name="refine",
        help="Refine another stage's per-object masks with segment proposals (BBAM's rule); "
             "reads the --source store and the proposals store of the same split.",
        config_class=refine.RefineConfig,
        process_image=refine.process_image,
        needs_image=False,
        inputs=refine.inputs,
    ),
    "fuse": Stage(
        name="fuse",
        help="Agreement of several label stores: where they agree the class stands, where they "
             "disagree the pixel is 255.",
        config_class=fuse.FuseConfig,
        process_image=fuse.process_image,
        needs_image=False,
        inputs=fuse.inputs,
    ),
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage '{name}'; known: {', '.join(STAGES)}") from None


__all__ = ["STAGES", "Stage", "StageResult", "get_stage"]
