"""Decoding an image's pixels: the photo, and its ground truth (VOC palette PNGs or SBD .mat)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core.classes import NUM_CLASSES
from ..core.errors import DataError
from ..core.records import BadRecord, ImageRecord
from .sbd import load_mat_struct, read_sbd_instances

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


def _load_png_indices(path: str, record: ImageRecord | BadRecord) -> np.ndarray:
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


def _check_shape(labels: np.ndarray, path: str, record: ImageRecord | BadRecord) -> np.ndarray:
    if isinstance(record, BadRecord):           # its annotation is unreadable: no size to check against
        return labels
    if labels.shape != (record.height, record.width):
        raise DataError(path, f"ground truth is {labels.shape[1]}x{labels.shape[0]} but the image "
                              f"is {record.width}x{record.height}", record.image_id)
    return labels


def load_class_gt(record: ImageRecord | BadRecord) -> np.ndarray:
    """Ground-truth semantic labels (H, W) uint8: 0 background, 1..20, 255 void (also of an image
    whose annotation could not be read, when its ground truth can)."""
    path = record.class_gt_path
    if path is None:
        if isinstance(record, BadRecord):
            raise DataError(record.path, "no ground-truth segmentation for this image", record.image_id)
        raise DataError(record.annotation_path or record.image_path,
                        "no ground-truth segmentation for this image (SegmentationClass PNG "
                        "or SBD cls/*.mat)", record.image_id)
    if path.endswith(".mat"):
        _, seg = load_mat_struct(Path(path), "GTcls")
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
