"""The ``proposals`` stage: MCG-style segment proposals per image, stored compactly as a
superpixel map plus a sparse proposal x superpixel membership matrix.

Either generated here (``algorithms/proposals.py``: multi-scale boundaries, a finest
partition, several merge hierarchies, regions and adjacent pairs/triplets, holes filled,
duplicates dropped) or converted from official precomputed MCG files with ``from_mcg``, so
everything downstream (``evaluate-proposals``, ``refine``) is identical.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..algorithms.proposals import ProposalParams, generate_proposals
from ..catalog import mcg_file, read_mcg_proposals
from ..records import ImageRecord
from .base import ProposalResult, Stage


@dataclass(frozen=True)
class ProposalConfig(ProposalParams):
    from_mcg: str = ""
    """Folder of official precomputed MCG .mat files (<id>.mat) to convert instead of
    generating proposals; empty = generate."""


def process_image(record: ImageRecord, image: np.ndarray, config: ProposalConfig, inputs=None) -> ProposalResult:
    start = time.perf_counter()
    if config.from_mcg:
        sp, membership = read_mcg_proposals(mcg_file(config.from_mcg, record.image_id),
                                            shape=(record.height, record.width))
    else:
        sp, membership = generate_proposals(image, config)
    return ProposalResult(superpixels=sp, membership=membership,
                          attrs={"seconds": round(time.perf_counter() - start, 4)})


STAGE = Stage(
    name="proposals",
    help="MCG-style segment proposals (superpixels + sparse membership), or official MCG "
         ".mat files converted with --from-mcg DIR.",
    config_class=ProposalConfig,
    process_image=process_image,
    output="proposals",
)
