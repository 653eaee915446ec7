"""``torch.utils.data.Dataset`` over a label store, for a Box2Seg-style trainer.

Imports torch only when used. Each item is a dict:

* ``image``: (3, H, W) uint8 tensor, RGB, decoded from the photo the store was made from, in the
  frame of its label (its EXIF orientation applied when the store says the labels follow it;
  ``data_root`` re-roots the stored path when the dataset has moved);
* ``label``: (H, W) int64 tensor, 0 background, 1..20, 255 ignore;
* ``boxes``: (K, 4) float32, ``(x0, y0, x1, y1)`` in pixel-edge coordinates (0-based,
  x1/y1 exclusive: the torchvision convention);
* ``classes``: (K,) int64, 1..20; ``difficult``/``truncated``: (K,) bool;
* ``filling_rate``: (21,) float32, NaN for classes without boxes;
* ``image_id``: str.

``transform``, when given, is applied to that dict and its result returned.

Photos differ in size, so torch's default collate cannot stack them: batch with
:func:`collate_padded` (``DataLoader(ds, batch_size=8, collate_fn=collate_padded)``), or crop and
resize to one size in ``transform``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..catalog.pixels import load_photo
from ..core.errors import DataError
from .reader import LabelStore


class LabelDataset(Dataset):
    """The images of a label store with their pseudo labels, boxes and filling rates, for training
    a segmentation network (see the module docstring for each item's keys).

    ``store``: a :class:`LabelStore` or the path of a store file. ``data_root``: where the photos
    are now, when the dataset has moved since the store was made (the stored paths are re-rooted).
    ``transform``: a function of the item dict (augmentation, normalisation) whose result is
    returned instead.

    >>> ds = LabelDataset("cache/VOC2012/train_aug/fuse.h5")
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=4,
    ...                                      collate_fn=collate_padded)
    """

    def __init__(self, store: LabelStore | str | os.PathLike, data_root: str | os.PathLike | None = None,
                 transform: Callable[[dict[str, Any]], Any] | None = None):
        self.store = store if isinstance(store, LabelStore) else LabelStore(store)
        self.data_root = Path(data_root) if data_root is not None else None
        self.transform = transform

    def __len__(self) -> int:
        return len(self.store)

    def _image_path(self, stored: str) -> str:
        if self.data_root is None:
            return stored
        old_root = Path(self.store.meta["dataset_root"])
        try:
            return str(self.data_root / Path(stored).relative_to(old_root))
        except ValueError:
            return str(self.data_root / Path(stored).name)

    def __getitem__(self, index: int) -> Any:
        s = self.store[index]
        path = self._image_path(s.image_path)
        image = load_photo(path, int(s.attrs.get("orientation", 1)))      # in the frame of its labels
        if image.shape[:2] != s.label.shape:
            raise DataError(path, f"photo is {image.shape[1]}x{image.shape[0]} but its label in {self.store.path} is "
                                  f"{s.label.shape[1]}x{s.label.shape[0]}", s.image_id)
        item = {
            "image_id": s.image_id,
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "label": torch.from_numpy(s.label.astype("int64")),
            "boxes": torch.from_numpy(s.boxes.astype("float32")),
            "classes": torch.from_numpy(s.classes.astype("int64")),
            "difficult": torch.from_numpy(s.difficult),
            "truncated": torch.from_numpy(s.truncated),
            "filling_rate": torch.from_numpy(s.filling_rate),
        }
        return self.transform(item) if self.transform is not None else item


PADDED = {"image": 0, "label": 255}
"""Fill values of :func:`collate_padded`: photos padded with 0, labels with 255 (ignored by a
loss with ``ignore_index=255``)."""


def collate_padded(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of :class:`LabelDataset` items of different sizes: ``image`` (B, C, H, W) and
    ``label`` (B, H, W) padded at the bottom and right to the largest height and width (photos
    with 0, labels with 255), ``size`` (B, 2) each item's own (H, W), ``filling_rate`` (B, 21);
    per-object tensors (``boxes``, ``classes``, ``difficult``, ``truncated``) and ``image_id``
    stay lists, since images hold different numbers of objects. Keys a transform adds are
    stacked when their tensors agree in shape, listed otherwise."""
    if not items:
        raise ValueError("an empty batch")
    batch: dict[str, Any] = {}
    height = max(int(item["label"].shape[-2]) for item in items)
    width = max(int(item["label"].shape[-1]) for item in items)
    batch["size"] = torch.tensor([tuple(item["label"].shape[-2:]) for item in items], dtype=torch.int64)
    for key in items[0]:
        values = [item[key] for item in items]
        if key in PADDED:
            out = values[0].new_full((len(values), *values[0].shape[:-2], height, width), PADDED[key])
            for b, v in enumerate(values):
                out[b, ..., : v.shape[-2], : v.shape[-1]] = v
            batch[key] = out
        elif all(isinstance(v, torch.Tensor) for v in values) and key not in (
                "boxes", "classes", "difficult", "truncated") and len({tuple(v.shape) for v in values}) == 1:
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
