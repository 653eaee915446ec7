"""The proposal generator's parameters (``proposals.py`` runs it): a module of its own so that a
configuration can be made, checked and shown (``pseudolabel proposals --help``) without importing
scikit-image and scipy."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.config import Checked, OptionError, option

_TERMS = ("boundary", "lab", "hsv", "texture", "size", "fill")
"""Names of the similarity terms, in the order of the weights in ``ProposalParams.strategies``."""


@dataclass(frozen=True)
class ProposalParams(Checked):
    """Every tunable of the proposal generator. Defaults measured on coco128-voc-dev (train)."""

    scales: tuple[float, ...] = option((1.0, 0.5, 0.25), gt=0, le=2, nonempty=True)
    """Image scales of the gradient computation (MCG: 2, 1, 0.5). Coarse scales see object-level
    contrast and suppress texture; scale 2 added nothing over 1 at 4x the cost. Adding 0.125
    raised ABO (with ``lab_weights`` (1, 2, 2): 0.678 -> 0.689) but gives coarser superpixels and
    cut the refine gain over grabcut from +1.61 to +0.77 mIoU."""
    lab_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    """Weights of the L, a, b channels (OpenCV float Lab: L 0..100, a / b about -100..100) in
    the gradient magnitude; only the ratio matters. Chroma x2 raised ABO (0.678 -> 0.686) but,
    with scale 0.125, lowered the refine gain (see ``scales``)."""
    extra_maps: tuple[tuple[float, ...], ...] = ((0.0, 1.0, 1.0),)
    """Further boundary maps, given by the Lab channel weights of each: every map scores the
    edges of the same superpixel graph and grows its own start partitions and hierarchies
    (selective search's diversification by colour space). The default chroma-only map (a, b)
    finds outlines between objects of similar brightness and ignores shading: ABO 0.678 ->
    0.706, recall@0.5 0.811 -> 0.876, refine gain over grabcut +1.61 -> +1.95 mIoU (object-level
    mean IoU gain +0.78 -> +0.87 points), 0.56 -> 0.81 s per image. Adding an intensity-only map
    (1, 0, 0) as well: ABO 0.716 at 1.4 s, but a smaller refine gain (+0.66 points per object);
    a and b as two maps: 0.711 at 1.3 s, +0.76 points. ``()``: one map only."""
    gradient_sigma: float = option(1.0, gt=0, le=100)
    """Gaussian smoothing (px, at each scale) before the Sobel gradients."""
    boundary_percentile: float = option(99.0, gt=0, le=100)
    """The boundary map is divided by this percentile of itself and clipped to 1, so similarity
    terms share one range whatever the image contrast."""
    watershed_sigma: float = option(1.0, ge=0, le=100)
    """Smoothing (px) of the boundary map before its local minima seed the watershed: larger
    values give fewer, coarser superpixels (2: ~1500, 1: ~3600 before the size merge)."""
    min_region_size: int = option(64, ge=1, le=10**7)
    """Superpixels smaller than this many pixels are merged into the neighbour across their
    weakest boundary: removes noise regions and keeps the hierarchies' loops short."""
    colour_bins: int = option(16, ge=2, le=256)
    """Histogram bins per colour channel (Lab and HSV)."""
    start_k: tuple[float, ...] = option((40.0, 160.0), ge=0, le=10**6)
    """Felzenszwalb-Huttenlocher threshold constants (boundary strength x pixels) of the start
    partitions that the hierarchies grow from, one set of hierarchies per value (selective
    search's diversification by initial segmentation): 40 gives ~700, 160 ~150 start regions on a
    640x480 photo. 0 starts from the superpixels themselves (slower, measured no better)."""
    strategies: tuple[tuple[float, ...], ...] = (
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        (1.0, 1.0, 0.0, 0.0, 1.0, 1.0),
        (0.0, 1.0, 0.0, 1.0, 1.0, 1.0),
        (0.0, 0.0, 1.0, 1.0, 1.0, 1.0),
    )
    """One merge hierarchy per entry; weights of the similarity terms (boundary weakness, Lab
    colour, HSV colour, texture, size, fill), as in selective search's diversification. On one
    boundary map each alone reaches ABO ~0.61-0.63, together 0.678. More hierarchies and cut
    levels raise ABO but lower the refine gain (more proposals just inside a mask widen the
    rule's union): adding (1,0,1,0,1,1), (1,0,0,1,1,1), pairs at 128, 256 and triplets at 64
    gave ABO 0.710 but refine +1.29 instead of +1.61 mIoU (one map)."""
    pair_levels: tuple[int, ...] = option((4, 8, 16, 32, 64), ge=2, le=10_000)
    """Cut levels (number of regions left) at which adjacent region pairs become proposals."""
    triplet_levels: tuple[int, ...] = option((4, 8, 16, 32), ge=3, le=10_000)
    """Cut levels at which connected triplets of regions become proposals (MCG: pairs give most
    of the gain, triplets a little)."""

    def validate(self) -> None:
        maps = [("lab_weights", self.lab_weights)] + [("extra_maps", m) for m in self.extra_maps]
        for name, w in maps:
            if len(w) != 3 or min(w) < 0 or not any(w):
                raise OptionError(name, f"a boundary map is three non-negative Lab channel weights, not all "
                                        f"zero, e.g. [0, 1, 1]; got {list(w)!r}")
        for name, rows in (("extra_maps", self.extra_maps), ("strategies", self.strategies)):
            for w in rows:
                if any(not math.isfinite(v) or v < 0 for v in w):
                    raise OptionError(name, f"weights must be finite and >= 0, got {list(w)!r}")
        for w in self.strategies:
            if len(w) != len(_TERMS):
                raise OptionError("strategies", f"each is {len(_TERMS)} weights ({', '.join(_TERMS)}), "
                                                f"got {list(w)!r}")
