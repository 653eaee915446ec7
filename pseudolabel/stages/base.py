"""What a stage is: a frozen configuration dataclass and a pure per-image function.

A stage never opens a store, never chooses its parallelism and never reads files other than
through the catalog's loader (which the runner calls). ``process_image(record, image, config)``
returns a :class:`StageResult`; the runner adds what the record already knows (boxes,
classes, flags) and the filling rates, and hands the result to the store writer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..records import ImageRecord


@dataclass
class StageResult:
    """Arrays a stage produced for one image, all in the original image frame.

    label:   (H, W) uint8 semantic map: 0 background, 1..20 class, 255 ignore.
    masks:   (K, H, W) bool per-object masks, K = number of objects in the record (same order).
    maps:    optional (K, H, W) float soft per-object maps in [0, 1] (stored as float16).
    objects: stage-specific per-object arrays, each of length K (e.g. guard flags).
    attrs:   stage-specific per-image scalars (numbers or strings).
    counts:  events to total over the run and report at its end (e.g. guards fired); not stored
             per image (what they count is in ``objects``).
    """

    label: np.ndarray
    masks: np.ndarray
    maps: np.ndarray | None = None
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A registered stage: its name, one-line description, config class and worker."""

    name: str
    help: str
    config_class: type
    process_image: Callable[[ImageRecord, np.ndarray, Any], StageResult]
    needs_image: bool = True


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_json(config: Any) -> str:
    """Canonical JSON of a stage configuration (sorted keys): what the store saves."""
    return json.dumps(config_to_dict(config), sort_keys=True)


def config_hash(config: Any) -> str:
    return hashlib.sha256(config_json(config).encode()).hexdigest()[:16]
