"""SAM (Segment Anything, Kirillov et al. 2023) through the official ``segment-anything`` package
(Apache-2.0; ``pip install '.[sam]'``), with the user's checkpoint.

One image embedding per photo, then **all boxes of the photo decoded in one batched call**
(``SamPredictor.predict_torch``, in chunks of ``batch_boxes``), as the package's own predictor
would decode them one by one (tested to 1e-5 on a small SAM built from the package's classes).
Checkpoints are read with ``torch.load(weights_only=True)`` (the package's own builder unpickles);
the variant (ViT-B, -L, -H) is read off the checkpoint's shapes. Half precision on a GPU is
autocast to float16.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError

CHECKPOINTS = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
"""The official checkpoint files (github.com/facebookresearch/segment-anything, "Model Checkpoints")."""
EMBED_DIMS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def _package():
    try:
        import segment_anything
    except ImportError:
        raise ConfigError("the sam engine needs the segment-anything package: pip install -c constraints.txt "
                          "'pseudolabel[sam]'") from None
    return segment_anything


def weights_path(weights: str | os.PathLike) -> Path:
    """The checkpoint file, or a ConfigError naming the official files."""
    names = ", ".join(CHECKPOINTS.values())
    if not weights:
        raise ConfigError(f"the sam engine needs --weights: a SAM checkpoint ({names}; from "
                          f"github.com/facebookresearch/segment-anything, Model Checkpoints)")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"SAM checkpoint not found: {path}. Pass --weights with one of the official files "
                          f"({names}; github.com/facebookresearch/segment-anything, Model Checkpoints)")
    return path


def read_checkpoint(path: Path) -> tuple[str, dict[str, Any]]:
    """``(variant, state dict)`` of a SAM checkpoint, read as plain weights."""
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - never unpickled: anything else is not a checkpoint
        raise ConfigError(f"{path}: not a SAM checkpoint that loads as plain weights ({type(exc).__name__})") from None
    pos = state.get("image_encoder.pos_embed") if isinstance(state, dict) else None
    if pos is None or int(pos.shape[-1]) not in EMBED_DIMS:
        raise ConfigError(f"{path}: not a SAM ViT-B/L/H checkpoint (no image_encoder.pos_embed of width 768, 1024 "
                          f"or 1280)")
    return EMBED_DIMS[int(pos.shape[-1])], state


def load_sam(weights: str | os.PathLike, device: str = "cpu"):
    """A ``SamPredictor`` of the checkpoint at ``weights`` on ``device``."""
    package = _package()
    variant, state = read_checkpoint(weights_path(weights))
    model = package.sam_model_registry[variant](checkpoint=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{weights}: does not fit SAM {variant} ({str(exc).splitlines()[0]})") from None
    return package.SamPredictor(model.to(device).eval())


def sam_batch(predictor, image: np.ndarray, boxes: np.ndarray, *, multimask: bool = True, batch_boxes: int = 64,
              half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every box of one photo: ``(probabilities (K, M, H, W) float32, predicted IoU (K, M))``,
    M = 3 candidate masks (``multimask``) or 1; the embedding is computed once."""
    import torch
    k = len(boxes)
    h, w = image.shape[:2]
    if k == 0:
        return np.zeros((0, 3 if multimask else 1, h, w), np.float32), np.zeros((0, 3 if multimask else 1), np.float32)
    device = predictor.model.device
    autocast = torch.autocast("cuda", dtype=torch.float16) if half and device.type == "cuda" else nullcontext()
    probs, ious = [], []
    with torch.inference_mode(), autocast:
        predictor.set_image(image)
        for start in range(0, k, batch_boxes):
            chunk = torch.as_tensor(np.asarray(boxes[start:start + batch_boxes], np.float32), device=device)
            logits, iou, _ = predictor.predict_torch(None, None, boxes=predictor.transform.apply_boxes_torch(
                chunk, (h, w)), multimask_output=multimask, return_logits=True)
            probs.append(torch.sigmoid(logits.float()).cpu().numpy())
            ious.append(iou.float().cpu().numpy())
    predictor.reset_image()
    return np.concatenate(probs), np.concatenate(ious)
