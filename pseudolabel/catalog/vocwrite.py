"""Writing small datasets in the VOC layout: used by ``pseudolabel demo`` and by the tests'
fixtures. Boxes are given in the package convention and written as VOC's 1-based inclusive
corners (the inverse of the catalog's conversion)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable
from xml.sax.saxutils import escape

from ..core.classes import VOC_CLASSES
from ..core.records import ObjectRecord


def voc_xml(image_id: str, width: int, height: int, objects: Iterable[ObjectRecord], depth: int = 3) -> str:
    parts = [
        "<annotation>",
        "\t<folder>VOC2012</folder>",
        f"\t<filename>{escape(image_id)}.jpg</filename>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>{depth}</depth>\n\t</size>",
        "\t<segmented>1</segmented>",
    ]
    for o in objects:
        x0, y0, x1, y1 = o.box
        parts.append(
            f"\t<object>\n\t\t<name>{VOC_CLASSES[o.class_id]}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{int(o.truncated)}</truncated>\n\t\t<difficult>{int(o.difficult)}</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{x0 + 1}</xmin>\n\t\t\t<ymin>{y0 + 1}</ymin>\n"
            f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
    parts.append("</annotation>\n")
    return "\n".join(parts)


def make_voc_folders(root: str | os.PathLike) -> Path:
    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Segmentation", "SegmentationClass", "SegmentationObject"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def write_split(root: str | os.PathLike, split: str, ids: Iterable[str]) -> None:
    (Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
