"""PASCAL VOC 2012 annotations: XML boxes (converted once from VOC's 1-based inclusive corners to
the package's 0-based half-open convention) and where an image's files are."""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from ..core.classes import CLASS_ID, VOC_CLASSES
from ..core.errors import DataError
from ..core.records import BadRecord, ImageRecord, ObjectRecord

def voc_record(voc: Path, image_id: str) -> ImageRecord | BadRecord:
    xml_path = voc / "Annotations" / f"{image_id}.xml"
    cls_png = voc / "SegmentationClass" / f"{image_id}.png"
    try:
        width, height, objects = parse_voc_xml(xml_path)
    except DataError as err:
        return BadRecord(image_id, err.path, err.problem, class_gt_path=str(cls_png) if cls_png.exists() else None)
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
