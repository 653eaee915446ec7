"""BBAM's constants (``bbam.py`` runs the method): a module of its own so that a configuration can
be made, checked and shown (``pseudolabel bbam --help``) without importing torch."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.config import Checked, OptionError, option


@dataclass(frozen=True)
class BBAMParams(Checked):
    """Every constant of BBAM, with the published values."""

    # -- proposals and positives (step 2 of the module docstring) --
    num_jitter: int = option(1000, ge=1, le=100_000)
    """Jittered copies of each GT box."""
    jitter: float = option(0.3, ge=0, le=1)
    """Each corner moves by U(-jitter, jitter) times the box width (x) or height (y)."""
    iou_levels: tuple[float, ...] = option((0.9, 0.85, 0.8), gt=0, lt=1, nonempty=True)
    """IoU cascade of the released code: the first level with more than max_positives wins."""
    max_positives: int = option(100, ge=1, le=100_000)
    """Positives kept per box."""
    # -- mask optimisation (step 3) --
    stride_min: float = option(16.0, gt=0, le=1000)
    """Mask stride for a tiny box (input pixels per mask cell)."""
    stride_range: float = option(48.0, ge=0, le=1000)
    """Added stride for a box covering the whole image: s = stride_min + stride_range * sqrt(area ratio)."""
    box_weight: float = option(0.5, ge=0, le=10**6)
    """Weight of the mean absolute difference of the GT class's 4 regression deltas."""
    class_weight: float = option(0.5, ge=0, le=10**6)
    """Weight of the absolute difference of the GT class's softmax probability."""
    l1_weight: float = option(0.007, ge=0, le=10**6)
    """lambda: weight of sum(M) over mask cells (a sum, not a mean)."""
    tv_weight: float = option(1e-4, ge=0, le=10**6)
    """gamma: weight of the total-variation term."""
    tv_power: float = option(3.0, gt=0, le=10)
    """beta: exponent of the absolute neighbour differences in the TV term."""
    lr: float = option(0.02, gt=0, le=100)
    """Adam learning rate (no schedule)."""
    steps: int = option(300, ge=0, le=100_000)
    """Adam steps (no early stop)."""
    min_size: int = option(800, ge=32, le=4096)
    """Network input: short side (torchvision's rule; the paper's 800)."""
    max_size: int = option(1333, ge=32, le=8192)
    """Network input: long side at most."""
    # -- maps to masks and labels (bbam_masks.py, as the published get_top_CRF) --
    mask_rule: str = option("published", choices=("published", "crop"))
    """published: the published post-processing (min-max over the map, rank threshold and division,
    the wide blur and the CRF over the whole image, the published fallbacks); crop: pseudolabel
    0.1.0's (rank seeds, sigma = stride / 4, the CRF on the box crop), which kept more of a good map
    on maps made from human masks (docs/BBAM.md)."""
    tight_rank: float = option(0.85, lt=1, ge=0)
    """theta_fg: the map is divided by the value of rank int(A (1 - tight_rank)) of the box's A
    pixels (descending) before the tight mask's blur and CRF: the top 15% saturate."""
    loose_rank: float = option(0.2, gt=0, le=1)
    """theta_bg: the same rank for the loose mask (the top 80% saturate)."""
    blur_min: float = option(16.0, ge=0, le=1000)
    """The blur's sigma and half window is int(blur_min + blur_range * sqrt(box area / image area))
    original pixels (published: 16 + 48 sqrt(A / WH), a window of 2 sigma + 1)."""
    blur_range: float = option(48.0, ge=0, le=1000)
    """See blur_min."""
    crf_iterations: int = option(10, ge=0, le=1000)
    """Dense CRF mean-field iterations."""
    crf_gaussian_sxy: float = option(1.0, gt=0, le=1000)
    """Dense CRF smoothness kernel: spatial standard deviation (pixels)."""
    crf_gaussian_weight: float = option(3.0, ge=0, le=1000)
    """Dense CRF smoothness kernel: weight."""
    crf_bilateral_sxy: float = option(80.0, gt=0, le=1000)
    """Dense CRF appearance kernel: spatial standard deviation (pixels)."""
    crf_bilateral_srgb: float = option(3.0, gt=0, le=1000)
    """Dense CRF appearance kernel: colour standard deviation (0..255 units)."""
    crf_bilateral_weight: float = option(4.0, ge=0, le=1000)
    """Dense CRF appearance kernel: weight."""
    crf_keep: float = option(0.9, gt=0, lt=1)
    """Pixels whose CRF foreground probability exceeds this are kept."""
    tiny_fg_frac: float = option(0.2, ge=0, le=1)
    """A map's mask is kept when it holds more than this fraction of its box (published: A / 5), or
    when the box covers more than small_box_frac of the image; otherwise the fallback runs. Boxes
    without a map keep the first fallback above this fraction too."""
    small_box_frac: float = option(0.1, ge=0, le=1)
    """See tiny_fg_frac (published: 1/10 of the image)."""
    fallback_confidences: tuple[float, ...] = option((0.7, 0.8, 0.9, 0.95, 0.96), gt=0, lt=1, nonempty=True)
    """Fallback of a box with a map: priors of these confidences on the box (the foreground found kept
    at 1, 0 elsewhere in the image) through the CRF, the first above fallback_accept_frac kept, else
    the last."""
    fallback_accept_frac: float = option(1 / 3, ge=0, le=1)
    """See fallback_confidences (published: A / 3)."""
    no_map_confidences: tuple[float, ...] = option((0.7, 0.8, 0.9, 0.95), gt=0, lt=1, nonempty=True)
    """Boxes without positives: priors of these confidences on the box (0 elsewhere) through the CRF,
    the first above tiny_fg_frac of the box kept, else the last."""
    # -- speed (no effect on the method) --
    batch_boxes: int = option(8, ge=1, le=4096)
    """Boxes optimised together in one batch."""
    batch_images: int = option(1, ge=1, le=256)
    """Photos of the same size whose boxes share those batches (the runner hands them to the
    stage together); for GPUs, where photos with one or two boxes leave a batch mostly empty."""
    amp: bool = False
    """bfloat16 autocast for every detector pass, the clean targets included (CUDA, or the CPU);
    measure its agreement with float32 (bench/gpu_check.py) before using it."""
    reference: bool = False
    """The published loop: one box at a time, image re-prepared every step, weight gradients on."""
    seed: int = option(0, ge=0, le=2**31 - 2**16)
    """Seed of the jitter: box k of image i draws from (seed, crc32(i), k), so every box of the split
    has its own jitter and a result does not depend on what else is in the batch."""

    def validate(self) -> None:
        if self.max_size < self.min_size:
            raise OptionError("max_size", f"must be at least min_size ({self.min_size}), got {self.max_size}")
        if not self.loose_rank < self.tight_rank:
            raise OptionError("loose_rank", f"must be below tight_rank ({self.tight_rank:g}), got {self.loose_rank:g}")
