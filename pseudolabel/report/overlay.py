"""Pictures of labels for people: a photo with its boxes, a photo with a label map over it, a
legend, and rows of those tiles on one sheet. Used by ``demo`` and ``report``.

Made to be read at a glance on any photo: the background is grey and dimmed so labelled regions
stand out, each region is tinted strongly in its VOC colour and outlined in white, ignore (255) is
hatched, and text is white with a black outline, legible on any colour.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.classes import IGNORE, VOC_CLASSES, voc_palette

PALETTE = voc_palette()
TINT = 0.6          # weight of the class colour over the photo inside a region
DIM = 0.55          # brightness of the (grey) photo where the label is background
GAP = 4


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text(draw: ImageDraw.ImageDraw, xy, words: str, size: int = 16) -> None:
    """White words with a black outline: legible on any colour."""
    draw.text(xy, words, fill=(255, 255, 255), font=font(size), stroke_width=max(2, size // 8), stroke_fill=(0, 0, 0))


def hatch(shape: tuple[int, int], period: int = 8) -> np.ndarray:
    """(H, W) bool diagonal stripes."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((xx + yy) // (period // 2)) % 2 == 0


def boundaries(label: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose left or upper neighbour has another value."""
    e = np.zeros(label.shape, bool)
    e[:, 1:] |= label[:, 1:] != label[:, :-1]
    e[1:] |= label[1:] != label[:-1]
    return e


def _edges(label: np.ndarray) -> np.ndarray:
    """:func:`boundaries` two pixels wide (also the right and lower neighbour)."""
    e = boundaries(label)
    e[:, :-1] |= e[:, 1:].copy()
    e[:-1] |= e[1:].copy()
    return e


def label_tile(photo: np.ndarray, label: np.ndarray, size: tuple[int, int] | None = None) -> Image.Image:
    """``photo`` (H, W, 3) uint8 with ``label`` (H, W) over it, resized to ``size`` (w, h) first
    when given (nearest for the label, so classes never blend)."""
    if size is not None:
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR))
        label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
    grey = photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat(grey[..., None] * DIM, 3, axis=2)            # background: grey and dimmed
    fg = (label != 0) & (label != IGNORE)
    colours = PALETTE[np.where(fg, label, 0)].astype(np.float32)
    out[fg] = (1 - TINT) * photo[fg] + TINT * colours[fg]
    ignore = label == IGNORE
    stripes = hatch(label.shape)
    out[ignore & stripes] = 235
    out[ignore & ~stripes] = 0.4 * out[ignore & ~stripes]
    out[_edges(np.where(fg | ignore, label, 0)) & (fg | ignore)] = 255
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def boxes_tile(photo: np.ndarray, boxes, classes, size: tuple[int, int] | None = None,
               names: tuple[str, ...] = VOC_CLASSES) -> Image.Image:
    """``photo`` with each box drawn in its class colour and named (``names``: the label space's)."""
    image = Image.fromarray(photo)
    sx = sy = 1.0
    if size is not None:
        sx, sy = size[0] / image.width, size[1] / image.height
        image = image.resize(size, Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    width = max(2, round(image.height / 128))
    for (x0, y0, x1, y1), c in zip(np.asarray(boxes).reshape(-1, 4), classes):
        colour = tuple(int(v) for v in PALETTE[int(c)])
        rect = [x0 * sx, y0 * sy, x1 * sx - 1, y1 * sy - 1]
        draw.rectangle([rect[0] - 1, rect[1] - 1, rect[2] + 1, rect[3] + 1], outline=(255, 255, 255), width=width + 2)
        draw.rectangle(rect, outline=colour, width=width)
        text(draw, (rect[0] + width + 3, rect[1] + width + 1), names[int(c)], max(12, image.height // 18))
    return image


def partition_tile(photo: np.ndarray, partition: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The photo with the boundaries of ``partition`` (e.g. superpixels) drawn in yellow."""
    tile = photo.copy()
    tile[boundaries(partition)] = (255, 230, 0)
    return Image.fromarray(tile).resize(size, Image.BILINEAR)


def caption(tile: Image.Image, words: str) -> Image.Image:
    """``words`` at the tile's bottom left (box names sit at the top of their boxes)."""
    size = max(12, tile.height // 16)
    text(ImageDraw.Draw(tile), (6, tile.height - size - 8), words, size)
    return tile


def legend(classes, width: int, names: tuple[str, ...] = VOC_CLASSES) -> Image.Image:
    """A strip naming the colours used: each class in ``classes`` (named from ``names``), then
    ignore (hatched) and background (dimmed photo)."""
    items = [(names[int(c)], "class", int(c)) for c in sorted({int(c) for c in classes if 0 < int(c) < len(names)})]
    items += [("ignore (255)", "ignore", 0), ("background (grey, dimmed)", "background", 0)]
    size, pad = 16, 8
    tmp = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x, rows = pad, [[]]
    for name, kind, c in items:
        w = size + 6 + int(tmp.textlength(name, font=font(size))) + 18
        if x + w > width and rows[-1]:
            rows.append([])
            x = pad
        rows[-1].append((x, name, kind, c))
        x += w
    strip = Image.new("RGB", (width, pad + len(rows) * (size + pad)), (40, 40, 40))
    draw = ImageDraw.Draw(strip)
    for r, row in enumerate(rows):
        y = pad + r * (size + pad)
        for x, name, kind, c in row:
            if kind == "class":
                draw.rectangle([x, y, x + size, y + size], fill=tuple(int(v) for v in PALETTE[c]), outline="white")
            elif kind == "ignore":
                swatch = np.where(hatch((size, size), 6)[..., None], 235, 30).astype(np.uint8).repeat(3, 2)
                strip.paste(Image.fromarray(swatch), (x, y))
                draw.rectangle([x, y, x + size, y + size], outline="white")
            else:
                draw.rectangle([x, y, x + size, y + size], fill=(70, 70, 70), outline="white")
            draw.text((x + size + 6, y), name, fill=(255, 255, 255), font=font(size))
    return strip


def row(tiles: list[Image.Image], background="white") -> Image.Image:
    out = Image.new("RGB", (sum(t.width for t in tiles) + GAP * (len(tiles) - 1), max(t.height for t in tiles)),
                    background)
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + GAP
    return out


def stack(images: list[Image.Image], background="white") -> Image.Image:
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + GAP * (len(images) - 1)),
                    background)
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height + GAP
    return out


def fit(shape: tuple[int, int], height: int) -> tuple[int, int]:
    """(w, h) of an image of ``shape`` (h, w) scaled to ``height``."""
    return max(1, round(shape[1] * height / shape[0])), height
