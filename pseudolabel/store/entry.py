"""One image's content in a store: built once from a stage's result (in the worker), kept in the
journal, written into the HDF5 file, and read back raw for merges and retries. The one place
that knows what an image's group holds (``docs/STORE.md``, "Layout").
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from ..core.classes import IGNORE, VOC, LabelSpace
from ..core.labels import filling_rates
from ..core.records import ImageRecord
from ..core.results import EdgeResult, ProposalResult, StageResult
from .schema import ChunkedArray, plain

LABEL_ARRAYS = ("label", "masks", "maps", "boxes", "classes", "difficult", "truncated", "filling_rate", "source_ids")
"""Datasets of a label store's ``images/<id>/``, in the order they are written; then the stage's
``*_masks`` planes and the ``objects/`` sub-group."""
EDGE_ARRAYS = ("edges", "thin")
"""Datasets of an edge store's ``images/<id>/``: (H, W) uint8, boundary strength x 255."""
PROPOSAL_ARRAYS = ("superpixels", "membership")
"""Datasets of a proposal store's ``images/<id>/`` (format 2; format 1 had ``indptr`` and
``indices``, a CSR membership, instead of ``membership``)."""
OBJECTS = "objects"
GROUP_ATTRS = ("height", "width", "image_path")
"""Attributes every image group has; the stage's own per-image scalars come after them."""


@dataclass
class Entry:
    """What the store keeps for one image. ``num_objects`` is K (label stores) or the number of
    proposals (proposal stores); ``arrays`` are the group's datasets in write order
    (:class:`ChunkedArray` for image-sized ones, compressed in the worker); ``objects`` the
    per-object arrays of a label store (None in a proposal store); ``attrs`` the stage's
    per-image scalars."""

    image_path: str
    height: int
    width: int
    num_objects: int
    arrays: dict[str, Any]
    objects: dict[str, np.ndarray] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def checksum(self) -> int:
        """CRC-32 of everything the store keeps for the image, as it is stored: its attributes and,
        per dataset in name order, the name, dtype, shape and bytes (the compressed chunks of an
        image-sized array). The same for the entry a worker built and the entry read back from the
        file, so a reader can tell a damaged image from a good one (``index/checksum``)."""
        head = {"image_path": self.image_path, "height": int(self.height), "width": int(self.width),
                "attrs": {k: plain(v) for k, v in self.attrs.items()}}
        crc = zlib.crc32(json.dumps(head, sort_keys=True).encode())
        for name in sorted(self.arrays):
            crc = _crc_array(crc, name, self.arrays[name])
        if self.objects is not None:
            crc = zlib.crc32(OBJECTS.encode(), crc)
            for name in sorted(self.objects):
                crc = _crc_array(crc, f"{OBJECTS}/{name}", self.objects[name])
        return crc

    def nbytes(self) -> int:
        """Bytes held in memory (compressed for image-sized arrays)."""
        total = sum(v.nbytes if isinstance(v, (ChunkedArray, np.ndarray)) else 0 for v in self.arrays.values())
        return total + sum(np.asarray(v).nbytes for v in (self.objects or {}).values())

    # -- HDF5 ----------------------------------------------------------------------
    def write(self, group: h5py.Group) -> None:
        group.attrs["height"] = int(self.height)
        group.attrs["width"] = int(self.width)
        group.attrs["image_path"] = self.image_path
        for key, value in self.attrs.items():
            group.attrs[key] = value
        for key, value in self.arrays.items():
            if isinstance(value, ChunkedArray):
                value.write(group, key)
            else:
                group.create_dataset(key, data=np.asarray(value))
        if self.objects is not None:
            objects = group.create_group(OBJECTS)
            for key, value in self.objects.items():
                objects.create_dataset(key, data=value)

    @classmethod
    def read(cls, group: h5py.Group, num_objects: int) -> "Entry":
        """An entry as it was written, image-sized datasets as their compressed bytes (a merge or
        a retry copies them without decompressing)."""
        attrs = {k: plain(v) for k, v in group.attrs.items()}
        entry = cls(image_path=str(attrs.pop("image_path")), height=int(attrs.pop("height")),
                    width=int(attrs.pop("width")), num_objects=int(num_objects), arrays={}, attrs=attrs)
        for key, ds in group.items():
            if key == OBJECTS:
                entry.objects = {k: v[()] for k, v in ds.items()}
            elif ChunkedArray.is_chunked(ds):
                entry.arrays[key] = ChunkedArray.read(ds)
            else:
                entry.arrays[key] = ds[()]
        return entry

    # -- journal (one uncompressed .npz per image; the names are the journal's format) --------
    def to_npz(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"image_path": np.array(self.image_path), "height": np.asarray(self.height),
                                      "width": np.asarray(self.width), "num_objects": np.asarray(self.num_objects)}
        for key, value in self.arrays.items():
            if isinstance(value, ChunkedArray):
                out[f"{key}.chunked"] = np.frombuffer(b"".join(value.chunks), np.uint8)
                out[f"{key}.sizes"] = np.array([len(c) for c in value.chunks], dtype=np.int64)
                out[f"{key}.shape"] = np.array(value.shape, dtype=np.int64)
                out[f"{key}.dtype"] = np.array(value.dtype)
            else:
                out[key] = np.asarray(value)
        if self.objects is not None:
            out[OBJECTS] = np.array(len(self.objects))          # marks the group even when empty
            for name, arr in self.objects.items():
                out[f"{OBJECTS}.{name}"] = np.asarray(arr)
        out["attrs"] = np.array(json.dumps(self.attrs))
        return out

    @classmethod
    def from_npz(cls, data) -> "Entry":
        """The inverse of :meth:`to_npz` (``data``: an open ``np.load`` of the file)."""
        arrays: dict[str, Any] = {}
        objects: dict[str, np.ndarray] | None = None
        scalars: dict[str, Any] = {}
        attrs: dict[str, Any] = {}
        for key in data.files:
            if key == OBJECTS:
                objects = objects if objects is not None else {}
            elif key.startswith(OBJECTS + "."):
                objects = objects if objects is not None else {}
                objects[key[len(OBJECTS) + 1:]] = data[key]
            elif key == "attrs":
                attrs = json.loads(str(data[key]))
            elif key.endswith(".chunked"):
                name = key[: -len(".chunked")]
                blob, sizes = data[key].tobytes(), data[f"{name}.sizes"]
                ends = np.cumsum(sizes)
                arrays[name] = ChunkedArray(tuple(int(n) for n in data[f"{name}.shape"]), str(data[f"{name}.dtype"]),
                                            [blob[e - n:e] for e, n in zip(ends, sizes)])
            elif key in ("image_path", "height", "width", "num_objects"):
                scalars[key] = data[key].item()
            elif "." not in key:
                arrays[key] = data[key]
        return cls(image_path=str(scalars["image_path"]), height=int(scalars["height"]), width=int(scalars["width"]),
                   num_objects=int(scalars["num_objects"]), arrays=arrays, objects=objects, attrs=attrs)


def _crc_array(crc: int, name: str, value) -> int:
    """An array into the CRC: name, dtype, shape, then its bytes (compressed chunks as stored; none
    for an empty array, however it is stored)."""
    if isinstance(value, ChunkedArray):
        crc = zlib.crc32(f"{name}|{np.dtype(value.dtype).str}|{tuple(value.shape)}".encode(), crc)
        if 0 not in value.shape:
            for chunk in value.chunks:
                crc = zlib.crc32(chunk, crc)
        return crc
    arr = np.ascontiguousarray(value)
    crc = zlib.crc32(f"{name}|{arr.dtype.str}|{tuple(arr.shape)}".encode(), crc)
    return zlib.crc32(arr.tobytes(), crc)


def decoded(value) -> np.ndarray:
    """An entry array's values: a :class:`ChunkedArray` decompressed, anything else as it is."""
    return value.decode() if isinstance(value, ChunkedArray) else np.asarray(value)


FRAME_ATTRS = ("orientation", "exif_orientation")
"""Per-image attributes of the photo's frame (format 3): the EXIF orientation the labels follow (1:
the stored pixels) and the one the file carries (1: none)."""


def build_entry(record: ImageRecord, result: StageResult | ProposalResult | EdgeResult, frame=None,
                labels: LabelSpace = VOC) -> Entry:
    """What the store keeps for one image: the stage's arrays plus what the record knows (boxes,
    classes, flags, the dataset's own ids), the filling rates over the dataset's ``labels`` and the
    photo's frame (``catalog.pixels.Frame``: the EXIF orientation the arrays follow), checked for
    shape and value range; background pixels of the record's ignore regions (COCO's crowds) are 255.
    Image-sized arrays are compressed here, in the worker."""
    if isinstance(result, ProposalResult):
        entry = _proposal_entry(record, result)
    elif isinstance(result, EdgeResult):
        entry = _edge_entry(record, result)
    else:
        entry = _label_entry(record, result, labels)
    entry.attrs["orientation"] = int(frame.orientation) if frame is not None else 1
    entry.attrs["exif_orientation"] = int(frame.tag) if frame is not None else 1
    if record.source_id is not None:
        entry.attrs["source_id"] = int(record.source_id)
    return entry


def ignore_regions(label: np.ndarray, record: ImageRecord) -> np.ndarray:
    """``label`` with the background pixels of the record's ignore regions set to 255."""
    if not record.ignore_boxes:
        return label
    inside = np.zeros(label.shape, bool)
    for x0, y0, x1, y1 in record.ignore_boxes:
        inside[max(y0, 0):y1, max(x0, 0):x1] = True
    return np.where(inside & (label == 0), np.uint8(IGNORE), label).astype(np.uint8)


def _label_entry(record: ImageRecord, result: StageResult, labels: LabelSpace) -> Entry:
    shape, k = (record.height, record.width), len(record.objects)
    label = np.asarray(result.label)
    if label.shape != shape or label.dtype != np.uint8:
        raise TypeError(f"stage returned label {label.shape} {label.dtype}, expected {shape} uint8")
    bad = (label >= labels.num_classes) & (label != IGNORE)
    if bad.any():
        raise ValueError(f"stage returned label values outside 0..{labels.num_classes - 1}/255: {np.unique(label[bad])}")
    label = ignore_regions(label, record)
    masks = np.asarray(result.masks, dtype=bool)
    if masks.shape != (k, *shape):
        raise TypeError(f"stage returned masks {masks.shape}, expected {(k, *shape)}")
    for name, arr in result.objects.items():
        if len(arr) != k:
            raise TypeError(f"stage returned per-object array '{name}' of length {len(arr)}, expected {k}")
    boxes, classes = record.boxes(), record.classes()
    arrays: dict[str, Any] = {"label": ChunkedArray.encode(label), "masks": ChunkedArray.encode(masks.view(np.uint8))}
    if result.maps is not None:
        maps = np.asarray(result.maps, dtype=np.float16)
        if maps.shape != masks.shape:
            raise TypeError(f"stage returned maps {maps.shape}, expected {masks.shape}")
        arrays["maps"] = ChunkedArray.encode(maps)
    arrays.update({
        "boxes": boxes.astype(np.int32),
        "classes": classes.astype(np.uint8),
        "difficult": record.flags("difficult").view(np.uint8),
        "truncated": record.flags("truncated").view(np.uint8),
        "filling_rate": filling_rates(label, boxes, classes, labels.num_classes).astype(np.float32),
    })
    source_ids = record.source_ids()
    if source_ids is not None:
        arrays["source_ids"] = source_ids
    for name, arr in result.planes.items():
        arr = np.asarray(arr, dtype=bool)
        if not name.endswith("_masks") or name == "masks" or arr.shape != masks.shape:
            raise TypeError(f"stage returned plane '{name}' {arr.shape}: planes are named *_masks "
                            f"and shaped like masks {masks.shape}")
        arrays[name] = ChunkedArray.encode(arr.view(np.uint8))
    return Entry(image_path=record.image_path, height=shape[0], width=shape[1], num_objects=k, arrays=arrays,
                 objects=dict(result.objects), attrs=dict(result.attrs))


def _edge_entry(record: ImageRecord, result: EdgeResult) -> Entry:
    shape = (record.height, record.width)
    arrays = {}
    for name in EDGE_ARRAYS:
        arr = np.asarray(getattr(result, name), dtype=np.float32)
        if arr.shape != shape:
            raise TypeError(f"stage returned {name} {arr.shape}, expected {shape}")
        arrays[name] = ChunkedArray.encode(np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8))
    return Entry(image_path=record.image_path, height=shape[0], width=shape[1], num_objects=0, arrays=arrays,
                 attrs=dict(result.attrs))


def _proposal_entry(record: ImageRecord, result: ProposalResult) -> Entry:
    sp = np.asarray(result.superpixels)
    if sp.shape != (record.height, record.width):
        raise TypeError(f"stage returned superpixels {sp.shape}, expected {(record.height, record.width)}")
    m = result.membership.tocsr()
    n = int(sp.max()) + 1 if sp.size else 0
    if m.shape[1] != n:
        raise TypeError(f"membership has {m.shape[1]} columns but the image has {n} superpixels")
    return Entry(image_path=record.image_path, height=sp.shape[0], width=sp.shape[1], num_objects=int(m.shape[0]),
                 arrays={"superpixels": ChunkedArray.encode(sp.astype(np.int32)),
                         "membership": ChunkedArray.encode(pack_membership(m))},
                 attrs={"num_superpixels": n, "num_proposals": int(m.shape[0]), **result.attrs})


def pack_membership(membership) -> np.ndarray:
    """(P, n) sparse bool membership -> (P, ceil(n / 8)) uint8, row p's bit j (``np.packbits``
    order: most significant bit first) set when superpixel j is in proposal p. Proposals are unions
    of many superpixels, so bits compress far better than CSR indices (0.12 against 9.4 MiB per
    coco128-voc-dev image)."""
    import scipy.sparse as sparse
    P, n = membership.shape
    if not n:
        return np.zeros((P, 0), np.uint8)
    m = membership.tocsr()
    nnz = int(m.indptr[-1])
    stored = sparse.csr_matrix((np.ones(nnz, bool), m.indices[:nnz], m.indptr), shape=(P, n))
    return np.packbits(stored.toarray(), axis=1)     # every stored entry a bit, as scipy scatters it


def unpack_membership(bits: np.ndarray, n: int):
    """The inverse of :func:`pack_membership`: (P, n) CSR bool, indices sorted within rows."""
    import scipy.sparse as sparse
    dense = np.unpackbits(bits, axis=1, count=n).astype(bool) if n else np.zeros((len(bits), 0), bool)
    return sparse.csr_matrix(dense)
