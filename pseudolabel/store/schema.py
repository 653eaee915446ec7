"""HDF5 label store, format ``pseudolabel.labelstore`` version 1: the one place that knows
group and dataset names. ``docs/STORE.md`` documents the same layout for readers outside
this package; change both together and bump :data:`FORMAT_VERSION` on any change.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

FORMAT_NAME = "pseudolabel.labelstore"
FORMAT_VERSION = 1

# Per-image datasets every stage writes (see docs/STORE.md).
PER_OBJECT = ("boxes", "classes", "difficult", "truncated")
STR = h5py.string_dtype("utf-8")
_COMPRESS = dict(compression="gzip", compression_opts=4, shuffle=True)


def store_path(cache: str | os.PathLike, dataset: str, split: str, stage: str) -> Path:
    """Where a stage's store lives under the output root: ``<cache>/<dataset>/<split>/<stage>.h5``."""
    return Path(cache) / dataset / split / f"{stage}.h5"


def partial_dir(path: str | os.PathLike) -> Path:
    """The journal of a run in progress: ``<store>.partial/``."""
    return Path(str(path) + ".partial")


def _write_image(group: h5py.Group, entry: dict[str, Any]) -> None:
    height, width = entry["label"].shape
    group.attrs["height"] = height
    group.attrs["width"] = width
    group.attrs["image_path"] = entry["image_path"]
    for key, value in entry.get("attrs", {}).items():
        group.attrs[key] = value
    chunk2d = (height, width)
    group.create_dataset("label", data=entry["label"], chunks=chunk2d, **_COMPRESS)
    masks = entry["masks"]
    k = masks.shape[0]
    group.create_dataset("masks", data=masks.astype(np.uint8), chunks=(1, *chunk2d) if k else None,
                         **(_COMPRESS if k else {}))
    if entry.get("maps") is not None:
        group.create_dataset("maps", data=entry["maps"].astype(np.float16),
                             chunks=(1, *chunk2d) if k else None, **(_COMPRESS if k else {}))
    group.create_dataset("boxes", data=entry["boxes"].astype(np.int32).reshape(-1, 4))
    group.create_dataset("classes", data=entry["classes"].astype(np.uint8))
    group.create_dataset("difficult", data=entry["difficult"].astype(np.uint8))
    group.create_dataset("truncated", data=entry["truncated"].astype(np.uint8))
    group.create_dataset("filling_rate", data=entry["filling_rate"].astype(np.float32))
    objects = group.create_group("objects")
    for key, value in entry.get("objects", {}).items():
        objects.create_dataset(key, data=value)


def write_store(path: str | os.PathLike, meta: dict[str, Any], ids: list[str],
                entries: Iterable[tuple[str, dict[str, Any] | None, str]]) -> None:
    """Write a complete store to ``path`` (which should be a temporary name; the caller
    renames it into place). ``entries`` yields ``(image_id, entry or None, error)`` in the
    order of ``ids``; ``meta`` becomes root attributes (``config`` already JSON)."""
    n = len(ids)
    done = np.zeros(n, dtype=np.uint8)
    errors = [""] * n
    heights = np.zeros(n, dtype=np.int32)
    widths = np.zeros(n, dtype=np.int32)
    counts = np.zeros(n, dtype=np.int32)
    position = {image_id: i for i, image_id in enumerate(ids)}
    with h5py.File(path, "w", libver=("earliest", "latest")) as f:
        images = f.create_group("images")
        for image_id, entry, error in entries:
            i = position[image_id]
            if entry is None:
                errors[i] = error
                continue
            _write_image(images.create_group(image_id), entry)
            done[i] = 1
            heights[i], widths[i] = entry["label"].shape
            counts[i] = entry["masks"].shape[0]
        index = f.create_group("index")
        index.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        index.create_dataset("done", data=done)
        index.create_dataset("error", data=np.array(errors, dtype=object), dtype=STR)
        index.create_dataset("height", data=heights)
        index.create_dataset("width", data=widths)
        index.create_dataset("num_objects", data=counts)
        attrs = dict(meta)
        attrs.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, num_images=n,
                     num_done=int(done.sum()), num_failed=int(n - done.sum()), complete=True)
        for key, value in attrs.items():
            f.attrs[key] = value


def read_meta(f: h5py.File) -> dict[str, Any]:
    """Root attributes as plain Python values, with ``config`` parsed from JSON."""
    meta = {}
    for key, value in f.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        meta[key] = value
    if isinstance(meta.get("config"), str):
        meta["config"] = json.loads(meta["config"])
    return meta
