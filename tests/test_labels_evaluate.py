from __future__ import annotations

import numpy as np
import pytest

from pseudolabel.evaluation.semantic import confusion_matrix, miou_of, paired_bootstrap, scores
from pseudolabel.core.labels import filling_rates, instance_map, paint_order, paint_smaller_on_top, box_masks


def test_smaller_box_painted_on_top():
    boxes = np.array([[0, 0, 4, 4], [1, 1, 3, 3], [0, 0, 10, 10]])
    assert paint_order(boxes).tolist() == [2, 0, 1]
    label = paint_smaller_on_top(box_masks(boxes, (10, 10)), np.array([7, 8, 9]), boxes)
    assert label[2, 2] == 8 and label[0, 0] == 7 and label[9, 9] == 9


def test_filling_rate_by_hand():
    # class 15: two overlapping boxes, union = 4x4 + 4x4 - 2x2 overlap = 28 pixels
    boxes = np.array([[0, 0, 4, 4], [2, 2, 6, 6], [7, 7, 9, 9]])
    classes = np.array([15, 15, 8])
    label = np.zeros((10, 10), np.uint8)
    label[0:2, 0:4] = 15      # 8 pixels
    label[4:6, 3:6] = 15      # 6 pixels
    label[7, 7] = 8           # 1 of the 4 pixels of the class-8 box
    label[0, 9] = 255
    rates = filling_rates(label, boxes, classes)
    assert rates[15] == pytest.approx(14 / 28)
    assert rates[8] == pytest.approx(1 / 4)
    assert np.isnan(rates[[0, 1, 20]]).all()


def test_instance_map_follows_label_and_order():
    boxes = np.array([[0, 0, 6, 6], [2, 2, 4, 4]])
    classes = np.array([15, 5])
    masks = box_masks(boxes, (6, 6))
    label = paint_smaller_on_top(masks, classes, boxes)
    label[0, 0] = 255
    inst = instance_map(label, masks, classes, boxes)
    assert inst[3, 3] == 2 and inst[1, 1] == 1 and inst[0, 0] == 255


def test_confusion_matrix_hand_computed():
    gt = np.array([[0, 0, 1, 1],
                   [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 255],
                     [2, 2, 0, 1]])
    m = confusion_matrix(gt, pred)
    assert m.shape == (21, 22) and m.sum() == 7           # the GT-255 pixel is dropped
    assert m[0, 0] == 1 and m[0, 1] == 1 and m[0, 2] == 1
    assert m[1, 1] == 1 and m[1, 21] == 1                  # pred 255 -> last column
    assert m[2, 2] == 1 and m[2, 0] == 1


def test_scores_hand_computed():
    gt = np.array([[0, 0, 1, 1],
                   [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 255],
                     [2, 2, 0, 1]])
    s = scores(confusion_matrix(gt, pred))
    # committed pixels (pred != 255): 6. class 0: TP1 FP1 FN2 -> 1/4; class 1: TP1 FP1 FN0 -> 1/2;
    # class 2: TP1 FP1 FN1 -> 1/3
    assert s["miou"] == pytest.approx(100 * (1 / 4 + 1 / 2 + 1 / 3) / 3, abs=1e-3)
    assert s["per_class"]["aeroplane"] == pytest.approx(50.0)
    assert s["per_class"]["cat"] is None                  # absent from both: not in the mean
    assert s["coverage"] == pytest.approx(6 / 7)
    # 255 as background: class 0: TP1 FP2 FN2 -> 1/5; class 1: TP1 FP1 FN1 -> 1/3; class 2 unchanged
    assert s["miou_ignore_as_background"] == pytest.approx(100 * (1 / 5 + 1 / 3 + 1 / 3) / 3, abs=1e-3)


def test_matrices_add_over_images():
    rng = np.random.default_rng(0)
    a_gt, a_pr = rng.integers(0, 21, (2, 30, 30))
    b_gt, b_pr = rng.integers(0, 21, (2, 30, 30))
    whole = confusion_matrix(np.concatenate([a_gt, b_gt]), np.concatenate([a_pr, b_pr]))
    assert (whole == confusion_matrix(a_gt, a_pr) + confusion_matrix(b_gt, b_pr)).all()


def test_confusion_rejects_bad_values():
    with pytest.raises(ValueError, match="outside 0..20/255"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 30))
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)))


def _random_matrices(rng, n, absent=(5, 9)):
    """n per-image matrices of noisy labellings; the classes in ``absent`` never occur."""
    out = []
    for _ in range(n):
        gt = rng.integers(0, 21, (12, 12))
        gt[np.isin(gt, absent)] = 0
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 21, gt.shape))
        pred[np.isin(pred, absent)] = 0
        pred[rng.random(gt.shape) < 0.1] = 255
        out.append(confusion_matrix(gt, pred))
    return np.stack(out)


def test_vectorised_miou_equals_scores():
    m = _random_matrices(np.random.default_rng(1), 6)
    assert np.allclose(miou_of(m), [scores(x)["miou"] for x in m], atol=1e-3)
    assert miou_of(m.sum(0)) == pytest.approx(scores(m.sum(0))["miou"], abs=1e-3)
    assert np.isnan(miou_of(np.zeros((21, 22))))


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(2)
    before = _random_matrices(rng, 30)
    same = paired_bootstrap(before, before, resamples=200)
    assert same["difference"] == same["low"] == same["high"] == 0
    # after: every image's errors halved (half of the off-diagonal counts moved to the diagonal)
    after = before.copy()
    for m in after:
        off = m[:, :21] - np.diag(np.diag(m[:, :21]))
        moved = off // 2
        m[:, :21] -= moved
        m[np.arange(21), np.arange(21)] += moved.sum(1)
    better = paired_bootstrap(before, after, resamples=500, seed=3)
    assert 0 < better["low"] < better["difference"] < better["high"]
    assert better == paired_bootstrap(before, after, resamples=500, seed=3)          # deterministic
    # one image carrying the whole change: a wide interval that reaches 0
    one = before.copy()
    one[0] = after[0] * 40
    before_one = before.copy()
    before_one[0] = before[0] * 40
    lopsided = paired_bootstrap(before_one, one, resamples=500)
    assert lopsided["low"] <= 0 < lopsided["difference"] < lopsided["high"]


def test_paired_bootstrap_refuses_mismatched_inputs():
    m = _random_matrices(np.random.default_rng(4), 3)
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(m, m[:2])
    with pytest.raises(ValueError, match="no images"):
        paired_bootstrap(m[:0], m[:0])
    with pytest.raises(ValueError, match="level must be in"):
        paired_bootstrap(m, m, level=95)


def test_per_image_matrices_add_up_to_the_store_matrix(voc_root, tmp_path):
    from pseudolabel.catalog import open_dataset
    from pseudolabel.evaluation.semantic import evaluate_store
    from pseudolabel.runner import run
    from pseudolabel.store import LabelStore
    ds = open_dataset(voc_root)
    store = LabelStore(run("grabcut", None, ds, "train", tmp_path, progress=False).store)
    result = evaluate_store(store, ds, "train", progress=False, per_image=True)
    assert result.per_image.shape == (len(store.all_ids), 21, 22)
    assert (result.per_image.sum(0) == result.matrix).all() and result.per_image.any(axis=(1, 2)).all()
    assert evaluate_store(store, ds, "train", progress=False).per_image is None
