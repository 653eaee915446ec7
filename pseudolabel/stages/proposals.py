"""The ``proposals`` stage: MCG-style segment proposals per image, stored compactly as a
superpixel map plus a sparse proposal x superpixel membership matrix.

Either generated here (``algorithms/proposals.py``: multi-scale colour boundaries, or a
learned edge detector's maps read from ``edges``; a finest partition, several merge
hierarchies, regions and adjacent pairs/triplets, holes filled, duplicates dropped) or
converted from official precomputed MCG files with ``from_mcg``, so everything downstream
(``evaluate-proposals``, ``refine``) is identical.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..algorithms.proposal_params import ProposalParams
from ..catalog import edge_file, mcg_file, read_edge_map, read_mcg_proposals
from ..core.config import OptionError, option
from ..core.errors import ConfigError
from ..core.records import ImageRecord
from ..core.results import ProposalResult
from .base import CPU, Stage


@dataclass(frozen=True)
class ProposalConfig(ProposalParams):
    from_mcg: str = ""
    """Folder of official precomputed MCG .mat files (<id>.mat) to convert instead of
    generating proposals; empty = generate."""
    edges: str = ""
    """Folder of boundary maps from a learned edge detector (HED, structured edges, PiDiNet,
    ...), one grey PNG per image (<id>.png, 8 or 16 bits, brighter = stronger boundary, the
    image's size): the generator builds on them instead of colour gradients, as MCG does;
    empty = colour gradients."""
    edges_from: str = option("", choices=("", "edges"), since="0.2")
    """Build on the boundary maps of this stage's store (edges: HED, `pseudolabel edges`) instead
    of colour gradients; empty = colour gradients (or --edges)."""
    thin_edges: bool = option(False, since="0.2")
    """With --edges-from: use the thinned (non-maximum-suppressed) maps rather than the fused ones."""

    def validate(self) -> None:
        super().validate()
        if self.from_mcg and self.edges:
            raise OptionError("from_mcg", "converts finished proposals and edges feeds the generator: pass one")
        if self.edges_from and (self.edges or self.from_mcg):
            raise OptionError("edges_from", "reads boundary maps from a store; --edges reads them from a folder "
                                            "and --from-mcg converts finished proposals: pass one")
        if self.thin_edges and not self.edges_from:
            raise OptionError("thin_edges", "chooses between the maps of --edges-from: give --edges-from edges")


def inputs(config: ProposalConfig) -> tuple[str, ...]:
    return (config.edges_from,) if config.edges_from else ()


def check_folders(config: ProposalConfig) -> None:
    """Fail before any work when a folder to read from is not there (each file is still checked
    per image: a missing one fails, or with --on-error skip, skips that image)."""
    for flag, folder in (("--from-mcg", config.from_mcg), ("--edges", config.edges)):
        if folder and not Path(folder).is_dir():
            raise ConfigError(f"{flag}: {folder} is not a folder")


def process_image(record: ImageRecord, image: np.ndarray, config: ProposalConfig, inputs=None, context=CPU) -> ProposalResult:
    start = time.perf_counter()
    if config.from_mcg:
        sp, membership = read_mcg_proposals(mcg_file(config.from_mcg, record.image_id),
                                            shape=(record.height, record.width))
    else:
        if config.edges_from:
            maps = inputs[config.edges_from]
            edges = maps.thin if config.thin_edges else maps.edges
        elif config.edges:
            edges = read_edge_map(edge_file(config.edges, record.image_id), shape=image.shape[:2])
        else:
            edges = None
        from ..algorithms.proposals import generate_proposals
        sp, membership = generate_proposals(image, config, edges)
    return ProposalResult(superpixels=sp, membership=membership,
                          attrs={"seconds": round(time.perf_counter() - start, 4)})


STAGE = Stage(
    name="proposals",
    help="MCG-style segment proposals (superpixels + sparse membership) from colour gradients, "
         "HED's boundaries (--edges-from edges) or another detector's maps (--edges DIR), or official "
         "MCG .mat files converted with --from-mcg DIR.",
    config_class=ProposalConfig,
    process_image=process_image,
    output="proposals",
    inputs=inputs,
    check=check_folders,
)
