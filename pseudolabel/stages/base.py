"""What a stage is: a frozen configuration dataclass and a pure per-image function.

A stage never opens a store, never chooses its parallelism and never reads files other than
through the catalog (the runner loads the image). ``process_image(record, image, config,
inputs)`` returns a :class:`StageResult` (label stores) or a :class:`ProposalResult`
(proposal stores); the runner adds what the record already knows (boxes, classes, flags) and
the filling rates, and hands the result to the store writer. ``inputs`` holds, per upstream
stage the configuration names (``Stage.inputs(config)``), that stage's result for this image,
read by the runner from its finished store: a :class:`~pseudolabel.store.Sample` with masks,
or a :class:`~pseudolabel.store.Proposals`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np



@dataclass
class StageResult:
    """Arrays a stage produced for one image, all in the original image frame.

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
class ProposalResult:
    """Segment proposals of one image, as unions of superpixels.

    superpixels: (H, W) int32 finest partition, ids 0..n-1 (all used).
    membership:  (P, n) scipy.sparse CSR, row p = the superpixels of proposal p.
    attrs:       per-image scalars (e.g. seconds spent).
    """

    superpixels: np.ndarray
    membership: Any
    attrs: dict[str, Any] = field(default_factory=dict)


def no_inputs(config: Any) -> tuple[str, ...]:
    return ()


def no_check(config: Any) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    """A registered stage: its name, one-line description, config class and worker.

    output: ``"labels"`` (a label store) or ``"proposals"`` (a proposal store).
    inputs: the upstream stages whose stores ``process_image`` reads, given its config.
    """

    name: str
    help: str
    config_class: type
    process_image: Callable[..., StageResult | ProposalResult]
    needs_image: bool = True
    output: str = "labels"
    inputs: Callable[[Any], tuple[str, ...]] = no_inputs
    check: Callable[[Any], None] = no_check
    """Called once before any work: raise a PseudolabelError for what would fail every image
    (e.g. missing detector weights)."""
    process_batch: Callable[..., list] | None = None
    """Optional: ``(records, images, config, inputs) -> results``, several images of the same
    size at once (one result per record, in order; each must equal what ``process_image``
    gives for that image alone). The runner uses it when ``batch_images(config) > 1``."""
    batch_images: Callable[[Any], int] = lambda config: 1
    """How many images of the same size the runner hands to ``process_batch`` at once."""
    revision: int = 1
    """Bump it in the commit that makes the same configuration give different output (an
    algorithm changed, not an option): the cache key covers it, so stores made by the earlier
    code are not reused as if they were current. Revision 1 adds nothing to the key, so stores
    made before revisions existed keep their keys."""


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_json(config: Any) -> str:
    """Canonical JSON of a stage configuration (sorted keys): what the store saves."""
    return json.dumps(config_to_dict(config), sort_keys=True)


def config_hash(config: Any) -> str:
    return hashlib.sha256(config_json(config).encode()).hexdigest()[:16]
