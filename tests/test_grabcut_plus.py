"""GrabCut+ (grabcut --pairwise edges): the boundary map decides where colour cannot."""
from __future__ import annotations

import cv2
import numpy as np

from pseudolabel.algorithms.grabcut import GrabCutParams, grabcut_object
from pseudolabel.algorithms.grabcut_plus import min_cut, pairwise_weights


def camouflage(seed=0):
    """An ellipse in noise of the same colour statistics as its surroundings, and its outline
    blurred as a boundary detector would give it."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    disk = ((yy - 60) / 35) ** 2 + ((xx - 80) / 45) ** 2 <= 1
    image = rng.normal(128, 40, (h, w, 3)).clip(0, 255).astype(np.uint8)
    outline = np.zeros((h, w), bool)
    outline[:, 1:] |= disk[:, 1:] != disk[:, :-1]
    outline[1:] |= disk[1:] != disk[:-1]
    edges = cv2.GaussianBlur(outline.astype(np.float32), (7, 7), 1.5)
    return image, edges / edges.max(), disk


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_boundaries_find_an_object_that_colour_cannot():
    image, edges, disk = camouflage()
    box = (30, 20, 130, 100)
    colour, colour_guards = grabcut_object(image, box, GrabCutParams(), 0, False)
    plus, plus_guards = grabcut_object(image, box, GrabCutParams(), 0, False, edges)
    assert plus_guards == () and iou(plus, disk) > 0.9
    assert iou(plus, disk) > iou(colour, disk) + 0.2
    again, _ = grabcut_object(image, box, GrabCutParams(), 0, False, edges)
    assert (again == plus).all()                                        # deterministic for a seed
    assert not plus[:, :30].any() and not plus[100:].any()              # never outside the box


def test_min_cut_is_exact_on_a_chain():
    """S -> 0 -> 1 -> 2 -> T as terminal links and pairs: the cheapest cut is the weakest pair."""
    source = np.array([1000, 0, 0])
    sink = np.array([0, 0, 1000])
    pairs = [(np.array([0, 1]), np.array([1, 2]), np.array([5.0, 0.3]))]      # cut 1-2 (30) < 0-1 (500)
    assert min_cut(source, sink, pairs).tolist() == [True, True, False]
    pairs = [(np.array([0, 1]), np.array([1, 2]), np.array([0.3, 5.0]))]
    assert min_cut(source, sink, pairs).tolist() == [True, False, False]


def test_warm_cuts_without_the_tied_pixels_are_scipys_cuts(monkeypatch):
    """The compiled max flow, started from the last cut's flow and with the pixels tied to T left
    out of the graph, returns scipy's source side (the smallest): the masks do not depend on it."""
    from pseudolabel.algorithms import grabcut_plus

    rng = np.random.default_rng(0)
    inside = np.zeros((14, 17), bool)
    inside[3:11, 2:13] = True
    inside = inside.ravel()
    pairs = pairwise_weights(rng.random((14, 17)) ** 3)
    fast = grabcut_plus.Graph(inside.size, pairs, ~inside)
    for _ in range(3):                                                  # GrabCut's iterations
        unary = rng.normal(4000, 20000, inside.size)
        source = np.where(inside, np.round(np.maximum(unary, 0)), 0)
        sink = np.where(inside, np.round(np.maximum(-unary, 0)), grabcut_plus.BIG)
        cut = fast.cut(source, sink)
        with monkeypatch.context() as m:                                # numpy and scipy only
            m.setattr(grabcut_plus, "_maxflow_compiled", None)
            m.setattr(grabcut_plus, "_arcs_compiled", None)
            reference = grabcut_plus.Graph(inside.size, pairs).cut(source, sink)
        assert 0 < cut.sum() < inside.sum() and (cut == reference).all() and not cut[~inside].any()


def test_pairs_across_a_boundary_are_cheap():
    """One boundary column in a 20-column map (about a tenth of the pairs touch it, as in photos)."""
    edges = np.zeros((4, 20), np.float32)
    edges[:, 10] = 1.0
    (p, q, w), *_ = pairwise_weights(edges)                            # horizontal pairs first
    across = w[(p % 20 == 9) | (p % 20 == 10)]
    inside = w[(p % 20 == 0)]
    assert across.max() < 0.05 * inside.min() and np.allclose(inside, 50.0)


def test_grabcut_plus_through_the_cli(invoke, voc_root, fake_weights):
    path, _ = fake_weights
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    missing = invoke("grabcut", "--split", "train", "--pairwise", "edges", env=env)
    assert missing.exit_code != 0 and "edges" in missing.output
    assert invoke("edges", "--split", "train", "--weights", path, env=env).exit_code == 0
    result = invoke("grabcut", "--split", "train", "--pairwise", "edges", env=env)
    assert result.exit_code == 0, result.output
    reference = invoke("grabcut", "--split", "train", "--pairwise", "edges", "--reference", env=env)
    assert reference.exit_code != 0 and "--pairwise" in reference.output, reference.output


def test_colour_models_in_feature_space_separate_what_colours_cannot():
    """Same colours inside and outside the ellipse, but a feature channel that tells them apart:
    GMMs over the features find the object with colour contrast as the pairwise term."""
    image, _, disk = camouflage(1)
    features = np.concatenate([image.astype(np.float32), 40.0 * disk[..., None].astype(np.float32)
                               + np.random.default_rng(2).normal(0, 5, disk.shape)[..., None]], axis=2)
    box = (30, 20, 130, 100)
    colour, _ = grabcut_object(image, box, GrabCutParams(), 0, False)
    mask, guards = grabcut_object(image, box, GrabCutParams(), 0, False, None, features)
    assert guards == () and iou(mask, disk) > 0.9 and iou(mask, disk) > iou(colour, disk) + 0.2


def test_vgg_features_are_reduced_and_spread_like_colours(fake_weights):
    from pseudolabel.models.hed import FEATURE_SPREAD, load_hed, vgg_features
    image = np.random.default_rng(3).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    features = vgg_features(load_hed(fake_weights[0]), image)
    assert features.shape == (45, 61, 6) and features.dtype == np.float32
    assert np.allclose(features.std(axis=(0, 1)), FEATURE_SPREAD, rtol=0.35)
