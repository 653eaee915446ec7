"""An independent numpy forward pass of HED, straight from the Keras layout of its weights file
(HWIO kernels, TensorFlow's 'same' pooling and half-pixel bilinear resize), to check the torch port."""
from __future__ import annotations

import numpy as np

BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x (H, W, Cin), kernel (kh, kw, Cin, Cout) 'same', stride 1."""
    kh, kw = kernel.shape[:2]
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros((h, w, kernel.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += padded[i:i + h, j:j + w] @ kernel[i, j]
    return out + bias


def pool_same(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, TensorFlow 'same': the last window may hang over the edge."""
    h, w, c = x.shape
    H, W = -(-h // 2), -(-w // 2)
    padded = np.full((2 * H, 2 * W, c), -np.inf)
    padded[:h, :w] = x
    return padded.reshape(H, 2, W, 2, c).max(axis=(1, 3))


def resize_bilinear(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h0, w0) -> (h, w), half-pixel centres, edge values clamped (tf.image.resize 'bilinear')."""
    h0, w0 = x.shape

    def axis(n_out, n_in):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(h, h0)
    x0, x1, fx = axis(w, w0)
    top = x[y0][:, x0] * (1 - fx) + x[y0][:, x1] * fx
    bottom = x[y1][:, x0] * (1 - fx) + x[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def hed_forward(weights: dict, image_bgr: np.ndarray) -> np.ndarray:
    """``weights``: the file's arrays by their HDF5 names; ``image_bgr`` (H, W, 3) preprocessed."""
    x = image_bgr.astype(np.float64)
    h, w = x.shape[:2]
    sides = []
    for b, (_, convs) in enumerate(BLOCKS, start=1):
        if b > 1:
            x = pool_same(x)
        for j in range(convs):
            name = f"block{b}/layers/conv2d" + (f"_{j}" if j else "") + "/vars"
            x = np.maximum(conv_same(x, weights[f"{name}/0"], weights[f"{name}/1"]), 0)
        side = conv_same(x, weights[f"dsn{b}/vars/0"], weights[f"dsn{b}/vars/1"])[..., 0]
        sides.append(side if b == 1 else resize_bilinear(side, h, w))
    fused = conv_same(np.stack(sides, -1), weights["fuse/vars/0"], weights["fuse/vars/1"])[..., 0]
    return 1 / (1 + np.exp(-fused))


def random_weights(seed: int = 0) -> dict:
    """HED-shaped arrays under their HDF5 names, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    out, previous = {}, 3
    for b, (channels, convs) in enumerate(BLOCKS, start=1):
        for j in range(convs):
            name = f"block{b}/layers/conv2d" + (f"_{j}" if j else "") + "/vars"
            out[f"{name}/0"] = rng.normal(0, (2 / (9 * previous)) ** 0.5, (3, 3, previous, channels)).astype(np.float32)
            out[f"{name}/1"] = rng.normal(0, 0.05, channels).astype(np.float32)
            previous = channels
        out[f"dsn{b}/vars/0"] = rng.normal(0, 0.1, (1, 1, channels, 1)).astype(np.float32)
        out[f"dsn{b}/vars/1"] = rng.normal(0, 0.1, 1).astype(np.float32)
    out["fuse/vars/0"] = rng.normal(0.2, 0.1, (1, 1, 5, 1)).astype(np.float32)
    out["fuse/vars/1"] = np.zeros(1, np.float32)
    return out


def write_weights(path, weights: dict) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        for name, value in weights.items():
            f[name] = value
