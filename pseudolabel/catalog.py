"""Dataset catalog: the only code that knows folder layouts and coordinate conventions.

Three layouts are recognised under a data root:

* **PASCAL VOC 2012** (the root itself, ``VOC2012/`` or ``VOCdevkit/VOC2012/``):
  ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``, ``ImageSets/Segmentation/<split>.txt``,
  and for evaluation ``SegmentationClass/<id>.png`` / ``SegmentationObject/<id>.png``
  (palette PNGs, 255 = void). Splits: every ``<split>.txt`` in ``ImageSets/Segmentation``.
* **SBD** (the root itself, ``SBD/``, ``benchmark_RELEASE/dataset/`` or ``dataset/``): ``img/<id>.jpg``,
  ``cls/<id>.mat`` (struct ``GTcls``), ``inst/<id>.mat`` (struct ``GTinst``),
  ``train.txt``, ``val.txt``. Splits ``train`` and ``val``; boxes are the tight boxes of the
  instance masks.
* **Both under one root**: the VOC splits, ``sbd_train``, ``sbd_val`` and ``train_aug``
  (SBD train + SBD val + VOC train, minus VOC val; 10,582 images on the real data). For an
  image VOC annotates, boxes come from its XML and ground truth from ``SegmentationClass``;
  otherwise both come from SBD.

Stages never see files: they get :class:`~pseudolabel.records.ImageRecord` objects and call
:func:`load_image`. Boxes are converted once, here, from VOC's 1-based inclusive corners to
the package's 0-based half-open convention (see :mod:`pseudolabel.records`).
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .classes import CLASS_ID, NUM_CLASSES, VOC_CLASSES
from .errors import DataError, LayoutError
from .records import BadRecord, ImageRecord, ObjectRecord

Record = ImageRecord | BadRecord

VOC_CANDIDATES = (".", "VOC2012", "VOCdevkit/VOC2012")
SBD_CANDIDATES = (".", "SBD", "sbd", "benchmark_RELEASE/dataset", "dataset")


# ----------------------------------------------------------------------------- layouts
def _is_voc(path: Path) -> bool:
    return (path / "JPEGImages").is_dir() and (path / "ImageSets" / "Segmentation").is_dir()


def _is_sbd(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("img", "cls", "inst"))


@dataclass(frozen=True)
class Dataset:
    """A data root resolved to its layout. ``voc`` and ``sbd`` are the folders found (or None)."""

    root: Path
    voc: Path | None
    sbd: Path | None

    @property
    def kind(self) -> str:
        return "voc+sbd" if self.voc and self.sbd else ("voc" if self.voc else "sbd")

    @property
    def name(self) -> str:
        """Short name used in cache paths: the data root's folder name."""
        return self.root.name or "data"

    def splits(self) -> list[str]:
        names: list[str] = []
        if self.voc:
            names += sorted(p.stem for p in (self.voc / "ImageSets" / "Segmentation").glob("*.txt"))
        if self.sbd and self.voc:
            names += ["sbd_train", "sbd_val", "train_aug"]
        elif self.sbd:
            names += ["train", "val"]
        return names

    # ------------------------------------------------------------------------- records
    def records(self, split: str) -> list[Record]:
        """Records of ``split`` in split-file order (``train_aug``: sorted ids). An image
        whose annotation is unreadable becomes a :class:`BadRecord` naming file and problem."""
        if split not in self.splits():
            raise LayoutError(
                f"unknown split '{split}' for the {self.kind} data at {self.root}; "
                f"available: {', '.join(self.splits()) or 'none'}"
            )
        if self.voc and self.sbd:
            if split == "train_aug":
                ids = self._train_aug_ids()
            elif split in ("sbd_train", "sbd_val"):
                ids = _read_id_list(self.sbd / f"{split[4:]}.txt")
            else:
                ids = _read_id_list(self.voc / "ImageSets" / "Segmentation" / f"{split}.txt")
        elif self.voc:
            ids = _read_id_list(self.voc / "ImageSets" / "Segmentation" / f"{split}.txt")
        else:
            ids = _read_id_list(self.sbd / f"{split}.txt")
        return [self._record(i) for i in ids]

    def _train_aug_ids(self) -> list[str]:
        seg = self.voc / "ImageSets" / "Segmentation"
        voc_train = _read_id_list(seg / "train.txt")
        voc_val = set(_read_id_list(seg / "val.txt")) if (seg / "val.txt").exists() else set()
        sbd = _read_id_list(self.sbd / "train.txt") + _read_id_list(self.sbd / "val.txt")
        return sorted(set(sbd).union(voc_train) - voc_val)

    def _record(self, image_id: str) -> Record:
        voc_xml = self.voc / "Annotations" / f"{image_id}.xml" if self.voc else None
        if self.voc and (not self.sbd or voc_xml.exists()):
            return _voc_record(self.voc, image_id)
        return _sbd_record(self.sbd, image_id, voc=self.voc)


def open_dataset(root: str | os.PathLike | None) -> Dataset:
    """Resolve a data root to its layout, or raise :class:`LayoutError` saying what was
    looked for."""
    if root is None or str(root) == "":
        raise LayoutError(
            "no data root given: pass --data-root DIR or set PSEUDOLABEL_DATA "
            "(a VOC2012 folder, an SBD folder, or a folder holding both)"
        )
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise LayoutError(f"{root}: data root does not exist or is not a folder")
    voc = next((root / c for c in VOC_CANDIDATES if _is_voc(root / c)), None)
    sbd = next((root / c for c in SBD_CANDIDATES if _is_sbd(root / c)), None)
    if voc is None and sbd is None:
        raise LayoutError(
            f"{root}: no dataset found. Expected a PASCAL VOC 2012 folder (JPEGImages/, "
            f"Annotations/, ImageSets/Segmentation/) or an SBD folder (img/, cls/, inst/), "
            f"at the root or under {', '.join(c for c in VOC_CANDIDATES + SBD_CANDIDATES if c != '.')}"
        )
    return Dataset(root=root, voc=voc.resolve() if voc else None, sbd=sbd.resolve() if sbd else None)


def _read_id_list(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LayoutError(f"{path}: split file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: cannot read split file ({exc})") from None
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    for image_id in ids:
        if "/" in image_id or "\0" in image_id or image_id in (".", ".."):
            raise LayoutError(f"{path}: invalid image id '{image_id}'")
    if len(set(ids)) != len(ids):
        raise LayoutError(f"{path}: the split lists some image ids more than once")
    return ids


# ----------------------------------------------------------------------------- VOC XML
def _voc_record(voc: Path, image_id: str) -> Record:
    xml_path = voc / "Annotations" / f"{image_id}.xml"
    try:
        width, height, objects = parse_voc_xml(xml_path)
    except DataError as err:
        return BadRecord(image_id, err.path, err.problem)
    cls_png = voc / "SegmentationClass" / f"{image_id}.png"
    obj_png = voc / "SegmentationObject" / f"{image_id}.png"
    return ImageRecord(
        image_id=image_id,
        image_path=str(voc / "JPEGImages" / f"{image_id}.jpg"),
        width=width,
        height=height,
        objects=objects,
        annotation_path=str(xml_path),
        class_gt_path=str(cls_png) if cls_png.exists() else None,
        object_gt_path=str(obj_png) if obj_png.exists() else None,
    )


def _xml_int(node: ET.Element, tag: str, where: str) -> float:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"missing <{tag}> in {where}")
    try:
        value = float(child.text.strip())
    except ValueError:
        raise ValueError(f"<{tag}> in {where} is not a number: '{child.text.strip()}'") from None
    if not math.isfinite(value):
        raise ValueError(f"<{tag}> in {where} is not a finite number: '{child.text.strip()}'")
    return value


def parse_voc_xml(path: str | os.PathLike) -> tuple[int, int, tuple[ObjectRecord, ...]]:
    """Read a VOC annotation: ``(width, height, objects)`` with boxes converted to 0-based
    half-open. Raises :class:`DataError` naming the file for anything malformed: syntax,
    missing fields, unknown class names, boxes outside the image or of zero area."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(path, "annotation file is missing") from None
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: unknown encoding
        raise DataError(path, f"malformed XML ({exc})") from None
    except OSError as exc:
        raise DataError(path, f"cannot read annotation ({exc.strerror or exc})") from None
    size = root.find("size")
    try:
        if size is None:
            raise ValueError("missing <size>")
        width, height = (_xml_int(size, "width", "<size>"), _xml_int(size, "height", "<size>"))
        if width != int(width) or height != int(height) or width <= 0 or height <= 0:
            raise ValueError(f"<size> must hold positive integers, got {width:g}x{height:g}")
        width, height = int(width), int(height)
    except ValueError as exc:
        raise DataError(path, f"malformed XML: {exc}") from None

    objects = []
    for k, node in enumerate(root.findall("object"), start=1):
        name_node = node.find("name")
        name = (name_node.text or "").strip() if name_node is not None else ""
        if not name:
            raise DataError(path, f"malformed XML: object {k} has no <name>")
        if name not in CLASS_ID or CLASS_ID[name] == 0:
            raise DataError(path, f"unknown class name '{name}' (object {k}); expected one of: "
                                  f"{', '.join(VOC_CLASSES[1:])}")
        box_node = node.find("bndbox")
        try:
            if box_node is None:
                raise ValueError(f"object {k} ({name}) has no <bndbox>")
            where = f"<bndbox> of object {k} ({name})"
            xmin, ymin, xmax, ymax = (_xml_int(box_node, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            raise DataError(path, f"malformed XML: {exc}") from None
        corners = f"xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g}"
        # Like most VOC tools (width = xmax - xmin), a box with xmax == xmin is degenerate,
        # although VOC's inclusive corners would make it one pixel wide.
        if xmax <= xmin or ymax <= ymin:
            raise DataError(path, f"box of object {k} ({name}) has zero area ({corners})")
        if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
            raise DataError(path, f"box of object {k} ({name}) lies outside the {width}x{height} "
                                  f"image ({corners}; VOC corners are 1-based, inclusive)")
        # VOC corners are 1-based and inclusive; ours are 0-based, half-open (records.py).
        box = (int(round(xmin)) - 1, int(round(ymin)) - 1, int(round(xmax)), int(round(ymax)))
        objects.append(ObjectRecord(
            class_id=CLASS_ID[name],
            box=box,
            difficult=_flag(node, "difficult"),
            truncated=_flag(node, "truncated"),
        ))
    return width, height, tuple(objects)


def _flag(node: ET.Element, tag: str) -> bool:
    child = node.find(tag)
    return child is not None and (child.text or "").strip() in ("1", "true", "True")


# ----------------------------------------------------------------------------- SBD .mat
def _load_mat_struct(path: Path, struct: str):
    from scipy.io import loadmat  # scipy comes with scikit-image; imported lazily (slow import)

    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataError(path, "MATLAB file is missing") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... on junk
        raise DataError(path, f"cannot read MATLAB file ({type(exc).__name__}: {exc})") from None
    if struct not in mat or not hasattr(mat[struct], "Segmentation"):
        raise DataError(path, f"MATLAB file has no {struct}.Segmentation")
    seg = np.asarray(mat[struct].Segmentation)
    if seg.ndim != 2 or seg.size == 0 or not np.issubdtype(seg.dtype, np.integer):
        raise DataError(path, f"{struct}.Segmentation is not a 2-D integer image (shape {seg.shape}, {seg.dtype})")
    return mat[struct], seg


def read_sbd_instances(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(segmentation (H, W) int, categories (N,) int)`` from an SBD ``inst/<id>.mat``:
    pixel value k in 1..N is instance k, whose class is ``categories[k-1]``."""
    path = Path(path)
    gt, seg = _load_mat_struct(path, "GTinst")
    raw = np.atleast_1d(np.asarray(getattr(gt, "Categories", np.zeros(0))))
    if raw.dtype == object or not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) \
            or not np.isfinite(raw.astype(np.float64)).all() or (raw != np.round(raw)).any():
        raise DataError(path, "GTinst.Categories is not a vector of whole numbers")
    cats = raw.astype(np.int64).ravel()
    if cats.size and (cats.min() < 1 or cats.max() >= NUM_CLASSES):
        raise DataError(path, f"GTinst.Categories holds class ids outside 1..20: {sorted(set(cats.tolist()))}")
    bad = (seg < 0) | ((seg > cats.size) & (seg != 255))
    if bad.any():
        raise DataError(path, f"GTinst.Segmentation holds instance ids without a category "
                              f"({sorted(set(np.unique(seg[bad]).tolist()))[:5]}; {cats.size} categories)")
    return seg.astype(np.int64), cats


def _sbd_record(sbd: Path, image_id: str, voc: Path | None = None) -> Record:
    inst_path = sbd / "inst" / f"{image_id}.mat"
    try:
        seg, cats = read_sbd_instances(inst_path)
    except DataError as err:
        return BadRecord(image_id, err.path, err.problem)
    objects = []
    for k, class_id in enumerate(cats, start=1):
        ys, xs = np.nonzero(seg == k)
        if ys.size == 0:  # an instance without pixels has no box
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        objects.append(ObjectRecord(class_id=int(class_id), box=box))
    image = sbd / "img" / f"{image_id}.jpg"
    if voc is not None and not image.exists() and (voc / "JPEGImages" / f"{image_id}.jpg").exists():
        image = voc / "JPEGImages" / f"{image_id}.jpg"
    return ImageRecord(
        image_id=image_id,
        image_path=str(image),
        width=int(seg.shape[1]),
        height=int(seg.shape[0]),
        objects=tuple(objects),
        annotation_path=str(inst_path),
        class_gt_path=str(sbd / "cls" / f"{image_id}.mat"),
        object_gt_path=str(inst_path),
    )


# ----------------------------------------------------------------------------- pixels
def load_image(record: ImageRecord) -> np.ndarray:
    """Decode the record's photo as (H, W, 3) uint8 RGB (grey-scale is replicated to three
    channels). Raises :class:`DataError` for a missing, unreadable or truncated file and for
    a size that disagrees with the annotation."""
    path = record.image_path
    try:
        with Image.open(path) as img:
            img.load()  # decodes fully: a truncated JPEG raises here instead of returning grey
            if img.mode in ("I", "F") or img.mode.startswith("I;16"):
                image = _deep_to_rgb(np.asarray(img), img.mode)
            else:
                image = np.array(img.convert("RGB"), dtype=np.uint8)  # writable (torch warns otherwise)
    except FileNotFoundError:
        raise DataError(path, "image file is missing", record.image_id) from None
    except Image.DecompressionBombError as exc:
        raise DataError(path, f"image is implausibly large ({exc})", record.image_id) from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not an image", record.image_id) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, NotImplementedError...
        raise DataError(path, f"cannot decode image (corrupt or not an image: {exc})", record.image_id) from None
    if image.shape[:2] != (record.height, record.width):
        raise DataError(
            path,
            f"image is {image.shape[1]}x{image.shape[0]} but its annotation "
            f"({record.annotation_path}) says {record.width}x{record.height}",
            record.image_id,
        )
    return np.ascontiguousarray(image)


def _deep_to_rgb(pixels: np.ndarray, mode: str) -> np.ndarray:
    """16-bit / 32-bit / float grey images to (H, W, 3) uint8: 16-bit values scaled by 1/256
    (Pillow's own conversion would clip them at 255), floats clipped to 0..255."""
    if mode == "F":
        grey = np.clip(pixels, 0, 255).astype(np.uint8)
    else:
        grey = np.clip(pixels.astype(np.int64) >> 8, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _load_png_indices(path: str, record: ImageRecord) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("P", "L"):
                raise DataError(path, f"label PNG must be palette or grey mode, not {img.mode}", record.image_id)
            labels = np.array(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(path, "ground-truth file is missing", record.image_id) from None
    except DataError:
        raise
    except Exception as exc:  # OSError, DecompressionBombError, NotImplementedError, ...
        raise DataError(path, f"cannot decode label PNG ({exc})", record.image_id) from None
    return labels


def _check_shape(labels: np.ndarray, path: str, record: ImageRecord) -> np.ndarray:
    if labels.shape != (record.height, record.width):
        raise DataError(path, f"ground truth is {labels.shape[1]}x{labels.shape[0]} but the image "
                              f"is {record.width}x{record.height}", record.image_id)
    return labels


def load_class_gt(record: ImageRecord) -> np.ndarray:
    """Ground-truth semantic labels (H, W) uint8: 0 background, 1..20, 255 void."""
    path = record.class_gt_path
    if path is None:
        raise DataError(record.annotation_path or record.image_path,
                        "no ground-truth segmentation for this image (SegmentationClass PNG "
                        "or SBD cls/*.mat)", record.image_id)
    if path.endswith(".mat"):
        _, seg = _load_mat_struct(Path(path), "GTcls")
        if seg.max() > 255 or seg.min() < 0:
            raise DataError(path, "GTcls.Segmentation holds values outside 0..255", record.image_id)
        labels = seg.astype(np.uint8)
    else:
        labels = _load_png_indices(path, record)
    bad = (labels >= NUM_CLASSES) & (labels != 255)
    if bad.any():
        raise DataError(path, f"ground truth holds class values outside 0..20/255: "
                              f"{sorted(set(np.unique(labels[bad]).tolist()))}", record.image_id)
    return _check_shape(labels, path, record)


def load_object_gt(record: ImageRecord) -> np.ndarray:
    """Ground-truth instances (H, W) uint8: 0 background, k = k-th object, 255 void."""
    path = record.object_gt_path
    if path is None:
        raise DataError(record.annotation_path or record.image_path,
                        "no instance ground truth for this image", record.image_id)
    if path.endswith(".mat"):
        seg, _ = read_sbd_instances(path)
        labels = seg.astype(np.uint8)
    else:
        labels = _load_png_indices(path, record)
    return _check_shape(labels, path, record)


# ----------------------------------------------------------------------------- edge maps
EDGE_MODES = {"L": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I": 65535.0}
"""Grey PNG modes of an edge map and the value that means "certainly a boundary"."""


def edge_file(directory: str | os.PathLike, image_id: str) -> Path:
    """The boundary map of an image in a folder of edge-detector outputs: ``<dir>/<id>.png``."""
    return Path(directory) / f"{image_id}.png"


def read_edge_map(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A learned edge detector's output (HED, structured edges, PiDiNet, ...) saved as a grey PNG,
    brighter = stronger boundary, 8 or 16 bits -> ``(H, W) float32`` in [0, 1] (divided by the
    largest value of its bit depth). ``shape`` ``(H, W)``: the image's size, which it must have."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in EDGE_MODES:
                raise DataError(path, f"an edge map must be a grey PNG of 8 or 16 bits, not mode {img.mode}")
            edges = np.asarray(img, dtype=np.float32) / EDGE_MODES[img.mode]
    except FileNotFoundError:
        raise DataError(path, "edge map is missing") from None
    except DataError:
        raise
    except Exception as exc:  # OSError, DecompressionBombError, ...
        raise DataError(path, f"cannot decode edge map PNG ({exc})") from None
    if shape is not None and edges.shape != tuple(shape):
        raise DataError(path, f"edge map is {edges.shape[1]}x{edges.shape[0]} but the image is {shape[1]}x{shape[0]}")
    return np.clip(edges, 0.0, 1.0)


# ----------------------------------------------------------------------------- MCG proposals
def mcg_file(directory: str | os.PathLike, image_id: str) -> Path:
    """The official MCG file of an image: ``<dir>/<id>.mat``; VOC 2007 images inside VOC 2012
    (``2007_000032``) are named without the prefix in the VOC 2007 archive (``000032.mat``)."""
    directory = Path(directory)
    path = directory / f"{image_id}.mat"
    if not path.exists() and image_id.startswith("2007_") and (directory / f"{image_id[5:]}.mat").exists():
        return directory / f"{image_id[5:]}.mat"
    return path


def read_mcg_proposals(path: str | os.PathLike, shape: tuple[int, int] | None = None):
    """Read an official precomputed MCG file: ``superpixels`` (H, W, 1-based) and ``labels``
    (a cell array of 1-based superpixel id lists, one per proposal, rank order). Returns
    ``(sp (H, W) int32 0-based, membership (P, n) CSR bool)``; empty proposals are dropped,
    ``scores`` and ``bboxes`` are not used (bboxes are not aligned with labels)."""
    import scipy.sparse as sparse
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path), squeeze_me=True, variable_names=("superpixels", "labels"))
    except FileNotFoundError:
        raise DataError(path, "MCG proposal file is missing") from None
    except Exception as exc:
        raise DataError(path, f"cannot read MATLAB file ({type(exc).__name__}: {exc})") from None
    for key in ("superpixels", "labels"):
        if key not in mat:
            raise DataError(path, f"MCG file has no '{key}' variable")
    sp = np.asarray(mat["superpixels"])
    if sp.ndim != 2 or not np.issubdtype(sp.dtype, np.integer) or sp.size == 0 or sp.min() < 1:
        raise DataError(path, f"'superpixels' must be a 2-D image of ids starting at 1 (got {sp.shape} {sp.dtype})")
    if shape is not None and sp.shape != tuple(shape):
        raise DataError(path, f"superpixels are {sp.shape[1]}x{sp.shape[0]} but the image is {shape[1]}x{shape[0]}")
    if sp.max() > np.iinfo(np.int32).max:
        raise DataError(path, f"'superpixels' holds ids beyond 2**31-1 ({int(sp.max())})")
    n = int(sp.max())
    labels = mat["labels"]
    if isinstance(labels, np.ndarray) and labels.dtype == object:
        cells = list(labels.ravel())
    else:  # a single proposal, squeezed by loadmat to a number or a numeric vector
        cells = [labels]
    rows, indptr = [], [0]
    for cell in cells:
        ids = np.atleast_1d(np.asarray(cell)).ravel()
        if ids.size == 0:
            continue
        if not np.issubdtype(ids.dtype, np.number) or not np.isfinite(ids.astype(np.float64)).all() \
                or (ids != np.round(ids)).any() or ids.min() < 1 or ids.max() > n:
            raise DataError(path, f"'labels' refers to superpixel ids that are not whole numbers in 1..{n}")
        ids = np.unique(ids.astype(np.int64)) - 1
        rows.append(ids)
        indptr.append(indptr[-1] + ids.size)
    indices = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    membership = sparse.csr_matrix((np.ones(indices.size, bool), indices, np.array(indptr)), shape=(len(rows), n))
    return (sp - 1).astype(np.int32), membership
