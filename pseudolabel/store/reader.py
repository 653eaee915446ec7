"""Reading stores: :class:`LabelStore` for a trainer, :class:`ProposalStore`, :func:`describe` for
``info``.

Readers open their HDF5 file lazily, once per process, so a reader can be created in the parent
and used inside ``torch.utils.data.DataLoader`` workers (each worker opens its own handle after
the fork/spawn; no open handle is ever pickled).
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.classes import LabelSpace
from ..core.errors import StoreError
from ..core.labels import proposal_union
from ..core.output_root import journal_dir
from .entry import decoded, unpack_membership
from .index import StoreIndex, open_checked, read_entry, require_store
from .journal import Journal
from .schema import EDGE_FORMAT_NAME, FORMAT_NAME, IMAGES, PROPOSAL_FORMAT_NAME, plain, read_meta, small_metadata_cache


@dataclass
class Sample:
    """One image's pseudo label. Frames: original image pixels; boxes 0-based half-open
    ``(x0, y0, x1, y1)``; ``filling_rate[c]`` is NaN for classes without boxes."""

    image_id: str
    image_path: str
    label: np.ndarray            # (H, W) uint8: 0 bg, 1..C, 255 ignore
    boxes: np.ndarray            # (K, 4) int32
    classes: np.ndarray          # (K,) uint8, 1..C (the store's label space)
    difficult: np.ndarray        # (K,) bool
    truncated: np.ndarray        # (K,) bool
    filling_rate: np.ndarray     # (C + 1,) float32 (21 for VOC)
    masks: np.ndarray | None = None   # (K, H, W) bool, when asked for
    maps: np.ndarray | None = None    # (K, H, W) float32, when the stage stores soft maps
    planes: dict[str, np.ndarray] = field(default_factory=dict)  # further (K, H, W) bool *_masks, when asked for
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)   # of the stage that made the store
    source_ids: np.ndarray | None = None   # (K,) int64 the dataset's own annotation ids (COCO), when it has them


@dataclass
class Proposals:
    """One image's segment proposals: ``superpixels`` (H, W) int32 ids 0..n-1 and
    ``membership`` (P, n) CSR bool, row p = the superpixels of proposal p."""

    image_id: str
    superpixels: np.ndarray
    membership: Any
    attrs: dict[str, Any] = field(default_factory=dict)

    def decode(self, p: int) -> np.ndarray:
        """(H, W) bool mask of proposal p."""
        return proposal_union(self.superpixels, self.membership, [p])


class _Store:
    """Shared by the readers: validation, the index, lazy per-process opening."""

    format_name = FORMAT_NAME

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        require_store(self.path)
        index = StoreIndex.open(self.path, self.format_name)
        self.index = index
        self.meta = index.meta
        self.all_ids = index.ids
        self.ids = index.done_ids
        self.failed = index.failed
        self._position = {image_id: k for k, image_id in enumerate(self.ids)}
        self._file: h5py.File | None = None
        self._pid: int | None = None

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def stage(self) -> str:
        return self.meta["stage"]

    @property
    def labels(self) -> LabelSpace:
        """The classes of the store's labels (VOC's for stores written before stores recorded them)."""
        return LabelSpace.from_attrs(self.meta)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._position

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = small_metadata_cache(h5py.File(self.path, "r"))
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def _entry(self, key: int | str):
        """``(image_id, entry)``: the image's raw entry, checked against its checksum (a damaged
        image is a StoreError naming the file and the image)."""
        if isinstance(key, (int, np.integer)):
            if not -len(self.ids) <= key < len(self.ids):
                raise IndexError(f"index {key} out of range for {len(self.ids)} finished images")
            image_id = self.ids[key]
        else:
            image_id = key
            if image_id not in self._position:
                if image_id in self.failed:
                    raise KeyError(f"image '{image_id}' failed in this run: {self.failed[image_id]}")
                raise KeyError(f"image '{image_id}' is not in store {self.path}")
        try:
            handle = self._handle()
        except OSError as exc:
            raise StoreError(f"{self.path}: not a readable HDF5 file any more ({exc})") from None
        return image_id, read_entry(handle, self.index, image_id)

    def image_attr(self, image_id: str, name: str, default: Any = None) -> Any:
        """One attribute of a finished image's group (``image_path``, ``orientation``, ...) without
        reading its arrays (exports name their files from them before writing any)."""
        try:
            value = self._handle()[IMAGES][image_id].attrs.get(name, default)
        except (KeyError, OSError, RuntimeError) as exc:
            raise StoreError(f"{self.path}: image '{image_id}' is damaged and cannot be read ({exc})") from None
        return plain(value)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, stage={self.meta.get('stage')!r}, "
                f"images={len(self)}, failed={len(self.failed)})")


class LabelStore(_Store):
    """Random access to a finished label store, by index (over the images that were
    labelled, in split order) or by image id. ``load_masks``: samples carry the per-object
    masks (and maps, planes) too.

    >>> store = LabelStore("cache/VOC2012/train/boxes.h5")
    >>> sample = store["2007_000032"]; sample.label.shape, sample.filling_rate[15]
    """

    def __init__(self, path: str | os.PathLike, *, load_masks: bool = False):
        super().__init__(path)
        self.load_masks = load_masks

    def __getitem__(self, key: int | str) -> Sample:
        return self.read(key)

    def read(self, key: int | str, *, masks: bool | None = None) -> Sample:
        """One sample; ``masks`` overrides the store's ``load_masks`` for this call."""
        masks = self.load_masks if masks is None else masks
        image_id, entry = self._entry(key)
        a = entry.arrays
        try:
            return Sample(
                image_id=image_id,
                image_path=entry.image_path,
                label=decoded(a["label"]),
                boxes=decoded(a["boxes"]),
                classes=decoded(a["classes"]),
                difficult=decoded(a["difficult"]).astype(bool),
                truncated=decoded(a["truncated"]).astype(bool),
                filling_rate=decoded(a["filling_rate"]),
                source_ids=decoded(a["source_ids"]) if "source_ids" in a else None,
                masks=decoded(a["masks"]).astype(bool) if masks else None,
                maps=decoded(a["maps"]).astype(np.float32) if (masks and "maps" in a) else None,
                planes={k: decoded(v).astype(bool) for k, v in a.items() if k.endswith("_masks")} if masks else {},
                objects=dict(entry.objects or {}),
                attrs={"height": entry.height, "width": entry.width, **entry.attrs},
                config=self.config,
            )
        except (KeyError, zlib.error, ValueError) as exc:
            raise StoreError(f"{self.path}: image '{image_id}' is damaged and cannot be read ({exc})") from None


class ProposalStore(_Store):
    """Random access to a finished proposal store (``pseudolabel proposals``)."""

    format_name = PROPOSAL_FORMAT_NAME

    def __getitem__(self, key: int | str) -> Proposals:
        import scipy.sparse as sparse

        image_id, entry = self._entry(key)
        a = entry.arrays
        try:
            sp = decoded(a["superpixels"])
            n = int(entry.attrs["num_superpixels"])
            if "membership" in a:                              # format 2: packed bits
                membership = unpack_membership(decoded(a["membership"]), n)
            else:                                              # format 1: CSR
                indptr, indices = decoded(a["indptr"]), decoded(a["indices"])
                membership = sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr),
                                               shape=(len(indptr) - 1, n))
        except (KeyError, zlib.error, ValueError) as exc:
            raise StoreError(f"{self.path}: image '{image_id}' is damaged and cannot be read ({exc})") from None
        attrs = {"height": entry.height, "width": entry.width, "image_path": entry.image_path, **entry.attrs}
        return Proposals(image_id=image_id, superpixels=sp, membership=membership, attrs=attrs)


@dataclass
class EdgeMaps:
    """One image's boundary maps: ``edges`` (H, W) float32 in [0, 1] (the detector's fused
    output, stored to 1/255) and ``thin`` (the same after non-maximum suppression)."""

    image_id: str
    edges: np.ndarray
    thin: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


class EdgeStore(_Store):
    """Random access to a finished edge store (``pseudolabel edges``)."""

    format_name = EDGE_FORMAT_NAME

    def __getitem__(self, key: int | str) -> EdgeMaps:
        image_id, entry = self._entry(key)
        try:
            edges, thin = (decoded(entry.arrays[k]).astype(np.float32) / 255.0 for k in ("edges", "thin"))
        except (KeyError, zlib.error, ValueError) as exc:
            raise StoreError(f"{self.path}: image '{image_id}' is damaged and cannot be read ({exc})") from None
        attrs = {"height": entry.height, "width": entry.width, "image_path": entry.image_path, **entry.attrs}
        return EdgeMaps(image_id=image_id, edges=edges, thin=thin, attrs=attrs)


def open_store(path: str | os.PathLike, **kwargs) -> LabelStore | ProposalStore | EdgeStore:
    """The right reader for whatever store ``path`` is."""
    path = Path(path)
    require_store(path)
    with open_checked(path) as f:
        fmt = read_meta(f)["format"]
    if fmt == PROPOSAL_FORMAT_NAME:
        return ProposalStore(path)
    if fmt == EDGE_FORMAT_NAME:
        return EdgeStore(path)
    return LabelStore(path, **kwargs)


def describe(path: str | os.PathLike, check: bool = False) -> dict[str, Any]:
    """What ``pseudolabel info`` prints: schema version, provenance, counts, size on disk.
    Works on a finished store and on a run in progress (its journal). ``check``: also
    :func:`check_store` (``"damaged"``: image id -> problem; ``"checked"``: images read)."""
    path = Path(path)
    if not path.exists():
        journal = Journal(journal_dir(path))
        if journal.exists():
            m = journal.manifest()
            state = journal.finished()
            return {
                "path": str(path), "complete": False, "stage": m.get("stage"),
                "dataset": m.get("dataset"), "dataset_root": m.get("dataset_root"),
                "split": m.get("split"), "config": json.loads(m["config"]) if "config" in m else None,
                "created": m.get("created"),
                "package_version": m.get("package_version"),
                "num_images": len(m.get("ids", [])),
                "num_done": sum(v == "done" for v in state.values()),
                "num_failed": sum(v == "failed" for v in state.values()),
                "size_bytes": sum(p.stat().st_size for p in journal.dir.iterdir() if p.is_file()),
            }
        raise StoreError(f"{path}: no such label store")
    with open_checked(path, None) as f:
        index = StoreIndex.read(f, path)
        meta = dict(index.meta)
        if check:
            meta["damaged"] = check_store(f, index)
            meta["checked"] = index.num_done
            meta["checksums"] = index.checksums is not None
    meta["path"] = str(path)
    meta["size_bytes"] = path.stat().st_size
    return meta


def check_store(f: h5py.File, index: StoreIndex) -> dict[str, str]:
    """Read every finished image of the open store ``f`` once: its raw entry checked against its
    checksum (format 2), and every compressed array decompressed. Returns the damaged images,
    id -> problem (empty when every image read back as written)."""
    damaged = {}
    for image_id in index.done_ids:
        try:
            entry = read_entry(f, index, image_id)
            for value in entry.arrays.values():
                decoded(value)
        except StoreError as exc:
            damaged[image_id] = str(exc).split(f"image '{image_id}' ", 1)[-1]
        except (zlib.error, ValueError) as exc:
            damaged[image_id] = f"is damaged and cannot be decompressed ({exc})"
    return damaged
