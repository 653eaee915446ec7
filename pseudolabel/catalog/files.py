"""Files other tools made for an image: a learned edge detector's boundary maps and official
precomputed MCG proposals."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import DataError

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
