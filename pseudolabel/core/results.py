"""What a stage returns for one image: the arrays the store keeps (``store/entry.py`` turns them
into a store entry, adding what the record knows). All arrays are in the original image frame."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StageResult:
    """Arrays a stage produced for one image (a label store's entry).

    label:   (H, W) uint8 semantic map: 0 background, 1..20 class, 255 ignore.
    masks:   (K, H, W) bool per-object masks, K = number of objects in the record (same order).
    maps:    optional (K, H, W) float soft per-object maps in [0, 1] (stored as float16).
    planes:  further (K, H, W) bool per-object masks, each stored as its own dataset; names
             end in ``_masks`` (e.g. BBAM's ``loose_masks``).
    objects: stage-specific per-object arrays, each of length K (e.g. guard flags).
    attrs:   stage-specific per-image scalars (numbers or strings).
    counts:  events to total over the run and report at its end (e.g. guards fired); not stored
             per image (what they count is in ``objects``).
    """

    label: np.ndarray
    masks: np.ndarray
    maps: np.ndarray | None = None
    planes: dict[str, np.ndarray] = field(default_factory=dict)
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class EdgeResult:
    """Boundary maps of one image (an edge store's entry).

    edges: (H, W) float32 in [0, 1], the detector's fused boundary probability.
    thin:  (H, W) float32 in [0, 1], the same after non-maximum suppression (one pixel wide).
    """

    edges: np.ndarray
    thin: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class ProposalResult:
    """Segment proposals of one image, as unions of superpixels (a proposal store's entry).

    superpixels: (H, W) int32 finest partition, ids 0..n-1 (all used).
    membership:  (P, n) scipy.sparse CSR, row p = the superpixels of proposal p.
    attrs:       per-image scalars (e.g. seconds spent).
    """

    superpixels: np.ndarray
    membership: Any
    attrs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
