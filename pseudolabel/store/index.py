"""Opening a finished store and reading its index: what the readers, the runner (resume, retry),
merges, ``cache list`` and ``info`` use instead of HDF5 paths of their own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.errors import StoreError
from ..core.records import id_problem
from ..core.output_root import journal_dir
from .entry import FRAME_ATTRS, Entry
from .journal import Journal
from .schema import (EDGE_FORMAT_NAME, FORMAT_VERSIONS, small_metadata_cache, IMAGES, INDEX, INDEX_CRC, PROPOSAL_FORMAT_NAME,
                     READABLE_VERSIONS, decode_str, index_checksum, read_meta)

H5_ERRORS = (Exception,)
"""What reading a damaged file raises: h5py gives OSError, KeyError, RuntimeError, ValueError, and
for a damaged link an AttributeError further on; any error while reading a store's own bytes means
it is damaged."""


def require_store(path: Path) -> None:
    """A StoreError when ``path`` is not there, saying whether a run of it is in progress."""
    if path.exists():
        return
    journal = Journal(journal_dir(path))
    if journal.exists():
        m = journal.manifest()
        done = len(journal.finished())
        raise StoreError(
            f"{path}: store is incomplete ({done} of {len(m.get('ids', []))} images written); "
            f"a run of stage '{m.get('stage')}' is in progress or was interrupted: rerun it to finish")
    raise StoreError(f"{path}: no such label store")


def open_checked(path: str | os.PathLike, format_name: str | None = None) -> h5py.File:
    """Open a finished store read-only, checking format (any of ours when ``format_name`` is
    None), version and completion."""
    path = Path(path)
    try:
        f = small_metadata_cache(h5py.File(path, "r"))
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from None
    try:
        try:
            meta = read_meta(f)
        except H5_ERRORS as exc:
            raise StoreError(f"{path}: damaged store: its attributes cannot be read ({exc})") from None
        expected = (format_name,) if format_name else tuple(READABLE_VERSIONS)
        if meta.get("format") not in expected:
            kind = {PROPOSAL_FORMAT_NAME: "proposal store", EDGE_FORMAT_NAME: "edge store"}.get(format_name, "label store")
            raise StoreError(f"{path}: not a pseudolabel {kind} (format attribute is "
                             f"{meta.get('format')!r}, expected {' or '.join(map(repr, expected))})")
        fmt = meta["format"]
        if meta.get("format_version") not in READABLE_VERSIONS[fmt]:
            raise StoreError(f"{path}: store format version {meta.get('format_version')} is not "
                             f"supported by this reader (version {FORMAT_VERSIONS[fmt]}); regenerate it "
                             f"with this version of pseudolabel (--force)")
        if not meta.get("complete"):
            raise StoreError(f"{path}: store is marked incomplete; rerun its stage to finish it")
    except BaseException:
        f.close()
        raise
    return f


@dataclass
class StoreIndex:
    """A finished store's root attributes and index: one row per image of the split, in split
    order."""

    path: Path
    meta: dict[str, Any]
    ids: list[str]
    done: np.ndarray                      # (N,) bool
    errors: list[str]
    num_objects: np.ndarray               # (N,) int: objects, or proposals in a proposal store
    checksums: np.ndarray | None = None   # (N,) uint32 Entry.checksum of each done image (format 2)
    position: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.position = {image_id: i for i, image_id in enumerate(self.ids)}

    @classmethod
    def read(cls, f: h5py.File, path: str | os.PathLike) -> "StoreIndex":
        """The index of an open store; a StoreError naming the file when it is damaged."""
        try:
            index = f[INDEX]
            arrays = {name: index[name][()] for name in ("ids", "done", "error", "height", "width", "num_objects")}
            checksums = index["checksum"][()] if "checksum" in index else None
            meta = read_meta(f)
            raw = {k: v for k, v in f.attrs.items()}
        except H5_ERRORS as exc:
            raise StoreError(f"{path}: damaged store: its index cannot be read ({exc})") from None
        ids, errors = [decode_str(s) for s in arrays["ids"]], [decode_str(s) for s in arrays["error"]]
        if meta.get("format_version", 1) >= 2:          # the format decides what the store must carry
            missing = [what for what, there in ((f"the {INDEX_CRC} attribute", INDEX_CRC in meta),
                                                ("index/checksum", checksums is not None)) if not there]
            if missing:
                raise StoreError(f"{path}: damaged store: {' and '.join(missing)} missing (a format-"
                                 f"{meta['format_version']} store carries checksums of its index and images)")
            if index_checksum(raw, ids, arrays["done"], errors, arrays["height"], arrays["width"],
                              arrays["num_objects"], checksums) != meta[INDEX_CRC]:
                raise StoreError(f"{path}: damaged store: its index does not match its checksum")
        bad = next(((i, p) for i in ids if (p := id_problem(i))), None)
        if bad is not None:
            raise StoreError(f"{path}: damaged store: its index holds the image id {bad[0]!r}, which is {bad[1]}")
        lengths = {len(ids), len(errors), *(len(arrays[k]) for k in ("done", "height", "width", "num_objects"))}
        if len(lengths) != 1 or (checksums is not None and len(checksums) != len(ids)):
            raise StoreError(f"{path}: damaged store: the arrays of its index differ in length")
        return cls(path=Path(path), meta=meta, ids=ids, done=arrays["done"].astype(bool), errors=errors,
                   num_objects=arrays["num_objects"], checksums=checksums)

    @classmethod
    def open(cls, path: str | os.PathLike, format_name: str | None = None) -> "StoreIndex":
        with open_checked(path, format_name) as f:
            return cls.read(f, path)

    @property
    def done_ids(self) -> list[str]:
        return [i for i, d in zip(self.ids, self.done) if d]

    @property
    def failed(self) -> dict[str, str]:
        """``{image_id: reason}`` of the images recorded as failed."""
        return {i: e for i, d, e in zip(self.ids, self.done, self.errors) if not d}

    @property
    def num_done(self) -> int:
        return int(self.done.sum())

    @property
    def num_failed(self) -> int:
        return len(self.ids) - self.num_done


def read_entry(f: h5py.File, index: StoreIndex, image_id: str) -> Entry:
    """Image ``image_id``'s raw entry from the open store ``f``, checked against the index's
    checksum (format 2); a damaged image is a StoreError naming the file and the image."""
    j = index.position[image_id]
    try:
        entry = Entry.read(f[IMAGES][image_id], int(index.num_objects[j]))
    except H5_ERRORS as exc:
        raise StoreError(f"{index.path}: image '{image_id}' is damaged and cannot be read ({exc})") from None
    if index.checksums is not None and entry.checksum() != int(index.checksums[j]):
        raise StoreError(f"{index.path}: image '{image_id}' is damaged: its data does not match its checksum")
    if index.meta.get("format_version", 1) >= 3 and not all(a in entry.attrs for a in FRAME_ATTRS):
        raise StoreError(f"{index.path}: image '{image_id}' is damaged: its frame ({', '.join(FRAME_ATTRS)}) is "
                         f"missing (a format-3 store records it for every image)")
    return entry


class StoreFile:
    """A finished store held open for reading raw entries (merges, retries): ``with
    StoreFile(path) as s: s.index, s.entry(image_id)``."""

    def __init__(self, path: str | os.PathLike, format_name: str | None = None):
        self.path = Path(path)
        self.file = open_checked(self.path, format_name)
        try:
            self.index = StoreIndex.read(self.file, self.path)
        except BaseException:
            self.file.close()
            raise

    def entry(self, image_id: str) -> Entry:
        """A done image's entry as stored (compressed chunks as they are), checked against its
        checksum; a StoreError naming the file and the image when it is damaged."""
        return read_entry(self.file, self.index, image_id)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "StoreFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
