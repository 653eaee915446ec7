"""The compiled proposal generator (``proposal_merge``, ``proposal_pixels``, ``proposal_rows``) against the numpy /
Python one it replaced (``proposals_reference.py``): the same superpixels and the same
membership, row for row, on small images, with ties, plateaus and unusual parameters."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sps
from skimage.segmentation import watershed

from pseudolabel.algorithms import proposal_merge, proposals
from pseudolabel.algorithms.proposal_params import ProposalParams

from . import proposals_reference as reference
from .synth import outline
from .test_proposal_generator import drawn_scene


def same_csr(a, b) -> bool:
    a, b = a.tocsr(), b.tocsr()
    return (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))


def photo(size=80):
    import cv2
    from skimage import data
    return cv2.resize(data.astronaut()[40:340, 120:420], (size, size), interpolation=cv2.INTER_AREA)


CASES = {
    "defaults": (lambda: drawn_scene()[0], ProposalParams(), None),
    "photo": (photo, ProposalParams(), None),
    "given edges": (lambda: drawn_scene(2)[0], ProposalParams(),
                    lambda img: outline(drawn_scene(2)[1]) * 0.7 + 0.05 * np.random.default_rng(0).random(img.shape[:2])),
    # 3 x 48 histogram bins: float32 sums of more than 128 terms (numpy's pairwise halves);
    # weighted channels that the extra maps share (0, 2, 2) or not (0.5, 1, 1); start from
    # the superpixels themselves; smaller superpixels; texture and fill terms on their own
    "unusual": (photo, ProposalParams(colour_bins=48, lab_weights=(1.0, 2.0, 2.0),
                                      extra_maps=((0.0, 2.0, 2.0), (0.5, 1.0, 1.0)), start_k=(0.0, 400.0),
                                      min_region_size=24, strategies=((0.0, 0.0, 0.0, 1.0, 0.0, 1.0),
                                                                      (1.0, 0.5, 0.25, 0.0, 2.0, 0.0)),
                                      pair_levels=(3, 5, 200), triplet_levels=(3, 7)), None),
}


@pytest.mark.parametrize("case", CASES)
def test_compiled_generator_gives_the_reference_proposals(case):
    make, params, edges = CASES[case]
    img = make()
    edge_map = None if edges is None else edges(img).astype(np.float32)
    sp, M = proposals.generate_proposals(img, params, edge_map)
    sp_ref, M_ref = reference.generate_proposals(img, params, edge_map)
    assert sp.dtype == sp_ref.dtype and np.array_equal(sp, sp_ref)
    assert same_csr(M, M_ref) and M.indptr.dtype == M_ref.indptr.dtype


def test_merge_ties_and_weight_types_follow_the_reference():
    """Equal features everywhere: the heap's tie order (a, then c) decides every merge. A weight
    that is a numpy float64 makes numpy multiply the float32 intersection in float64."""
    rng = np.random.default_rng(3)
    n, grid = 30, np.arange(30).reshape(5, 6)
    ei = np.r_[grid[:, :-1].ravel(), grid[:-1].ravel()]
    ej = np.r_[grid[:, 1:].ravel(), grid[1:].ravel()]
    bsum, blen = np.ones(len(ei)), np.ones(len(ei))
    size = np.full(n, 10.0)
    box = np.c_[np.repeat(np.arange(5), 6), np.tile(np.arange(6), 5), np.repeat(np.arange(5), 6) + 1,
                np.tile(np.arange(6), 5) + 1].astype(float)
    flat = {name: np.full((n, d), 1 / d, np.float32) for name, d in (("lab", 48), ("hsv", 48), ("texture", 17))}
    noisy = {name: (h * rng.random(h.shape).astype(np.float32)).astype(np.float32) for name, h in flat.items()}
    for feats in (flat, noisy):
        for weights in ((1.0, 1.0, 1.0, 1.0, 1.0, 1.0), (1, 2, 0, 1, 1, 0), (0.0, np.float64(0.3), 1.0, 1.0, 1.0, 1.0),
                        (0.5, np.float32(0.7), 0.0, 0.0, 0.0, 1.0)):
            args = (n, ei, ej, bsum, blen, size, box, feats, weights, 300)
            assert np.array_equal(proposals._merge_hierarchy(*args), reference.merge_hierarchy(*args)), weights


def test_watershed_is_scikit_images():
    """Smooth images (labels by steepest descent) and quantised ones (plateaus and ties between
    markers of equal value: scikit-image's heap order, reproduced)."""
    import cv2
    rng = np.random.default_rng(0)
    images = [cv2.GaussianBlur(rng.random((40, 50)).astype(np.float32), (0, 0), 2) for _ in range(3)]
    images += [rng.integers(0, 3, (rng.integers(1, 30), rng.integers(1, 30))).astype(np.float32) for _ in range(10)]
    images += [np.round(im * 6) / 6 for im in images[:3]] + [np.zeros((5, 7), np.float32)]
    for image in images:
        assert np.array_equal(proposals._watershed(image), watershed(image))


def test_row_kernels_follow_the_reference():
    """Rows and regions past a word (64) and not a multiple of it."""
    rng = np.random.default_rng(1)
    n, P = 70, 150
    ei, ej = np.nonzero(np.triu(rng.random((n, n)) < 0.06, 1))
    props = rng.random((P, n)) < 0.4
    props[20:30] = props[:10]                                   # duplicates
    props[40] = False                                           # an empty row
    border = rng.random(n) < 0.3
    assert np.array_equal(proposals._fill_holes(props, border, ei, ej), reference.fill_holes(props, border, ei, ej))
    unique = proposals._unique_rows(proposals._pack(props))
    assert np.array_equal(proposals._pack(reference.unique_rows(props)), unique)
    M = sps.csr_matrix(np.r_[props, props[::-1], props[5:9]])
    assert same_csr(proposals._unique_sparse_rows(M), reference.unique_sparse_rows(M))


def test_float32_sums_are_numpys():
    rng = np.random.default_rng(2)
    for n in list(range(0, 140)) + [255, 256, 300, 1000, 3001]:
        x = (rng.random(n) ** 3).astype(np.float32)
        assert np.float32(proposal_merge._pairwise_sum32(x, 0, n)) == x.sum()


def test_histogram_weights_multiply_in_numpys_precision():
    """A chain of three regions whose two histogram intersections are neighbouring float32
    numbers that a Python float weight's float32 product rounds together (a tie: the lower pair
    merges first) but a numpy float64 weight's product keeps apart (the larger merges first)."""
    x = np.float32(0.5)
    while np.float32(0.3) * x != np.float32(0.3) * np.nextafter(x, np.float32(1)):
        x = np.nextafter(x, np.float32(1))
    feats = {"lab": np.array([[x], [1.0], [np.nextafter(x, np.float32(1))]], np.float32)}
    ei, ej, ones = np.array([0, 1]), np.array([1, 2]), np.ones(2)
    box = np.array([[0, 0, 1, 1], [0, 1, 1, 2], [0, 2, 1, 3]], float)
    for w, first in ((0.3, [0, 1]), (np.float64(0.3), [1, 2])):
        args = (3, ei, ej, ones, ones, np.ones(3), box, feats, (0.0, w, 0.0, 0.0, 0.0, 0.0), 3)
        assert reference.merge_hierarchy(*args)[0].tolist() == first
        assert proposals._merge_hierarchy(*args)[0].tolist() == first


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    """Where numba finds no writable place for its disk cache (a read-only install and no
    writable home), njit(cache=True) raises at import: the kernels compile without the cache."""
    from pseudolabel.algorithms import compiled

    real = compiled._njit

    def no_cache_place(*args, **options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x.py'")
        return real(*args, **options)
    monkeypatch.setattr(compiled, "_njit", no_cache_place)

    @compiled.njit
    def twice(a):
        return 2 * a

    assert twice(21) == 42
    assert compiled.njit(lambda a: a + 1, nogil=True)(1) == 2

    def other(*args, **options):
        raise RuntimeError("something else")
    monkeypatch.setattr(compiled, "_njit", other)
    with pytest.raises(RuntimeError, match="something else"):
        compiled.njit(lambda a: a)
