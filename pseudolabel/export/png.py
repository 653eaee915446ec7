"""Export a label store to PNGs laid out like VOC: ``SegmentationClass/<id>.png`` (palette
mode, 0..20 and 255, the VOC colour map) and ``SegmentationObject/<id>.png`` (palette mode,
object k of the store is k+1, 0 background, 255 ignore). PNG is lossless; labels are never
written as JPEG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..core.classes import voc_palette
from ..core.labels import instance_map
from ..core.progress import Progress
from ..store.reader import LabelStore
from .manifest import write_text

_PALETTE = voc_palette().ravel().tolist()


def save_palette_png(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write (H, W) uint8 indices as a palette PNG with the VOC colour map, atomically."""
    img = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


def export_png(store: LabelStore, out: str | os.PathLike, written, *, instances: bool = True,
               progress: bool = True, log: Callable[[str], None] = lambda s: None) -> int:
    """Write every labelled image of ``store`` under ``out`` (the files ``written`` claims: see
    ``export.manifest``); returns the number written."""
    out = Path(out)
    folders = ("SegmentationClass", "SegmentationObject") if instances else ("SegmentationClass",)
    written.claim([f"{folder}/{image_id}.png" for image_id in store.ids for folder in folders] + ["ids.txt"])
    written.begin()
    for folder in folders:
        (out / folder).mkdir(parents=True, exist_ok=True)
    bar = Progress(len(store), f"export {store.stage}", enabled=progress)
    for i in range(len(store)):
        sample = store.read(i, masks=instances)
        save_palette_png(sample.label, out / "SegmentationClass" / f"{sample.image_id}.png")
        if instances:
            inst = instance_map(sample.label, sample.masks, sample.classes, sample.boxes)
            save_palette_png(inst, out / "SegmentationObject" / f"{sample.image_id}.png")
        bar.update()
    bar.close()
    write_text(out / "ids.txt", "".join(f"{i}\n" for i in store.ids))
    written.finish()
    return len(store)
