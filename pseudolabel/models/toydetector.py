"""A Faster R-CNN assembled from small torchvision parts whose class score is a known function
of the pixels, so BBAM's true attribution is known (tests, the CPU benchmark, and trying the
``bbam`` stage without detector weights).

Frames and parts (torchvision's own classes; :class:`~pseudolabel.models.detector.Detector` calls
them exactly as it calls a real detector):
- transform: mean / std of 0.5 (so mid-grey normalises to 0), short side ``size``;
- backbone: the normalised image itself, one feature level ``"0"`` at stride 1, 3 channels;
- ``MultiScaleRoIAlign(["0"], 7, 2)``: (N, 3, 7, 7);
- box head: flatten -> (N, 147);
- predictor: the logit of class ``cls`` is ``gain * (mean of channel 0 - mean of channels 1, 2)``
  over the RoI ("redness"), every other class ``-gain``, background 0; box regression all 0
  (a proposal's regressed box is the proposal).
On a mid-grey photo with red objects, the class score depends only on the red pixels inside the
RoI: the mask BBAM finds should be the red object.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.classes import NUM_CLASSES
from .detector import Detector


class _Backbone(nn.Module):
    out_channels = 3

    def forward(self, x):
        return {"0": x}


class _Head(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class _Predictor(nn.Module):
    def __init__(self, cls: int, gain: float):
        super().__init__()
        self.cls, self.gain = cls, gain
        self.cls_score = nn.Linear(1, NUM_CLASSES)   # only its out_features is read (class count)

    def forward(self, x):
        x = x.view(x.shape[0], 3, -1)
        red = x[:, 0].mean(1) - 0.5 * (x[:, 1].mean(1) + x[:, 2].mean(1))
        logits = torch.full((x.shape[0], NUM_CLASSES), -self.gain, dtype=x.dtype, device=x.device)
        logits[:, 0] = 0
        logits[:, self.cls] = self.gain * red
        return logits, torch.zeros(x.shape[0], 4 * NUM_CLASSES, dtype=x.dtype, device=x.device)


def toy_model(cls: int = 15, gain: float = 2.0, size: int = 256):
    from torchvision.models.detection import FasterRCNN
    from torchvision.ops import MultiScaleRoIAlign
    return FasterRCNN(_Backbone(), num_classes=None, min_size=size, max_size=size * 2,
                      image_mean=[0.5] * 3, image_std=[0.5] * 3,
                      box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), box_head=_Head(),
                      box_predictor=_Predictor(cls, gain))


def toy_detector(device: str = "cpu", cls: int = 15, size: int = 256) -> Detector:
    """``--weights toy``: the planted detector for class ``cls`` (15 = person)."""
    return Detector(toy_model(cls, size=size), device=device)
