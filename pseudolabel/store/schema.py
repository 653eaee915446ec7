"""HDF5 label store, format ``pseudolabel.labelstore`` version 1: the one place that knows
group and dataset names. ``docs/STORE.md`` documents the same layout for readers outside
this package; change both together and bump :data:`FORMAT_VERSION` on any change.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

FORMAT_NAME = "pseudolabel.labelstore"
PROPOSAL_FORMAT_NAME = "pseudolabel.proposalstore"
FORMAT_VERSION = 1
FORMATS = {"labels": FORMAT_NAME, "proposals": PROPOSAL_FORMAT_NAME}

# Per-image datasets every stage writes (see docs/STORE.md).
PER_OBJECT = ("boxes", "classes", "difficult", "truncated")
STR = h5py.string_dtype("utf-8")
GZIP_LEVEL = 4


@dataclass
class ChunkedArray:
    """An image-sized array already compressed chunk by chunk, exactly as the store's HDF5
    filter pipeline would do it (byte shuffle for multi-byte types, then gzip/deflate): one
    chunk for a (H, W) array, one per plane for (K, H, W). Workers encode, so compression runs
    in parallel; the single writer only copies bytes (``write_direct_chunk``), and the journal
    keeps the same bytes."""

    shape: tuple[int, ...]
    dtype: str
    chunks: list[bytes]

    @classmethod
    def encode(cls, array: np.ndarray) -> "ChunkedArray":
        array = np.ascontiguousarray(array)
        planes = [array] if array.ndim == 2 else list(array)
        return cls(tuple(int(n) for n in array.shape), array.dtype.str,
                   [zlib.compress(_shuffle(p), GZIP_LEVEL) for p in planes])

    def decode(self) -> np.ndarray:
        dtype = np.dtype(self.dtype)
        plane = self.shape[-2:]
        planes = [_unshuffle(zlib.decompress(c), dtype).reshape(plane) for c in self.chunks]
        if len(self.shape) == 2:
            return planes[0]
        return np.stack(planes) if planes else np.zeros(self.shape, dtype)


def _shuffle(plane: np.ndarray) -> bytes:
    """HDF5's shuffle filter: byte 0 of every element, then byte 1, ... (identity for 1 byte)."""
    size = plane.dtype.itemsize
    raw = plane.view(np.uint8).reshape(-1, size)
    return raw.T.tobytes() if size > 1 else raw.tobytes()


def _unshuffle(data: bytes, dtype: np.dtype) -> np.ndarray:
    raw = np.frombuffer(data, np.uint8)
    if dtype.itemsize > 1:
        raw = raw.reshape(dtype.itemsize, -1).T
    return np.ascontiguousarray(raw).view(dtype).ravel()


def _write_chunked(group: h5py.Group, name: str, array: ChunkedArray) -> None:
    dtype = np.dtype(array.dtype)
    if 0 in array.shape:
        group.create_dataset(name, shape=array.shape, dtype=dtype)
        return
    chunk = array.shape if len(array.shape) == 2 else (1, *array.shape[1:])
    ds = group.create_dataset(name, shape=array.shape, dtype=dtype, chunks=chunk, compression="gzip",
                              compression_opts=GZIP_LEVEL, shuffle=dtype.itemsize > 1)
    for k, data in enumerate(array.chunks):
        ds.id.write_direct_chunk((0, 0) if len(array.shape) == 2 else (k, 0, 0), data)


def store_path(cache: str | os.PathLike, dataset: str, split: str, stage: str) -> Path:
    """A stage's current store under the output root: ``<cache>/<dataset>/<split>/<stage>.h5``,
    a relative symbolic link to the keyed store of the stage's last finished run
    (:func:`keyed_store_path`). Everything that reads "the grabcut store" opens this path."""
    return Path(cache) / dataset / split / f"{stage}.h5"


def keyed_store_path(cache: str | os.PathLike, dataset: str, split: str, stage: str, key: str) -> Path:
    """The store of one configuration: ``<cache>/<dataset>/<split>/<stage>/<key>.h5``, ``key``
    a hash of the stage's configuration and of its upstream stores' keys (``runner.cache_key``),
    so a changed parameter never reuses another configuration's output."""
    return Path(cache) / dataset / split / stage / f"{key}.h5"


def point_current(current: Path, target: Path) -> None:
    """Make ``current`` (``<stage>.h5``) a relative link to ``target``, atomically."""
    tmp = current.with_name(current.name + ".link-tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, current.parent), tmp)
    os.replace(tmp, current)


def partial_dir(path: str | os.PathLike) -> Path:
    """The journal of a run in progress: ``<store>.partial/``."""
    return Path(str(path) + ".partial")


ENTRY_FIELDS = ("image_path", "height", "width", "num_objects", "attrs", "objects")
"""Entry keys that are not datasets: the rest of an entry's keys become datasets."""


def _write_image(group: h5py.Group, entry: dict[str, Any]) -> None:
    """Write one image's entry: ``height``/``width``/``image_path`` and ``attrs`` as group
    attributes, :class:`ChunkedArray` values as chunked gzip datasets (bytes copied as they
    are), other arrays as small datasets, ``objects`` as a sub-group of per-object arrays."""
    group.attrs["height"] = int(entry["height"])
    group.attrs["width"] = int(entry["width"])
    group.attrs["image_path"] = entry["image_path"]
    for key, value in entry.get("attrs", {}).items():
        group.attrs[key] = value
    for key, value in entry.items():
        if key in ENTRY_FIELDS or value is None:
            continue
        if isinstance(value, ChunkedArray):
            _write_chunked(group, key, value)
        else:
            group.create_dataset(key, data=np.asarray(value))
    if "objects" in entry:
        objects = group.create_group("objects")
        for key, value in entry["objects"].items():
            objects.create_dataset(key, data=value)


def read_entry(group: h5py.Group) -> dict[str, Any]:
    """The inverse of :func:`_write_image`: one image's entry as the writer received it, with
    chunked datasets read back as their compressed bytes (``read_direct_chunk``), so merging
    stores copies bytes without decompressing them."""
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in group.attrs.items()}
    entry: dict[str, Any] = {"height": int(attrs.pop("height")), "width": int(attrs.pop("width")),
                             "image_path": str(attrs.pop("image_path")), "attrs": attrs}
    for key, ds in group.items():
        if key == "objects":
            entry["objects"] = {k: v[()] for k, v in ds.items()}
        elif ds.compression == "gzip" and ds.chunks is not None:
            n = 1 if ds.ndim == 2 else ds.shape[0]
            origin = (lambda k: (0, 0)) if ds.ndim == 2 else (lambda k: (k, 0, 0))
            entry[key] = ChunkedArray(tuple(ds.shape), ds.dtype.str,
                                      [bytes(ds.id.read_direct_chunk(origin(k))[1]) for k in range(n)])
        elif ds.ndim == 3 and 0 in ds.shape:
            entry[key] = ChunkedArray(tuple(ds.shape), ds.dtype.str, [])
        else:
            entry[key] = ds[()]
    return entry


def write_store(path: str | os.PathLike, meta: dict[str, Any], ids: list[str],
                entries: Iterable[tuple[str, dict[str, Any] | None, str]],
                format_name: str = FORMAT_NAME) -> None:
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
            heights[i], widths[i] = entry["height"], entry["width"]
            counts[i] = entry.get("num_objects", 0)
        index = f.create_group("index")
        index.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        index.create_dataset("done", data=done)
        index.create_dataset("error", data=np.array(errors, dtype=object), dtype=STR)
        index.create_dataset("height", data=heights)
        index.create_dataset("width", data=widths)
        index.create_dataset("num_objects", data=counts)
        attrs = dict(meta)
        attrs.update(format=format_name, format_version=FORMAT_VERSION, num_images=n,
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
