"""The dense CRF (torch, permutohedral lattice) against its exact N x N form and known cases."""
import numpy as np
import pytest
import torch

from pseudolabel.algorithms.densecrf import Permutohedral, dense_crf, dense_crf_exact


def two_colour_scene(seed=0, H=40, W=50, noise=0.25):
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.float64)
    img[:, :W // 2] = (200, 30, 30)
    img[:, W // 2:] = (30, 30, 200)
    img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((H, W), bool)
    truth[:, W // 2:] = True
    p = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, noise, (H, W)), 0.01, 0.99)
    return img, truth, np.stack([1 - p, p]).astype(np.float32)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_lattice_filter_approximates_the_normalised_gaussian_filter(d):
    rng = np.random.default_rng(d)
    f = torch.tensor(rng.normal(size=(800, d)) * 2.0)
    v = torch.tensor(rng.random((800, 3)), dtype=torch.float32)
    lattice = Permutohedral(f)
    K = torch.exp(-0.5 * torch.cdist(f, f) ** 2).float()
    approx = lattice.filter(v) / lattice.filter(torch.ones(800, 1))
    exact = (K @ v) / K.sum(1, keepdim=True)
    assert float((approx - exact).abs().mean()) < 0.02
    assert np.corrcoef(lattice.filter(v).flatten(), (K @ v).flatten())[0, 1] > 0.99


def test_lattice_weights_are_barycentric():
    f = torch.tensor(np.random.default_rng(0).normal(size=(500, 5)) * 3)
    lattice = Permutohedral(f)
    w = lattice.weights
    assert torch.allclose(w.sum(1), torch.ones(500), atol=1e-5) and float(w.min()) >= -1e-5
    assert lattice.offsets.shape == (500, 6) and int(lattice.offsets.max()) < len(lattice.vertices)


def test_crf_cleans_noisy_probabilities_along_colour_edges():
    img, truth, prob = two_colour_scene()
    before = ((prob[1] > 0.5) == truth).mean()
    q = dense_crf(img, prob)
    after = ((q[1] > 0.5).numpy() == truth).mean()
    assert before < 0.8 and after > 0.97
    assert q.shape == prob.shape and torch.allclose(q.sum(0), torch.ones(q.shape[1:]), atol=1e-5)


def test_lattice_crf_agrees_with_the_exact_kernel():
    for seed in range(3):
        img, truth, prob = two_colour_scene(seed, H=30, W=36, noise=0.3)
        q, qe = dense_crf(img, prob), dense_crf_exact(img, prob)
        assert float(((q[1] > 0.5) == (qe[1] > 0.5)).float().mean()) >= 0.98


def test_uniform_input_stays_uniform_and_zero_weights_keep_the_input():
    img, _, prob = two_colour_scene()
    flat = np.full_like(prob, 0.5)
    assert torch.allclose(dense_crf(img, flat), torch.full(flat.shape, 0.5), atol=1e-6)
    q = dense_crf(img, prob, gaussian_weight=0, bilateral_weight=0)
    assert torch.allclose(q, torch.from_numpy(prob), atol=1e-6)
    assert torch.allclose(dense_crf(img, prob, iterations=0), torch.from_numpy(prob), atol=1e-6)


def test_grey_image_and_torch_inputs():
    img, truth, prob = two_colour_scene()
    grey = img[:, :, 0].copy()                          # red channel: 200 left, 30 right
    q = dense_crf(torch.from_numpy(grey), torch.from_numpy(prob))
    assert ((q[1] > 0.5).numpy() == truth).mean() > 0.97


@pytest.mark.parametrize("image_shape, prob_shape, message", [
    ((10, 12, 3), (2, 10, 11), "matching prob's (H, W) = (10, 11)"),
    ((10, 12, 4), (2, 10, 12), "got shape (10, 12, 4)"),
    ((10, 12, 3), (1, 10, 12), "C >= 2 labels"),
    ((10, 12, 3), (10, 12), "got shape (10, 12)"),
])
def test_bad_shapes_are_named(image_shape, prob_shape, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dense_crf(np.zeros(image_shape, np.uint8), np.full(prob_shape, 0.5, np.float32))
