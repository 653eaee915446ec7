"""HDF5 store formats ``pseudolabel.labelstore`` (version 1) and ``pseudolabel.proposalstore``
(version 2): the names of groups, datasets and attributes, and the one compression everything is
written with. ``docs/STORE.md`` documents the same layout for readers outside this package; change
both together and bump the format's version in :data:`FORMAT_VERSIONS` on any change. Per-image
content is in ``entry.py``, the index and reading in ``index.py``, writing in ``writer.py``.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

FORMAT_NAME = "pseudolabel.labelstore"
PROPOSAL_FORMAT_NAME = "pseudolabel.proposalstore"
EDGE_FORMAT_NAME = "pseudolabel.edgestore"
FORMATS = {"labels": FORMAT_NAME, "proposals": PROPOSAL_FORMAT_NAME, "edges": EDGE_FORMAT_NAME}
"""Store format of each kind of stage output (``Stage.output``)."""
FORMAT_VERSIONS = {FORMAT_NAME: 3, PROPOSAL_FORMAT_NAME: 3, EDGE_FORMAT_NAME: 3}
"""The version each format is written with (2: checksums of every image and of the index; 3: every
image records its photo's frame, ``orientation`` and ``exif_orientation``)."""
READABLE_VERSIONS = {FORMAT_NAME: (1, 2, 3), PROPOSAL_FORMAT_NAME: (1, 2, 3), EDGE_FORMAT_NAME: (2, 3)}
"""The versions readers accept: version 1 (no checksums; proposal stores with a CSR membership)
is still read; images of stores before version 3 are in their stored frame (orientation 1)."""
FORMAT_VERSION = FORMAT_VERSIONS[FORMAT_NAME]
"""The label store's version (the format trainers read)."""

IMAGES = "images"
"""Group of per-image groups ``images/<id>/``."""
INDEX = "index"
"""Group of per-split arrays, one row per image in split order."""
INDEX_FIELDS = ("ids", "done", "error", "height", "width", "num_objects", "checksum")
"""Datasets of ``index/`` (``checksum`` from version 2 on)."""
INDEX_CRC = "index_crc32"
"""Root attribute (version 2): :func:`index_checksum` of the index and the other root attributes."""
COUNT_ATTRS = ("format", "format_version", "num_images", "num_done", "num_failed", "complete", "index_crc32")
"""Root attributes the writer sets from what it wrote (never copied from another store)."""

STR = h5py.string_dtype("utf-8")

METADATA_CACHE_BYTES = 2 << 20
"""Largest HDF5 metadata cache of an open store. A store is a group per image, each read once in a
pass: with HDF5's default (up to 32 MiB, and more in practice) a reader grew by about 120 MiB per
1,000 images of a grabcut store and never gave it back (a full train_aug export peaked at 485 MiB);
2 MiB keeps it flat at no measurable cost."""


def small_metadata_cache(f: h5py.File) -> h5py.File:
    """``f`` with its metadata cache bounded by :data:`METADATA_CACHE_BYTES`."""
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = METADATA_CACHE_BYTES // 2
    config.min_size = METADATA_CACHE_BYTES // 2
    config.max_size = METADATA_CACHE_BYTES
    f.id.set_mdc_config(config)
    return f
GZIP_LEVEL = 4


def index_checksum(attrs: dict[str, Any], ids: list[str], done, errors: list[str], heights, widths, counts,
                   checksums) -> int:
    """CRC-32 of a store's root attributes (but :data:`INDEX_CRC` itself) and of its index, every
    field in :data:`INDEX_FIELDS` order."""
    head = {k: plain(v) for k, v in attrs.items() if k != INDEX_CRC}
    crc = zlib.crc32(json.dumps([head, list(ids), list(errors)], sort_keys=True).encode())
    for arr, dtype in ((done, np.uint8), (heights, np.int32), (widths, np.int32), (counts, np.int32),
                       (checksums, np.uint32)):
        crc = zlib.crc32(np.ascontiguousarray(arr, dtype=dtype).tobytes(), crc)
    return crc


def decode_str(value: Any) -> str:
    """An HDF5 string (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def plain(value: Any) -> Any:
    """An attribute value as a plain Python value (numpy scalars unwrapped, bytes decoded)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_meta(f: h5py.File) -> dict[str, Any]:
    """Root attributes as plain Python values, with ``config`` parsed from JSON."""
    meta = {key: plain(value) for key, value in f.attrs.items()}
    if isinstance(meta.get("config"), str):
        meta["config"] = json.loads(meta["config"])
    return meta


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

    @property
    def nbytes(self) -> int:
        """Compressed size."""
        return sum(len(c) for c in self.chunks)

    def write(self, group: h5py.Group, name: str) -> None:
        """As dataset ``name`` of ``group``: chunked one plane at a time, gzip + shuffle, the
        compressed bytes copied as they are."""
        dtype = np.dtype(self.dtype)
        if 0 in self.shape:
            group.create_dataset(name, shape=self.shape, dtype=dtype)
            return
        chunk = self.shape if len(self.shape) == 2 else (1, *self.shape[1:])
        ds = group.create_dataset(name, shape=self.shape, dtype=dtype, chunks=chunk, compression="gzip",
                                  compression_opts=GZIP_LEVEL, shuffle=dtype.itemsize > 1)
        for k, data in enumerate(self.chunks):
            ds.id.write_direct_chunk((0, 0) if len(self.shape) == 2 else (k, 0, 0), data)

    @classmethod
    def read(cls, ds: h5py.Dataset) -> "ChunkedArray":
        """The inverse of :meth:`write`: the compressed bytes as stored (``read_direct_chunk``)."""
        if 0 in ds.shape:
            return cls(tuple(ds.shape), ds.dtype.str, [])
        n = 1 if ds.ndim == 2 else ds.shape[0]
        origin = (lambda k: (0, 0)) if ds.ndim == 2 else (lambda k: (k, 0, 0))
        return cls(tuple(ds.shape), ds.dtype.str, [bytes(ds.id.read_direct_chunk(origin(k))[1]) for k in range(n)])

    @staticmethod
    def is_chunked(ds: h5py.Dataset) -> bool:
        """Whether a dataset was written by :meth:`write` (image-sized, one chunk per plane)."""
        return (ds.compression == "gzip" and ds.chunks is not None) or (ds.ndim == 3 and 0 in ds.shape)


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
