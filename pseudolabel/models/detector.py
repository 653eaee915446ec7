"""The detector adapter: the only code that touches torchvision's Faster R-CNN internals.

BBAM needs a two-stage detector's second stage on fixed proposals, never the RPN or the
post-processing. torchvision's ``RoIHeads.forward`` makes exactly these calls, which we make
ourselves (we never patch ``forward``):

    features = model.backbone(images)                                 # OrderedDict of FPN maps
    pooled   = model.roi_heads.box_roi_pool(features, proposals, sizes)  # (N, C, 7, 7)
    hidden   = model.roi_heads.box_head(pooled)                       # (N, 1024)
    logits, regression = model.roi_heads.box_predictor(hidden)       # (N, K), (N, 4K)

``proposals`` is a list (one per image of the batch) of (n_i, 4) boxes ``x0, y0, x1, y1`` in
the *network input* frame (the resized image), float. ``tests/test_bbam.py``
(``test_adapter_pins_torchvision_attribute_paths_and_shapes``) pins these attribute paths and shapes.

Frames: an original image of H x W is resized by ``scale = min(min_size / min(H, W),
max_size / max(H, W))`` (torchvision's rule) to ``h x w = round(H * scale) x round(W * scale)``,
normalised by the detector's mean / std, and zero-padded (zero = the mean colour after
normalisation) to a multiple of 32. Boxes go from the original frame to the input frame by
multiplying by ``scale``.

Weights: construction never downloads. Two kinds of checkpoint are understood:
- a detector trained on VOC boxes (21 classes, background first; what ``train-detector``
  writes, or any state dict of ``fasterrcnn_resnet50_fpn`` with 21 classes);
- torchvision's COCO weights (91 classes), used through :data:`VOC_TO_COCO`: all 20 VOC
  classes exist in COCO, so the 21 VOC logits are COCO's background logit and the 20 mapped
  class logits (the softmax is then over those 21, as for a VOC detector), and each VOC class
  uses its COCO class's box regression.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.classes import NUM_CLASSES
from ..core.errors import ConfigError

COCO_WEIGHTS_FILE = "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
"""torchvision's COCO Faster R-CNN (ResNet-50-FPN v1) weights, under this name in the torch hub
cache (``$TORCH_HOME/hub/checkpoints/``, by default ``~/.cache/torch/hub/checkpoints/``):
https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"""

VOC_TO_COCO: tuple[int, ...] = (5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
"""Index in torchvision's 91-entry COCO category list of each VOC class 1..20, in VOC order:
aeroplane=airplane, diningtable=dining table, motorbike=motorcycle, pottedplant=potted plant,
sofa=couch, tvmonitor=tv, the others by the same name."""


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def default_weights() -> Path:
    """Where the COCO weights are looked for when no ``--weights`` is given."""
    return torch_hub_checkpoints() / COCO_WEIGHTS_FILE


def missing_weights_message(path: Path) -> str:
    if path.name == COCO_WEIGHTS_FILE:
        return (f"detector weights not found: {path}. Put torchvision's COCO Faster R-CNN weights "
                f"there (download https://download.pytorch.org/models/{COCO_WEIGHTS_FILE} on a "
                f"machine with network access and copy it to {path.parent}/), or pass --weights "
                f"CHECKPOINT of a detector trained with `pseudolabel train-detector`")
    return (f"detector weights not found: {path}. Pass --weights with an existing checkpoint (a "
            f"21-class VOC detector from `pseudolabel train-detector`, or torchvision's "
            f"{COCO_WEIGHTS_FILE})")


IMAGENET_WEIGHTS_FILE = "resnet50-0676ba61.pth"
"""torchvision's ImageNet ResNet-50 (IMAGENET1K_V1), the backbone torchvision's own Faster
R-CNN starts from, under this name in the torch hub cache."""


def build_model(num_classes: int, min_size: int = 800, max_size: int = 1333, trainable_layers: int = 3):
    """torchvision's ``fasterrcnn_resnet50_fpn`` with random weights, built the way
    ``fasterrcnn_resnet50_fpn`` builds it for fine-tuning (frozen batch norm, the first
    ``5 - trainable_layers`` ResNet stages frozen) but without downloading anything; its state
    dict has the same keys as torchvision's checkpoints."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), trainable_layers)
    return FasterRCNN(backbone, num_classes=num_classes, min_size=min_size, max_size=max_size)


def coco_to_voc(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A 91-class COCO state dict -> a 21-class VOC one: the predictor's rows of background and
    of each VOC class's COCO class (:data:`VOC_TO_COCO`), everything else as is. The start of
    a fine-tuning from COCO: before any step it predicts VOC classes as the COCO model does."""
    rows = torch.tensor((0, *VOC_TO_COCO))
    out = dict(state)
    for kind in ("weight", "bias"):
        cls = f"roi_heads.box_predictor.cls_score.{kind}"
        box = f"roi_heads.box_predictor.bbox_pred.{kind}"
        out[cls] = state[cls][rows].clone()
        out[box] = state[box].view(91, 4, *state[box].shape[1:])[rows].reshape(84, *state[box].shape[1:]).clone()
    return out


def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The model state dict of a checkpoint file: a bare state dict, or ``{"model": ...}`` as
    ``train-detector`` writes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(missing_weights_message(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file
        raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or "roi_heads.box_predictor.cls_score.weight" not in state:
        raise ConfigError(f"{path}: not a Faster R-CNN ResNet-50-FPN state dict "
                          f"(no roi_heads.box_predictor.cls_score.weight)")
    return state


def check_checkpoint(path: str | os.PathLike | None) -> None:
    """A ConfigError naming the file when the checkpoint at ``path`` (None: the COCO weights in the
    torch hub cache) is missing or not a Faster R-CNN state dict; reads it, builds nothing."""
    path = Path(path) if path else default_weights()
    _num_classes(path, read_checkpoint(path))


def _num_classes(path: Path, state: dict[str, Tensor]) -> int:
    """The classes of a checkpoint's predictor: 21 (VOC) or 91 (COCO), or a ConfigError."""
    n = int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
    if n not in (NUM_CLASSES, 91):
        raise ConfigError(f"{path}: a detector with {n} classes; expected 21 (VOC) or 91 (COCO)")
    return n


class Detector:
    """A frozen torchvision Faster R-CNN seen as ``features`` + ``head`` on fixed proposals,
    with 21 VOC-ordered classes whatever the model was trained on.

    ``class_index``: for VOC class c (0 = background), the model's class index (identity for a
    21-class model, ``(0, *VOC_TO_COCO)`` for a COCO model).
    """

    def __init__(self, model, class_index=None, device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        n = model.roi_heads.box_predictor.cls_score.out_features
        if class_index is None:
            if n != NUM_CLASSES:
                raise ConfigError(f"the detector has {n} classes; give class_index to map VOC's "
                                  f"{NUM_CLASSES} onto them")
            class_index = range(NUM_CLASSES)
        self.class_index = torch.as_tensor(list(class_index), dtype=torch.long, device=self.device)
        self.freeze(True)
        t = model.transform
        self.mean = torch.as_tensor(t.image_mean, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self.std = torch.as_tensor(t.image_std, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self.min_size = int(t.min_size[0])
        self.max_size = int(t.max_size)
        self.size_divisible = int(getattr(t, "size_divisible", 32))

    # -- construction --------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, *, device="cpu",
                        min_size: int = 800, max_size: int = 1333) -> "Detector":
        """Load a 21-class VOC checkpoint or torchvision's 91-class COCO weights; ``None`` means
        :func:`default_weights`. A missing file is a :class:`ConfigError` naming it."""
        path = Path(path) if path else default_weights()
        state = read_checkpoint(path)
        n = _num_classes(path, state)
        model = build_model(n, min_size, max_size)
        model.load_state_dict(state)
        return cls(model, None if n == NUM_CLASSES else (0, *VOC_TO_COCO), device)

    def freeze(self, frozen: bool = True) -> None:
        """Frozen: no weight gradients (BBAM only needs gradients for the mask)."""
        for p in self.model.parameters():
            p.requires_grad_(not frozen)

    # -- frames --------------------------------------------------------------------
    def scale_for(self, height: int, width: int) -> float:
        return min(self.min_size / min(height, width), self.max_size / max(height, width))

    def prepare(self, image: np.ndarray) -> tuple[Tensor, float]:
        """(H, W, 3) uint8 RGB -> ((3, h', w') normalised and zero-padded input on the device,
        scale). The valid region is ``(round(H * scale), round(W * scale))``."""
        H, W = image.shape[:2]
        scale = self.scale_for(H, W)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).float() / 255.0
        x = (x - self.mean) / self.std
        h, w = round(H * scale), round(W * scale)
        x = torch.nn.functional.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        d = self.size_divisible
        ph, pw = int(math.ceil(h / d) * d), int(math.ceil(w / d) * d)
        return torch.nn.functional.pad(x, (0, pw - w, 0, ph - h)), scale

    # -- the second stage on fixed proposals -----------------------------------------
    def features(self, images: Tensor) -> "OrderedDict[str, Tensor]":
        """(B, 3, h, w) normalised inputs -> the backbone's feature maps."""
        feats = self.model.backbone(images)
        return OrderedDict([("0", feats)]) if isinstance(feats, Tensor) else OrderedDict(feats)

    def head(self, features, proposals: list[Tensor], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Class logits (N, 21) and box regression deltas (N, 21, 4) (VOC order) of the proposals
        (one (n_i, 4) tensor per image of the batch, input frame), N = sum n_i. ``image_size``
        is the valid (unpadded) input size, as torchvision passes it."""
        heads = self.model.roi_heads
        pooled = heads.box_roi_pool(features, proposals, [tuple(image_size)] * len(proposals))
        logits, regression = heads.box_predictor(heads.box_head(pooled))
        regression = regression.view(regression.shape[0], -1, 4)
        return logits[:, self.class_index], regression[:, self.class_index]

    def decode(self, deltas: Tensor, proposals: Tensor) -> Tensor:
        """(N, 4) deltas of one class per proposal + (N, 4) proposals -> (N, 4) boxes, with the
        detector's box coder (weights 10, 10, 5, 5 for torchvision's Faster R-CNN)."""
        return self.model.roi_heads.box_coder.decode_single(deltas, proposals)
