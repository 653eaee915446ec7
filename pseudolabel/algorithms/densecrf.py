"""Fully connected CRF with Gaussian edge potentials (Krähenbühl & Koltun, NIPS 2011), in torch.

BBAM turns smoothed attribution maps into masks with a dense CRF (``docs/BBAM.md``, "What runs per
image").
The usual implementation, ``pydensecrf``, is a C++ extension that is not on the package
registries for current Pythons (it has to be compiled from a git checkout) and runs only on
the CPU. This module is the same model in plain torch, so it needs nothing beyond our
dependencies and runs on the device that holds the maps (CPU or GPU).

Model (Potts compatibility, the one BBAM uses)::

    Q_i(c)  <-  softmax_c( log p_i(c) + w_g * G_i(c) + w_b * B_i(c) )      (``iterations`` times)

where ``p`` is the input probability (clipped at ``eps``: pydensecrf's ``unary_from_softmax``)
and ``G``, ``B`` are the messages of the two kernels, symmetrically normalised as pydensecrf's
default ``NORMALIZE_SYMMETRIC``: ``M = D^-1/2 K D^-1/2 Q`` with ``D = diag(K 1)``.

- Gaussian (smoothness) kernel ``k(i, j) = exp(-|p_i - p_j|^2 / (2 sxy_g^2))`` over pixel
  positions: exact, as a separable convolution (truncated at 4 sigma, zero outside the image).
- Bilateral (appearance) kernel ``k(i, j) = exp(-|p_i - p_j|^2 / (2 sxy_b^2)
  - |I_i - I_j|^2 / (2 srgb^2))``: a 5-D Gaussian filter, approximated as in pydensecrf by
  the permutohedral lattice (Adams, Baek & Davis, Eurographics 2010): splat each pixel onto
  the 6 vertices of its enclosing simplex, blur along the 6 lattice directions with
  [1/2, 1, 1/2], slice back. Linear in the number of pixels.

:func:`dense_crf_exact` computes the bilateral messages with the full N x N kernel (small
images only); tests compare the two.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class Permutohedral:
    """Gaussian filtering ``out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j`` (approximately, up to a
    constant factor) for N points with d-dimensional features, by the permutohedral lattice.

    Built once per feature set (``features`` (N, d), already divided by the kernel widths);
    :meth:`filter` is then cheap and can be called for any (N, C) values."""

    def __init__(self, features: torch.Tensor):
        if features.dim() != 2 or features.shape[0] == 0:
            raise ValueError(f"features must be a non-empty (N, d) tensor, got shape {tuple(features.shape)}")
        f = features.to(torch.float64)
        N, d = f.shape
        dev = f.device
        self.d = d
        # scale so that the lattice blur matches a Gaussian of std 1 in feature space
        i = torch.arange(d, dtype=torch.float64, device=dev)
        cf = f * (math.sqrt(2.0 / 3.0) * (d + 1) / torch.sqrt((i + 1) * (i + 2)))
        # elevate onto the hyperplane sum = 0 of R^(d+1)
        suffix = torch.cat([cf.flip(1).cumsum(1).flip(1), torch.zeros(N, 1, dtype=cf.dtype, device=dev)], 1)
        j = torch.arange(1, d + 1, dtype=torch.float64, device=dev)
        elevated = suffix.clone()
        elevated[:, 1:] -= j * cf
        # the closest remainder-0 lattice point, and the simplex containing the point
        down = torch.round(elevated / (d + 1))
        rem0 = down * (d + 1)
        total = down.sum(1, keepdim=True).long()
        diff = elevated - rem0
        order = torch.argsort(-diff, dim=1, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(d + 1, device=dev).expand(N, d + 1).contiguous())
        rank = rank + total
        low, high = rank < 0, rank > d
        rank = torch.where(low, rank + d + 1, torch.where(high, rank - d - 1, rank))
        rem0 = torch.where(low, rem0 + d + 1, torch.where(high, rem0 - d - 1, rem0))
        # barycentric coordinates
        v = (elevated - rem0) / (d + 1)
        bary = torch.zeros(N, d + 2, dtype=torch.float64, device=dev)
        bary.scatter_add_(1, d - rank, v)
        bary.scatter_add_(1, d - rank + 1, -v)
        bary[:, 0] += 1.0 + bary[:, d + 1]
        self.weights = bary[:, :d + 1].to(torch.float32)                        # (N, d+1)
        # the d+1 vertices of each simplex: key = rem0 + canonical[r][rank] (first d coords)
        r = torch.arange(d + 1, device=dev).view(1, d + 1, 1)
        rk = rank[:, None, :d]
        keys = rem0[:, None, :d].long() + torch.where(rk <= d - r, r, r - d - 1)   # (N, d+1, d)
        # encode keys as int64 in a mixed radix with a margin for the blur neighbours
        lo = keys.amin((0, 1)) - (d + 2)
        span = keys.amax((0, 1)) - lo + (d + 3)
        if float(torch.log2(span.double()).sum()) > 62:
            raise ValueError("feature range too large for the lattice key encoding; "
                             "check the kernel widths (features must be divided by them)")
        radix = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long, device=dev), span[:-1]]), 0)
        codes = ((keys - lo) * radix).sum(-1)                                      # (N, d+1)
        self.vertices, self.offsets = torch.unique(codes.flatten(), return_inverse=True)
        self.offsets = self.offsets.view(N, d + 1)
        M = len(self.vertices)
        # blur neighbours along each of the d+1 lattice directions (M = a zero slot)
        self.neighbours = []
        for j in range(d + 1):
            delta = int(radix.sum()) - ((d + 1) * int(radix[j]) if j < d else 0)
            pair = []
            for code in (self.vertices + delta, self.vertices - delta):
                idx = torch.searchsorted(self.vertices, code).clamp(max=M - 1)
                pair.append(torch.where(self.vertices[idx] == code, idx, torch.full_like(idx, M)))
            self.neighbours.append(pair)
        self.alpha = 1.0 / (1.0 + 2.0 ** (-d))

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """(N, C) values -> (N, C) filtered values."""
        N, C = values.shape
        M = len(self.vertices)
        grid = values.new_zeros(M + 1, C)
        grid.index_add_(0, self.offsets.flatten(), (self.weights[:, :, None] * values[:, None, :]).reshape(-1, C))
        for n1, n2 in self.neighbours:
            grid = torch.cat([grid[:M] + 0.5 * (grid[n1] + grid[n2]), grid[M:]])
        return (grid[self.offsets] * self.weights[:, :, None]).sum(1) * self.alpha


def _gaussian_filter(q: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C, H, W) -> exact Gaussian-weighted sums over pixel positions (zero outside)."""
    radius = max(int(math.ceil(4 * sigma)), 1)
    x = torch.arange(-radius, radius + 1, dtype=q.dtype, device=q.device)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    C = q.shape[0]
    out = F.conv2d(q[:, None], k.view(1, 1, 1, -1), padding=(0, radius))
    out = F.conv2d(out, k.view(1, 1, -1, 1), padding=(radius, 0))
    return out[:, 0].view(C, *q.shape[1:])


def _inputs(image, prob, device):
    prob = torch.as_tensor(np.asarray(prob) if not torch.is_tensor(prob) else prob, dtype=torch.float32)
    if device is not None:
        prob = prob.to(device)
    if prob.dim() != 3 or prob.shape[0] < 2:
        raise ValueError(f"prob must be (C, H, W) with C >= 2 labels, got shape {tuple(prob.shape)}")
    img = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image).to(prob.device, torch.float32)
    if img.dim() == 2:
        img = img[:, :, None].expand(-1, -1, 3)
    if img.dim() != 3 or img.shape[2] != 3 or img.shape[:2] != prob.shape[1:]:
        raise ValueError(f"image must be (H, W, 3) or (H, W) matching prob's (H, W) = {tuple(prob.shape[1:])}, "
                         f"got shape {tuple(img.shape)}")
    return img, prob


def _features(img: torch.Tensor, sxy: float, srgb: float) -> torch.Tensor:
    H, W, _ = img.shape
    yy, xx = torch.meshgrid(torch.arange(H, device=img.device, dtype=torch.float32),
                            torch.arange(W, device=img.device, dtype=torch.float32), indexing="ij")
    return torch.cat([xx[..., None] / sxy, yy[..., None] / sxy, img / srgb], -1).reshape(H * W, 5)


def _mean_field(prob, bilateral, *, iterations, gaussian_sxy, gaussian_weight, bilateral_weight, eps):
    """Mean-field inference of B problems at once on one image, given ``bilateral(values (N, X)) ->
    (N, X)`` (unnormalised): ``prob`` (B, C, H, W); the kernels' messages of every channel of every
    problem are computed together (one Gaussian pass, one lattice pass per iteration)."""
    B, C, H, W = prob.shape
    log_p = torch.log(prob.clamp(min=eps))
    ones = torch.ones(1, H, W, dtype=prob.dtype, device=prob.device)
    ng = _gaussian_filter(ones, gaussian_sxy).clamp(min=1e-20).rsqrt()
    nb = bilateral(ones.reshape(1, -1).T).T.reshape(1, H, W).clamp(min=1e-20).rsqrt()
    q = torch.softmax(log_p, 1)
    for _ in range(iterations):
        flat = q.reshape(B * C, H, W)
        mg = (ng * _gaussian_filter(ng * flat, gaussian_sxy)).reshape(B, C, H, W)
        mb = (nb * bilateral((nb * flat).reshape(B * C, -1).T).T.reshape(B * C, H, W)).reshape(B, C, H, W)
        q = torch.softmax(log_p + gaussian_weight * mg + bilateral_weight * mb, 1)
    return q


def _check(gaussian_sxy, bilateral_sxy, bilateral_srgb, iterations):
    if min(gaussian_sxy, bilateral_sxy, bilateral_srgb) <= 0 or iterations < 0:
        raise ValueError("kernel widths must be > 0 and iterations >= 0")


def dense_crf(image, prob, *, iterations: int = 10, gaussian_sxy: float = 1.0, gaussian_weight: float = 3.0,
              bilateral_sxy: float = 80.0, bilateral_srgb: float = 3.0, bilateral_weight: float = 4.0,
              eps: float = 1e-5, device=None) -> torch.Tensor:
    """Posterior (C, H, W) float32 of the dense CRF after ``iterations`` mean-field steps.

    ``image`` (H, W, 3) uint8 RGB (or (H, W) grey), ``prob`` (C, H, W) per-label probabilities
    (numpy or torch). Runs on ``device``, else on ``prob``'s device. Defaults: BBAM's constants."""
    img, prob = _inputs(image, prob, device)
    return dense_crf_batch(img, prob[None],
                           iterations=iterations, gaussian_sxy=gaussian_sxy, gaussian_weight=gaussian_weight,
                           bilateral_sxy=bilateral_sxy, bilateral_srgb=bilateral_srgb,
                           bilateral_weight=bilateral_weight, eps=eps, device=device)[0]


def dense_crf_batch(image, probs, *, iterations: int = 10, gaussian_sxy: float = 1.0, gaussian_weight: float = 3.0,
                    bilateral_sxy: float = 80.0, bilateral_srgb: float = 3.0, bilateral_weight: float = 4.0,
                    eps: float = 1e-5, device=None) -> torch.Tensor:
    """:func:`dense_crf` of B problems on the same image at once: ``probs`` (B, C, H, W) ->
    posteriors (B, C, H, W). The lattice of the image is built once and every problem's channels
    are filtered together, on the device of ``probs`` (or ``device``): BBAM's masks of all the boxes
    of a photo, and their fallbacks, in one batch each."""
    probs = torch.as_tensor(np.asarray(probs) if not torch.is_tensor(probs) else probs, dtype=torch.float32)
    if probs.dim() != 4:
        raise ValueError(f"probs must be (B, C, H, W), got shape {tuple(probs.shape)}")
    img, first = _inputs(image, probs[0] if len(probs) else probs.new_zeros(2, *probs.shape[2:]), device)
    probs = probs.to(first.device)
    _check(gaussian_sxy, bilateral_sxy, bilateral_srgb, iterations)
    if not len(probs):
        return probs
    with torch.no_grad():
        lattice = Permutohedral(_features(img, bilateral_sxy, bilateral_srgb))
        return _mean_field(probs, lattice.filter, iterations=iterations, gaussian_sxy=gaussian_sxy,
                           gaussian_weight=gaussian_weight, bilateral_weight=bilateral_weight, eps=eps)


def dense_crf_exact(image, prob, *, iterations: int = 10, gaussian_sxy: float = 1.0, gaussian_weight: float = 3.0,
                    bilateral_sxy: float = 80.0, bilateral_srgb: float = 3.0, bilateral_weight: float = 4.0,
                    eps: float = 1e-5, device=None) -> torch.Tensor:
    """:func:`dense_crf` with the bilateral kernel as a full N x N matrix: the model without
    the lattice approximation. Memory N^2 (a few thousand pixels at most): for tests."""
    img, prob = _inputs(image, prob, device)
    with torch.no_grad():
        f = _features(img, bilateral_sxy, bilateral_srgb).double()
        K = torch.exp(-0.5 * torch.cdist(f, f) ** 2).float()
        return _mean_field(prob[None], lambda v: K @ v, iterations=iterations, gaussian_sxy=gaussian_sxy,
                           gaussian_weight=gaussian_weight, bilateral_weight=bilateral_weight, eps=eps)[0]
