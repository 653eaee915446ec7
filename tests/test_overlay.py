"""The pictures people look at: every class visible on any photo, ignore hatched, text outlined."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pseudolabel.core.classes import IGNORE
from pseudolabel.report.overlay import PALETTE, boxes_tile, label_tile, legend

COLOURS = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def test_every_class_stands_out_on_any_photo_and_is_outlined():
    label = np.zeros((40, 40), np.uint8)
    for c in range(1, 21):
        label[10:30, 10:30] = c
        for colour in COLOURS + [tuple(int(v) for v in PALETTE[c])]:
            photo = np.zeros((40, 40, 3), np.uint8) + np.array(colour, np.uint8)
            tile = np.asarray(label_tile(photo, label)).astype(float)
            inside, outside = tile[15:25, 15:25].mean((0, 1)), tile[0:5, 0:5].mean((0, 1))
            assert np.linalg.norm(inside - outside) >= 20, (c, colour)     # a class colour on its own colour too
            assert (tile[10, 12:28] == 255).all() and (tile[29, 12:28] == 255).all()   # white outline


def test_ignore_is_hatched_and_background_keeps_the_photo_visible():
    photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    label = np.zeros((40, 40), np.uint8)
    label[5:35, 5:35] = IGNORE
    tile = np.asarray(label_tile(photo, label))
    values = tile[10:30, 10:30, 0]
    assert (values == 235).mean() > 0.3 and (values < 110).mean() > 0.3              # stripes
    grey = photo.astype(float) @ [0.299, 0.587, 0.114]
    assert np.corrcoef(tile[:4, :, 0].ravel(), grey[:4].ravel())[0, 1] > 0.99          # dimmed, not erased


def test_box_names_are_white_with_a_black_outline_and_the_legend_names_ignore():
    photo = np.full((200, 300, 3), 255, np.uint8)                                       # white photo
    tile = np.asarray(boxes_tile(photo, [[20, 20, 250, 180]], [15]))
    name = tile[25:45, 25:80]
    assert (name.sum(2) < 60).any() and (name.min(2) > 245).any()                      # black stroke, white fill
    strip = legend([15, 8], 600)
    assert isinstance(strip, Image.Image) and strip.width == 600
    assert {tuple(int(v) for v in PALETTE[15]), tuple(int(v) for v in PALETTE[8])} <= \
        {tuple(p) for p in np.asarray(strip).reshape(-1, 3).tolist()}
