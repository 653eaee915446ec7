"""``torch.utils.data.Dataset`` over a label store, for a Box2Seg-style trainer.

Imports torch only when used. Each item is a dict:

* ``image``: (3, H, W) uint8 tensor, RGB, decoded from the photo the store was made from
  (``data_root`` re-roots the stored path when the dataset has moved);
* ``label``: (H, W) int64 tensor, 0 background, 1..20, 255 ignore;
* ``boxes``: (K, 4) float32, ``(x0, y0, x1, y1)`` in pixel-edge coordinates (0-based,
  x1/y1 exclusive: the torchvision convention);
* ``classes``: (K,) int64, 1..20; ``difficult``/``truncated``: (K,) bool;
* ``filling_rate``: (21,) float32, NaN for classes without boxes;
* ``image_id``: str.

``transform``, when given, is applied to that dict and its result returned.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..catalog import load_image
from ..records import ImageRecord
from .reader import LabelStore


class LabelDataset(Dataset):
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
        h, w = s.label.shape
        record = ImageRecord(image_id=s.image_id, image_path=self._image_path(s.image_path),
                             width=w, height=h, objects=())
        image = load_image(record)
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
