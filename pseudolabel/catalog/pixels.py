"""Decoding an image's pixels: the photo, and its ground truth (VOC palette PNGs or SBD .mat)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.classes import NUM_CLASSES
from ..core.errors import DataError
from ..core.records import BadRecord, ImageRecord
from .sbd import load_mat_struct, read_sbd_instances

ORIENTATION_TAG = 0x0112
"""EXIF's orientation tag: 1 upright; 2..8 the photo is stored mirrored and/or rotated, and viewers
and most loaders (cv2.imread, detectron2, mmcv, Ultralytics) turn it upright before use."""


@dataclass(frozen=True)
class Frame:
    """The frame an image's labels are made in. ``tag``: the EXIF orientation of the file (1 when
    it has none); ``applied``: whether the labels follow it (the photo turned upright, as EXIF-aware
    loaders see it) or the stored pixels (the tag ignored). ``orientation``: what a reader applies to
    the stored pixels to get the labels' frame (1: nothing)."""

    tag: int = 1
    applied: bool = False

    @property
    def orientation(self) -> int:
        return self.tag if self.applied else 1


def _decode_error(path, record, exc: Exception) -> DataError:
    image_id = getattr(record, "image_id", None)
    if isinstance(exc, FileNotFoundError):
        return DataError(path, "image file is missing", image_id)
    if isinstance(exc, Image.DecompressionBombError):
        return DataError(path, f"image is implausibly large ({exc})", image_id)
    if isinstance(exc, IsADirectoryError):
        return DataError(path, "is a folder, not an image", image_id)
    return DataError(path, f"cannot decode image (corrupt or not an image: {exc})", image_id)


def _tag(img: Image.Image) -> int:
    try:
        tag = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block is no tag
        return 1
    return tag if isinstance(tag, int) and 1 <= tag <= 8 else 1


def choose_frame(stored: tuple[int, int], tag: int, annotated: tuple[int, int]) -> Frame | None:
    """The frame whose size (width, height) the annotation gives: the tag's when its upright size
    fits (also when both fit: a 180-degree or mirrored tag, a square photo), the stored pixels'
    when only they fit; None when neither does."""
    upright = (stored[1], stored[0]) if tag in (5, 6, 7, 8) else stored
    if tag != 1 and annotated == upright:
        return Frame(tag, True)
    if annotated == stored:
        return Frame(tag, False)
    return None


def _size_problem(record: ImageRecord, stored: tuple[int, int], tag: int) -> str:
    where = f"its annotation ({record.annotation_path})" if record.annotation_path else "its annotation"
    upright = (stored[1], stored[0]) if tag in (5, 6, 7, 8) else stored
    turned = f" (and {upright[0]}x{upright[1]} turned upright by its EXIF orientation {tag})" \
        if tag != 1 and upright != stored else (f" (EXIF orientation {tag})" if tag != 1 else "")
    return f"image is {stored[0]}x{stored[1]}{turned} but {where} says {record.width}x{record.height}"


def photo_frame(record: ImageRecord) -> Frame:
    """The frame of the record's photo (see :class:`Frame`), read from its header only: cheap for
    stages that never decode the photo. A DataError when neither frame fits the annotation."""
    path = record.image_path
    try:
        with Image.open(path) as img:
            stored, tag = img.size, _tag(img)
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, ...
        raise _decode_error(path, record, exc) from None
    frame = choose_frame(stored, tag, (record.width, record.height))
    if frame is None:
        raise DataError(path, _size_problem(record, stored, tag), record.image_id)
    return frame


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels (H, W, ...) in the frame EXIF ``orientation`` (1..8) describes, as
    ``PIL.ImageOps.exif_transpose`` turns them."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    return np.ascontiguousarray(ops[orientation](pixels)) if orientation in ops else pixels


def decode(path, record=None) -> tuple[np.ndarray, int]:
    """A photo's stored pixels as (H, W, 3) uint8 RGB (grey-scale replicated to three channels)
    and its EXIF orientation tag; a DataError for a missing, unreadable or truncated file."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes fully: a truncated JPEG raises here instead of returning grey
            tag = _tag(img)
            if img.mode in ("I", "F") or img.mode.startswith("I;16"):
                image = _deep_to_rgb(np.asarray(img), img.mode)
            else:
                image = np.array(img.convert("RGB"), dtype=np.uint8)  # writable (torch warns otherwise)
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, NotImplementedError...
        raise _decode_error(path, record, exc) from None
    return image, tag


def load_image(record: ImageRecord, frame: Frame | None = None) -> np.ndarray:
    """The record's photo as (H, W, 3) uint8 RGB in the frame of its labels (``frame``, or the one
    :func:`photo_frame` chooses). Raises :class:`DataError` for a missing, unreadable or truncated
    file and for a size that fits the annotation in neither frame."""
    image, tag = decode(record.image_path, record)
    stored = (image.shape[1], image.shape[0])
    frame = frame if frame is not None and frame.tag == tag else choose_frame(stored, tag,
                                                                              (record.width, record.height))
    if frame is None:
        raise DataError(record.image_path, _size_problem(record, stored, tag), record.image_id)
    image = orient(image, frame.orientation)
    if image.shape[:2] != (record.height, record.width):
        raise DataError(record.image_path, _size_problem(record, stored, tag), record.image_id)
    return np.ascontiguousarray(image)


def load_photo(path, orientation: int = 1) -> np.ndarray:
    """A photo in the frame a store recorded for it (``orientation``, the store's per-image
    attribute): what readers (a trainer's dataset, the report, the demo) show beside its labels."""
    image, _ = decode(path)
    return orient(image, orientation)


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
