"""Writing a finished store: the one finalize that runs, merges and retries share.

A store file exists only when it is complete: it is written under a temporary name beside its
final path, flushed to disk, and renamed into place (atomic on POSIX file systems), then the
folder entry is flushed too. Readers therefore see either no file or a finished one.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from ..core.output_root import tmp_path
from .entry import Entry
from .journal import fsync_dir
from .schema import FORMAT_NAME, FORMAT_VERSIONS, IMAGES, INDEX, INDEX_CRC, STR, index_checksum, small_metadata_cache


def write_store(store: str | os.PathLike, meta: dict[str, Any], ids: list[str],
                entries: Iterable[tuple[str, Entry | None, str]], format_name: str = FORMAT_NAME) -> None:
    """Write the complete store ``store``. ``entries`` yields ``(image_id, entry or None, error)``
    for every id of ``ids`` (in that order); ``meta`` becomes root attributes (``config``
    already JSON), to which the writer adds the format and the counts."""
    store = Path(store)
    tmp = tmp_path(store)
    try:
        _write(tmp, meta, ids, entries, format_name)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, store)
    except (OSError, RuntimeError) as exc:     # HDF5 reports a full disk as either, over many lines
        tmp.unlink(missing_ok=True)
        raise OSError(getattr(exc, "errno", None), one_line(exc), str(store)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(store.parent)


def one_line(exc: BaseException) -> str:
    """What the system said about a failed write, in one line: ``No space left on device`` from an
    OSError, or from the ``error message = '...'`` HDF5 puts in its multi-line messages."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    found = re.search(r"error message = '([^']+)'", str(exc))
    if found:
        return found.group(1)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _write(path: Path, meta: dict[str, Any], ids: list[str], entries: Iterable[tuple[str, Entry | None, str]],
           format_name: str) -> None:
    n = len(ids)
    done = np.zeros(n, dtype=np.uint8)
    errors = [""] * n
    heights = np.zeros(n, dtype=np.int32)
    widths = np.zeros(n, dtype=np.int32)
    counts = np.zeros(n, dtype=np.int32)
    checksums = np.zeros(n, dtype=np.uint32)
    position = {image_id: i for i, image_id in enumerate(ids)}
    with h5py.File(path, "w", libver=("earliest", "latest")) as f:
        small_metadata_cache(f)
        images = f.create_group(IMAGES)
        for image_id, entry, error in entries:
            i = position[image_id]
            if entry is None:
                errors[i] = error
                continue
            entry.write(images.create_group(image_id))
            done[i] = 1
            heights[i], widths[i], counts[i] = entry.height, entry.width, entry.num_objects
            checksums[i] = entry.checksum()
        index = f.create_group(INDEX)
        index.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        index.create_dataset("done", data=done)
        index.create_dataset("error", data=np.array(errors, dtype=object), dtype=STR)
        index.create_dataset("height", data=heights)
        index.create_dataset("width", data=widths)
        index.create_dataset("num_objects", data=counts)
        index.create_dataset("checksum", data=checksums)
        attrs = dict(meta)
        attrs.update(format=format_name, format_version=FORMAT_VERSIONS[format_name], num_images=n,
                     num_done=int(done.sum()), num_failed=int(n - done.sum()), complete=True)
        attrs[INDEX_CRC] = index_checksum(attrs, ids, done, errors, heights, widths, counts, checksums)
        for key, value in attrs.items():
            f.attrs[key] = value
