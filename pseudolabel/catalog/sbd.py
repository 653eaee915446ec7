"""SBD annotations: MATLAB structs (GTcls, GTinst); boxes are the tight boxes of the instance masks."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.classes import NUM_CLASSES
from ..core.errors import DataError
from ..core.records import BadRecord, ImageRecord, ObjectRecord

def load_mat_struct(path: Path, struct: str):
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
    gt, seg = load_mat_struct(path, "GTinst")
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


def sbd_record(sbd: Path, image_id: str, voc: Path | None = None) -> ImageRecord | BadRecord:
    inst_path = sbd / "inst" / f"{image_id}.mat"
    try:
        seg, cats = read_sbd_instances(inst_path)
    except DataError as err:
        cls = sbd / "cls" / f"{image_id}.mat"
        return BadRecord(image_id, err.path, err.problem, class_gt_path=str(cls) if cls.exists() else None)
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
