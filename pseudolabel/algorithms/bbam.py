"""BBAM: bounding-box attribution maps (Lee et al., CVPR 2021), as the paper and the published code
(``jbeomlee93/BBAM``) run the method, with the published code's defects left out (``docs/BBAM.md``).

For one image with K ground-truth boxes (original frame, 0-based half-open ``x0, y0, x1, y1``):

1. ``prepare``: resize (short side ``min_size``, long side at most ``max_size``), normalise,
   pad; GT boxes go to the input frame (``* scale``). The normalised input is computed once and
   stays on the device (the published loop re-reads and re-normalises the image every step).
2. ``select_positives`` per box: ``num_jitter`` copies of the box, each corner moved by
   U(-jitter, jitter) x box width / height, clipped; one no-grad pass of the detector's second
   stage; positive = argmax of the 21 logits is the GT class and IoU(GT, the proposal's
   regressed box for that class) passes the first level of ``iou_levels`` with more than
   ``max_positives`` positives (then ``max_positives`` are kept, in jitter order), else the last
   level's set (possibly empty). Targets (the unperturbed deltas ``t`` and GT-class probability
   ``p``) are detached.
3. ``optimise_masks``: one mask per box with positives, stride
   ``s = stride_min + stride_range * sqrt(box area / image area)`` (input frame), shape
   ``(floor(h / s), floor(w / s))``, 1 on the union of the positives' regressed boxes and 0
   elsewhere, a raw tensor clamped to [0, 1] after every step. Each step upsamples every mask
   bilinearly (align_corners=True) to the input size, multiplies the normalised input (so
   masked pixels take the mean colour), runs backbone -> RoI pool -> box head -> predictor on
   that box's own positives, and minimises
   ``box_weight * mean |t - t'| + class_weight * mean |p - p'| + l1_weight * sum(M)
   + tv_weight * sum |dM|^tv_power`` (horizontal, vertical and both diagonal differences)
   with Adam (lr, steps). All boxes of the image are one batch (``batch_boxes`` at a time):
   Adam is per element and each box has its own loss terms, so stacking them changes nothing
   but the speed. Weights are frozen. ``reference=True`` runs the published loop instead: one
   box at a time, the image re-prepared every step, weight gradients on, float32.
4. The map, upsampled to the original frame, is what the store keeps; ``bbam_masks.py`` turns it
   into tight / loose masks and the semantic label, as the published code does.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .bbam_params import BBAMParams


# ---------------------------------------------------------------------------------------------
# 2. proposals and positives
# ---------------------------------------------------------------------------------------------
def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4) x (4,) -> (N,) IoU of each row of ``a`` with ``b``."""
    x0, y0 = torch.maximum(a[:, 0], b[0]), torch.maximum(a[:, 1], b[1])
    x1, y1 = torch.minimum(a[:, 2], b[2]), torch.minimum(a[:, 3], b[3])
    inter = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[2] - b[0]).clamp(min=0) * (b[3] - b[1]).clamp(min=0)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def jitter_boxes(box: np.ndarray, n: int, frac: float, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(n, 4) float32 copies of ``box`` (input frame) with each corner moved by U(-frac, frac)
    times the box width (x) or height (y), clipped to ``size = (h, w)``; degenerate copies are
    widened to one pixel."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    d = rng.uniform(-frac, frac, size=(n, 4)) * np.array([w, h, w, h])
    out = np.array([x0, y0, x1, y1]) + d
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, size[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, size[0])
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out.astype(np.float32)


@dataclass
class Positives:
    """One GT box's positives (input frame): proposals (P, 4), their regressed boxes (P, 4),
    the detached targets ``deltas`` (P, 4) and ``prob`` (P,) of the GT class, and the IoU level
    that selected them (NaN when P = 0)."""

    proposals: torch.Tensor
    regressed: torch.Tensor
    deltas: torch.Tensor
    prob: torch.Tensor
    level: float

    def __len__(self) -> int:
        return int(self.proposals.shape[0])


def autocast(detector, params: BBAMParams):
    """bfloat16 autocast of every detector pass when ``params.amp`` (on the detector's device, CUDA
    or CPU): the clean targets and the masked passes under the same precision, so they compare."""
    return torch.autocast(device_type=detector.device.type, dtype=torch.bfloat16, enabled=params.amp)


@torch.no_grad()
def select_positives(detector, features, box: np.ndarray, cls: int, input_size: tuple[int, int],
                     params: BBAMParams, rng: np.random.Generator) -> Positives:
    """Step 2 for one GT box (input frame); ``features`` of the clean image (computed under
    :func:`autocast` too)."""
    device = detector.device
    proposals = torch.from_numpy(jitter_boxes(box, params.num_jitter, params.jitter, input_size, rng)).to(device)
    with autocast(detector, params):
        logits, deltas = detector.head(features, [proposals], input_size)
    logits, deltas = logits.float(), deltas.float()
    regressed = detector.decode(deltas[:, cls], proposals)
    gt = torch.as_tensor(np.asarray(box, dtype=np.float32), device=device)
    iou = box_iou(regressed, gt)
    right_class = logits.argmax(1) == cls
    keep = torch.zeros(0, dtype=torch.long, device=device)
    level = float("nan")
    for level in params.iou_levels:
        keep = torch.nonzero(right_class & (iou > level)).flatten()
        if len(keep) > params.max_positives:
            keep = keep[: params.max_positives]
            break
    if len(keep) == 0:
        level = float("nan")
    prob = logits.softmax(1)[:, cls]
    return Positives(proposals[keep], regressed[keep], deltas[keep, cls], prob[keep], level)


# ---------------------------------------------------------------------------------------------
# 3. mask optimisation
# ---------------------------------------------------------------------------------------------
def mask_stride(box: np.ndarray, input_size: tuple[int, int], params: BBAMParams) -> float:
    """s = stride_min + stride_range * sqrt(box area / image area), input frame."""
    area = max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)
    return params.stride_min + params.stride_range * math.sqrt(area / (input_size[0] * input_size[1]))


def initial_mask(regressed: torch.Tensor, input_size: tuple[int, int], stride: float) -> torch.Tensor:
    """(mh, mw) float32: 1 on the cells whose position (align_corners frame: cell i sits at input
    pixel i * (h - 1) / (mh - 1)) lies inside any of the regressed boxes, else 0."""
    h, w = input_size
    mh, mw = max(int(h // stride), 2), max(int(w // stride), 2)
    ys = torch.arange(mh, device=regressed.device, dtype=torch.float32) * ((h - 1) / (mh - 1))
    xs = torch.arange(mw, device=regressed.device, dtype=torch.float32) * ((w - 1) / (mw - 1))
    m = torch.zeros(mh, mw, device=regressed.device)
    for b in regressed:
        iny = (ys >= b[1]) & (ys <= b[3])
        inx = (xs >= b[0]) & (xs <= b[2])
        m[iny[:, None] & inx[None, :]] = 1.0
    return m


def tv_term(m: torch.Tensor, power: float) -> torch.Tensor:
    """sum |dM|^power over horizontal, vertical and both diagonal neighbour pairs."""
    return ((m[:, 1:] - m[:, :-1]).abs().pow(power).sum() + (m[1:, :] - m[:-1, :]).abs().pow(power).sum()
            + (m[1:, 1:] - m[:-1, :-1]).abs().pow(power).sum() + (m[1:, :-1] - m[:-1, 1:]).abs().pow(power).sum())


def _upsample(mask: torch.Tensor, input_size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
    """(mh, mw) -> (padded h, padded w): bilinear (align_corners=True) onto the valid region,
    zero (= mean colour once multiplied) on the padding."""
    up = F.interpolate(mask[None, None], size=input_size, mode="bilinear", align_corners=True)[0, 0]
    return F.pad(up, (0, padded[1] - input_size[1], 0, padded[0] - input_size[0]))


def _box_losses(detector, images: torch.Tensor, masks: list[torch.Tensor], positives: list[Positives],
                classes: list[int], input_size, params: BBAMParams) -> list[torch.Tensor]:
    """Loss of each box (a list, one scalar each) for the masked images of one batch."""
    padded = tuple(images.shape[-2:])
    ups = torch.stack([_upsample(m, input_size, padded) for m in masks])          # (B, h', w')
    batch = images * ups[:, None]                                                   # (B, 3, h', w')
    with autocast(detector, params):
        feats = detector.features(batch)
        logits, deltas = detector.head(feats, [p.proposals for p in positives], input_size)
    logits, deltas = logits.float(), deltas.float()
    losses, start = [], 0
    for m, pos, cls in zip(masks, positives, classes):
        end = start + len(pos)
        prob = logits[start:end].softmax(1)[:, cls]
        d = deltas[start:end, cls]
        loss = (params.box_weight * (d - pos.deltas).abs().mean()
                + params.class_weight * (prob - pos.prob).abs().mean()
                + params.l1_weight * m.sum() + params.tv_weight * tv_term(m, params.tv_power))
        losses.append(loss)
        start = end
    return losses


def optimise_masks(detector, image: np.ndarray | list[np.ndarray], boxes_in: np.ndarray, classes: list[int],
                   positives: list[Positives], params: BBAMParams,
                   step_hook: Callable[[int], None] | None = None,
                   owners: list[int] | None = None,
                   prepared: list[torch.Tensor] | None = None) -> tuple[list[np.ndarray], list[float]]:
    """Masks (each (mh, mw) float32 in [0, 1], at its own stride) and final losses of the boxes,
    in order. Every box must have positives. ``image`` is the original uint8 photo, or a list of
    photos of the same size with ``owners[j]`` the photo of box j: boxes of several photos then
    share batches (each box still sees only its own photo). ``prepared``: the photos'
    ``detector.prepare`` inputs when the caller has them already."""
    images = image if isinstance(image, list) else [image]
    owners = owners if owners is not None else [0] * len(boxes_in)
    if len({im.shape for im in images}) > 1:
        raise ValueError("boxes of several photos are optimised together only for photos of one size")
    xs = prepared if prepared is not None else [detector.prepare(im)[0] for im in images]
    scale = detector.scale_for(*images[0].shape[:2])
    h, w = round(images[0].shape[0] * scale), round(images[0].shape[1] * scale)
    inits = [initial_mask(p.regressed, (h, w), mask_stride(b, (h, w), params)) for b, p in zip(boxes_in, positives)]
    if params.reference:
        out = [_optimise_reference(detector, images[o], [m], [p], [c], (h, w), params, step_hook)
               for m, p, c, o in zip(inits, positives, classes, owners)]
        return [o[0][0] for o in out], [o[1][0] for o in out]
    detector.freeze(True)
    masks_out, losses_out = [], []
    for s in range(0, len(inits), params.batch_boxes):
        sl = slice(s, s + params.batch_boxes)
        batch = torch.stack([xs[o] for o in owners[sl]])
        masks, losses = _adam(inits[sl], lambda ms: _box_losses(detector, batch, ms, positives[sl], classes[sl],
                                                                (h, w), params), params, step_hook)
        masks_out += masks
        losses_out += losses
    return masks_out, losses_out


def _adam(inits: list[torch.Tensor], loss_fn, params: BBAMParams, step_hook) -> tuple[list[np.ndarray], list[float]]:
    """``params.steps`` Adam steps on copies of ``inits`` (one loss per mask from ``loss_fn``),
    clamping to [0, 1] after each; the masks and their last losses (NaN without a step)."""
    masks = [m.clone().requires_grad_(True) for m in inits]
    opt = torch.optim.Adam(masks, lr=params.lr)
    losses = [torch.tensor(float("nan"))] * len(masks)
    for _ in range(params.steps):
        opt.zero_grad(set_to_none=True)
        losses = loss_fn(masks)
        torch.stack(losses).sum().backward()
        opt.step()
        with torch.no_grad():
            for m in masks:
                m.clamp_(0, 1)
        if step_hook:
            step_hook(len(masks))
    return [m.detach().cpu().numpy() for m in masks], [float(v.detach()) for v in losses]


def _optimise_reference(detector, image, masks, positives, classes, input_size, params, step_hook):
    """The published loop for one box: image re-prepared every step, weight gradients computed
    (and accumulated: nobody zeroes them), float32."""
    detector.freeze(False)
    ref = dataclasses.replace(params, amp=False)
    try:
        return _adam(masks, lambda ms: _box_losses(detector, detector.prepare(image)[0][None], ms, positives,
                                                   classes, input_size, ref), ref, step_hook)
    finally:
        detector.freeze(True)
        for p in detector.model.parameters():
            p.grad = None


def map_to_original(mask: np.ndarray, input_size: tuple[int, int], shape: tuple[int, int],
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """A mask at its stride -> (H, W) float32 map in the original frame, on ``device``: bilinear
    (align_corners=True) to the input size as during optimisation, then to the original size."""
    t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)[None, None]
    up = F.interpolate(t, size=input_size, mode="bilinear", align_corners=True)
    up = F.interpolate(up, size=shape, mode="bilinear", align_corners=False)
    return up[0, 0].clamp(0, 1)
