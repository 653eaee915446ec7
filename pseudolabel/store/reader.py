"""Reading stores: :class:`LabelStore` for a trainer, :class:`ProposalStore`, :func:`describe` for
``info``.

Readers open their HDF5 file lazily, once per process, so a reader can be created in the parent
and used inside ``torch.utils.data.DataLoader`` workers (each worker opens its own handle after
the fork/spawn; no open handle is ever pickled).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import StoreError
from ..labels import proposal_union
from ..layout import journal_dir
from .entry import OBJECTS, unpack_membership
from .index import StoreIndex, open_checked, require_store
from .journal import Journal
from .schema import FORMAT_NAME, IMAGES, PROPOSAL_FORMAT_NAME, plain, read_meta


@dataclass
class Sample:
    """One image's pseudo label. Frames: original image pixels; boxes 0-based half-open
    ``(x0, y0, x1, y1)``; ``filling_rate[c]`` is NaN for classes without boxes."""

    image_id: str
    image_path: str
    label: np.ndarray            # (H, W) uint8: 0 bg, 1..20, 255 ignore
    boxes: np.ndarray            # (K, 4) int32
    classes: np.ndarray          # (K,) uint8, 1..20
    difficult: np.ndarray        # (K,) bool
    truncated: np.ndarray        # (K,) bool
    filling_rate: np.ndarray     # (21,) float32
    masks: np.ndarray | None = None   # (K, H, W) bool, when asked for
    maps: np.ndarray | None = None    # (K, H, W) float32, when the stage stores soft maps
    planes: dict[str, np.ndarray] = field(default_factory=dict)  # further (K, H, W) bool *_masks, when asked for
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)   # of the stage that made the store


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

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._position

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
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

    def _group(self, key: int | str) -> tuple[str, h5py.Group]:
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
        return image_id, self._handle()[IMAGES][image_id]

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
        image_id, g = self._group(key)
        attrs = {k: plain(v) for k, v in g.attrs.items()}
        return Sample(
            image_id=image_id,
            image_path=str(attrs.pop("image_path")),
            label=g["label"][()],
            boxes=g["boxes"][()],
            classes=g["classes"][()],
            difficult=g["difficult"][()].astype(bool),
            truncated=g["truncated"][()].astype(bool),
            filling_rate=g["filling_rate"][()],
            masks=g["masks"][()].astype(bool) if masks else None,
            maps=g["maps"][()].astype(np.float32) if (masks and "maps" in g) else None,
            planes={k: g[k][()].astype(bool) for k in g if k.endswith("_masks")} if masks else {},
            objects={k: v[()] for k, v in g[OBJECTS].items()},
            attrs=attrs,
            config=self.config,
        )


class ProposalStore(_Store):
    """Random access to a finished proposal store (``pseudolabel proposals``)."""

    format_name = PROPOSAL_FORMAT_NAME

    def __getitem__(self, key: int | str) -> Proposals:
        import scipy.sparse as sparse

        image_id, g = self._group(key)
        sp = g["superpixels"][()]
        n = int(g.attrs["num_superpixels"])
        if "membership" in g:                                  # format 2: packed bits
            membership = unpack_membership(g["membership"][()], n)
        else:                                                  # format 1: CSR
            indptr, indices = g["indptr"][()], g["indices"][()]
            membership = sparse.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr),
                                           shape=(len(indptr) - 1, n))
        attrs = {k: plain(v) for k, v in g.attrs.items()}
        return Proposals(image_id=image_id, superpixels=sp, membership=membership, attrs=attrs)


def open_store(path: str | os.PathLike, **kwargs) -> LabelStore | ProposalStore:
    """The right reader for whatever store ``path`` is."""
    path = Path(path)
    require_store(path)
    with open_checked(path) as f:
        fmt = read_meta(f)["format"]
    return ProposalStore(path) if fmt == PROPOSAL_FORMAT_NAME else LabelStore(path, **kwargs)


def describe(path: str | os.PathLike, check: bool = False) -> dict[str, Any]:
    """What ``pseudolabel info`` prints: schema version, provenance, counts, size on disk.
    Works on a finished store and on a run in progress (its journal)."""
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
        meta = read_meta(f)
        if check:  # read every dataset once: a damaged chunk fails here, not in a trainer
            try:
                f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
            except Exception as exc:  # h5py raises OSError/RuntimeError on damaged chunks
                raise StoreError(f"{path}: damaged store ({exc})") from None
    meta["path"] = str(path)
    meta["size_bytes"] = path.stat().st_size
    return meta
