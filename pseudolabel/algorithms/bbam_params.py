"""BBAM's constants (``bbam.py`` runs the method): a module of its own so that a configuration can
be made, checked and shown (``pseudolabel bbam --help``) without importing torch."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Checked, OptionError, option


@dataclass(frozen=True)
class BBAMParams(Checked):
    """Every constant of BBAM, with the published values."""

    # -- proposals and positives (step 2 of the module docstring) --
    num_jitter: int = option(1000, ge=1)
    """Jittered copies of each GT box."""
    jitter: float = option(0.3, ge=0, le=1)
    """Each corner moves by U(-jitter, jitter) times the box width (x) or height (y)."""
    iou_levels: tuple[float, ...] = option((0.9, 0.85, 0.8), gt=0, lt=1, nonempty=True)
    """IoU cascade of the released code: the first level with more than max_positives wins."""
    max_positives: int = option(100, ge=1)
    """Positives kept per box."""
    # -- mask optimisation (step 3) --
    stride_min: float = option(16.0, gt=0)
    """Mask stride for a tiny box (input pixels per mask cell)."""
    stride_range: float = option(48.0, ge=0)
    """Added stride for a box covering the whole image: s = stride_min + stride_range * sqrt(area ratio)."""
    box_weight: float = option(0.5, ge=0)
    """Weight of the mean absolute difference of the GT class's 4 regression deltas."""
    class_weight: float = option(0.5, ge=0)
    """Weight of the absolute difference of the GT class's softmax probability."""
    l1_weight: float = option(0.007, ge=0)
    """lambda: weight of sum(M) over mask cells (a sum, not a mean)."""
    tv_weight: float = option(1e-4, ge=0)
    """gamma: weight of the total-variation term."""
    tv_power: float = option(3.0, gt=0)
    """beta: exponent of the absolute neighbour differences in the TV term."""
    lr: float = option(0.02, gt=0)
    """Adam learning rate (no schedule)."""
    steps: int = option(300, ge=0)
    """Adam steps (no early stop)."""
    min_size: int = option(800, ge=32)
    """Network input: short side (torchvision's rule; the paper's 800)."""
    max_size: int = option(1333, ge=32)
    """Network input: long side at most."""
    # -- maps to labels (step 4) --
    tight_rank: float = option(0.85, lt=1)
    """theta_fg: the top (1 - tight_rank) of a box's pixels by map value seed the tight mask."""
    loose_rank: float = option(0.2, gt=0)
    """theta_bg: the top (1 - loose_rank) seed the loose mask."""
    crf_iterations: int = option(10, ge=0)
    """Dense CRF mean-field iterations."""
    crf_gaussian_sxy: float = option(1.0, gt=0)
    """Dense CRF smoothness kernel: spatial standard deviation (pixels)."""
    crf_gaussian_weight: float = option(3.0, ge=0)
    """Dense CRF smoothness kernel: weight."""
    crf_bilateral_sxy: float = option(80.0, gt=0)
    """Dense CRF appearance kernel: spatial standard deviation (pixels)."""
    crf_bilateral_srgb: float = option(3.0, gt=0)
    """Dense CRF appearance kernel: colour standard deviation (0..255 units)."""
    crf_bilateral_weight: float = option(4.0, ge=0)
    """Dense CRF appearance kernel: weight."""
    crf_keep: float = option(0.9, gt=0, lt=1)
    """Pixels whose CRF foreground probability exceeds this are kept."""
    tiny_fg_frac: float = option(0.2, ge=0, le=1)
    """Fallback when the tight foreground is at most this fraction of its box ..."""
    small_box_frac: float = option(0.1, ge=0, le=1)
    """... and the box covers at most this fraction of the image (or the box had no positives)."""
    fallback_confidences: tuple[float, ...] = option((0.6, 0.7, 0.8, 0.9, 0.95), gt=0, lt=1)
    """Box-shaped priors of increasing confidence the fallback CRF is re-run from."""
    # -- speed (no effect on the method) --
    batch_boxes: int = option(8, ge=1)
    """Boxes optimised together in one batch."""
    batch_images: int = option(1, ge=1)
    """Photos of the same size whose boxes share those batches (the runner hands them to the
    stage together); for GPUs, where photos with one or two boxes leave a batch mostly empty."""
    amp: bool = False
    """bfloat16 autocast for the detector passes on a GPU (measure agreement before using it)."""
    reference: bool = False
    """The published loop: one box at a time, image re-prepared every step, weight gradients on."""
    seed: int = option(0, ge=0, le=2**31 - 2**16)
    """Seed of the jitter; box k of an image uses seed + k."""

    def validate(self) -> None:
        if self.max_size < self.min_size:
            raise OptionError("max_size", f"must be at least min_size ({self.min_size}), got {self.max_size}")
        if not self.loose_rank < self.tight_rank:
            raise OptionError("loose_rank", f"must be below tight_rank ({self.tight_rank:g}), got {self.loose_rank:g}")
