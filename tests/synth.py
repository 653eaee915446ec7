"""Small synthetic datasets in the VOC and SBD layouts, written by the tests themselves.

Each image is a smooth colour gradient with noise; each object is an ellipse of a distinct
colour inscribed in its box, so human-style masks differ from filled boxes. Ground truth is
written like VOC (palette PNGs, a 255 band along object edges) and like SBD (.mat structs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from pseudolabel.core.classes import voc_palette
from pseudolabel.core.records import ObjectRecord
from pseudolabel.catalog.vocwrite import make_voc_folders, voc_xml, write_split

PALETTE = voc_palette().ravel().tolist()


def synth_image(rng: np.random.Generator, height: int, width: int, n_objects: int):
    """(image (H,W,3) uint8, objects, class map (H,W), instance map (H,W)); no 255 band."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(40, 200, size=3)
    image = (base[None, None, :] + 0.3 * xx[..., None] * rng.uniform(-1, 1, 3)
             + 0.3 * yy[..., None] * rng.uniform(-1, 1, 3) + rng.normal(0, 6, (height, width, 3)))
    cls = np.zeros((height, width), np.uint8)
    inst = np.zeros((height, width), np.uint8)
    objects = []
    for k in range(n_objects):
        bw = int(rng.integers(width // 5, width // 2))
        bh = int(rng.integers(height // 5, height // 2))
        x0 = int(rng.integers(0, width - bw))
        y0 = int(rng.integers(0, height - bh))
        class_id = int(rng.integers(1, 21))
        cy, cx, ry, rx = y0 + (bh - 1) / 2, x0 + (bw - 1) / 2, bh / 2, bw / 2
        ellipse = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        ys, xs = np.nonzero(ellipse)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        image[ellipse] = rng.integers(0, 256, size=3) + rng.normal(0, 6, (ellipse.sum(), 3))
        cls[ellipse] = class_id
        inst[ellipse] = k + 1
        objects.append(ObjectRecord(class_id, box, difficult=bool(k == 1), truncated=bool(k == 2)))
    return np.clip(image, 0, 255).astype(np.uint8), tuple(objects), cls, inst


def with_void_band(labels: np.ndarray) -> np.ndarray:
    """VOC-style 255 band: pixels whose 4-neighbourhood holds another value."""
    out = labels.copy()
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    out[edge] = 255
    return out


def outline(instances: np.ndarray) -> np.ndarray:
    """(H, W) float32 1 on pixels whose right or lower neighbour has another instance value
    (background and void included): a perfect edge detector's thin output."""
    edge = np.zeros(instances.shape, bool)
    edge[:, 1:] |= instances[:, 1:] != instances[:, :-1]
    edge[1:] |= instances[1:] != instances[:-1]
    return edge.astype(np.float32)


def save_png(array: np.ndarray, path: Path) -> None:
    img = Image.fromarray(array, mode="P")
    img.putpalette(PALETTE)
    img.save(path)


def make_voc_tree(root: Path, n_images: int = 8, seed: int = 0, size=(96, 128),
                  splits=None, prefix: str = "2012_") -> Path:
    """A VOC 2012 tree; default splits: train = first 3/4 of the ids, val = the rest."""
    rng = np.random.default_rng(seed)
    root = make_voc_folders(root)
    ids = [f"{prefix}{i:06d}" for i in range(n_images)]
    for i, image_id in enumerate(ids):
        image, objects, cls, inst = synth_image(rng, *size, n_objects=1 + i % 3)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, size[1], size[0], objects))
        band = with_void_band(cls)
        save_png(band, root / "SegmentationClass" / f"{image_id}.png")
        save_png(np.where(band == 255, 255, inst).astype(np.uint8), root / "SegmentationObject" / f"{image_id}.png")
    if splits is None:
        cut = max(1, (3 * n_images) // 4)
        splits = {"train": ids[:cut], "val": ids[cut:]}
    for name, members in splits.items():
        write_split(root, name, members)
    write_split(root, "trainval", ids)
    return root


def make_sbd_tree(root: Path, ids_train, ids_val, seed: int = 1, size=(80, 100)) -> Path:
    """An SBD ``dataset/`` folder: img/, cls/ (GTcls), inst/ (GTinst), train.txt, val.txt."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("img", "cls", "inst"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id in list(ids_train) + list(ids_val):
        image, objects, cls, inst = synth_image(rng, *size, n_objects=2)
        Image.fromarray(image).save(root / "img" / f"{image_id}.jpg", quality=95)
        cats = np.array([o.class_id for o in objects], dtype=np.uint8)
        savemat(root / "cls" / f"{image_id}.mat", {"GTcls": {
            "Segmentation": cls, "Boundaries": np.zeros((21, 1), dtype=object),
            "CategoriesPresent": np.unique(cats)}})
        savemat(root / "inst" / f"{image_id}.mat", {"GTinst": {
            "Segmentation": inst, "Boundaries": np.zeros((len(cats), 1), dtype=object),
            "Categories": cats.reshape(-1, 1)}})
    (root / "train.txt").write_text("".join(f"{i}\n" for i in ids_train))
    (root / "val.txt").write_text("".join(f"{i}\n" for i in ids_val))
    return root
