from __future__ import annotations

import cv2
import numpy as np
import pytest

from pseudolabel.algorithms.grabcut import GUARDS, GrabCutParams, grabcut_label, grabcut_object
from pseudolabel.catalog import open_dataset
from pseudolabel.core.classes import CLASS_ID, IGNORE
from pseudolabel.core.errors import ConfigError
from pseudolabel.core.records import ImageRecord, ObjectRecord
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages.grabcut import GrabCutConfig, process_image
from pseudolabel.store import LabelStore

from .conftest import store_contents

RNG = np.random.default_rng(7)


def scene(height=120, width=160, grey=False):
    """Blue noisy background; returns the image and a painter for red disks."""
    image = np.clip(np.array([40, 60, 170]) + RNG.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    if grey:
        image = np.repeat(image.mean(2, keepdims=True).astype(np.uint8), 3, axis=2)
    return image


def disk(image, cx, cy, r, colour=(200, 30, 30)):
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    image[inside] = np.clip(np.array(colour) + RNG.normal(0, 8, (inside.sum(), 3)), 0, 255)
    ys, xs = np.nonzero(inside)
    return inside, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def record(image, objects):
    h, w = image.shape[:2]
    return ImageRecord("x", "x.jpg", w, h, tuple(ObjectRecord(c, b) for c, b in objects))


# ------------------------------------------------------------------ guards, each from a constructed case
def test_grabcut_finds_a_planted_object():
    image = scene()
    truth, box = disk(image, 80, 60, 30)
    mask, guards = grabcut_object(image, box, GrabCutParams(), seed=0)
    assert guards == ()
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9


@pytest.mark.parametrize("box, expected", [
    ((200, 200, 250, 250), "degenerate_box"),       # entirely outside: nothing left after clipping
    ((30, 30, 30, 60), "degenerate_box"),           # zero width
    ((10, 10, 30, 30), "tiny_box"),                 # 20 px < min_side 24
    ((0, 0, 160, 120), "whole_image"),              # no background outside the box
])
def test_box_guards(box, expected):
    mask, guards = grabcut_object(scene(), box, GrabCutParams(), seed=0)
    assert expected in guards
    x0, y0, x1, y1 = (max(box[0], 0), max(box[1], 0), min(box[2], 160), min(box[3], 120))
    if expected == "degenerate_box":
        assert not mask.any()
    else:                                           # the filled box is kept
        assert mask.sum() == (x1 - x0) * (y1 - y0) and mask[y0:y1, x0:x1].all()


def test_thin_box_guard():
    image = scene(200, 400)
    mask, guards = grabcut_object(image, (20, 100, 320, 130), GrabCutParams(), seed=0)  # 300 x 30: ratio 10
    assert guards == ("thin_box",) and mask[100:130, 20:320].all()


def test_clipped_box_is_reported_and_processed():
    image = scene()
    truth, (x0, y0, x1, y1) = disk(image, 35, 60, 30)
    mask, guards = grabcut_object(image, (x0 - 10, y0, x1, y1), GrabCutParams(), seed=0)
    assert guards[0] == "clipped_box" and (mask & truth).sum() / (mask | truth).sum() > 0.85


def test_collapsed_and_exploded_fall_back_to_the_box():
    image = scene()
    _, _ = disk(image, 80, 60, 4)                   # a dot in a large box of background colour
    mask, guards = grabcut_object(image, (40, 20, 120, 100), GrabCutParams(), seed=0)
    assert "collapsed" in guards and mask[20:100, 40:120].all()
    full = scene()
    full[30:90, 50:110] = (220, 220, 40)            # the object fills its box exactly
    mask, guards = grabcut_object(full, (50, 30, 110, 90), GrabCutParams(), seed=0)
    assert "exploded" in guards and mask[30:90, 50:110].all()


def test_grey_image_guard():
    image = scene(grey=True)
    truth, box = disk(image, 80, 60, 30, colour=(230, 230, 230))
    image[:] = image[..., :1]                       # the disk's noise too: three equal channels
    mask, guards = grabcut_object(image, box, GrabCutParams(), seed=0)
    assert guards == ("grey_image",)
    assert (mask & truth).sum() / (mask | truth).sum() > 0.85


def test_every_guard_is_flagged_per_object_in_the_stage():
    image = scene()
    _, box = disk(image, 80, 60, 30)
    rec = record(image, [(15, box), (5, (10, 10, 30, 30)), (8, (0, 0, 160, 120))])
    result = process_image(rec, image, GrabCutConfig())
    assert set(result.objects) == {f"guard_{g}" for g in GUARDS} | {"kept_fraction"}
    assert result.objects["guard_tiny_box"].tolist() == [0, 1, 0]
    assert result.objects["guard_whole_image"].tolist() == [0, 0, 1]
    assert result.counts == {"guard_tiny_box": 1, "guard_whole_image": 1}
    assert result.objects["kept_fraction"][1] == pytest.approx(1.0)


# ------------------------------------------------------------------ composition and filling rates
def test_label_composition_rule():
    image = scene()
    truth, box = disk(image, 80, 60, 30)
    mask, guards = grabcut_object(image, box, GrabCutParams(), seed=0)
    label = grabcut_label(image.shape, [box], [15], [mask], GrabCutParams(), guards=[guards])
    inner = cv2.erode(truth.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (label[inner] == 15).all()               # the object's core is committed
    assert (label[~cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)] == 0).all()
    assert (label == IGNORE).any()                  # an uncertain band along the boundary
    # a fallback object: box centre committed, outer ring of the box ignored
    box2 = (10, 10, 60, 60)
    fb = grabcut_label(image.shape, [box2], [8], [np.pad(np.ones((50, 50), bool), ((10, 60), (10, 100)))],
                       GrabCutParams(), guards=[("collapsed",)])
    assert fb[35, 35] == 8 and fb[11, 11] == IGNORE and fb[70, 70] == 0


def test_filling_rates_by_hand(tmp_path):
    from pseudolabel.catalog.vocwrite import make_voc_folders, voc_xml, write_split
    from PIL import Image

    image = scene(160, 240)
    _, box_a = disk(image, 60, 60, 30)
    _, box_b = disk(image, 170, 100, 40)
    root = make_voc_folders(tmp_path / "VOC2012")
    Image.fromarray(image).save(root / "JPEGImages" / "a.png", format="PNG")  # lossless pixels
    (root / "JPEGImages" / "a.png").rename(root / "JPEGImages" / "a.jpg")
    objs = [ObjectRecord(CLASS_ID["person"], box_a), ObjectRecord(CLASS_ID["person"], box_b),
            ObjectRecord(CLASS_ID["dog"], (100, 10, 140, 50))]
    (root / "Annotations" / "a.xml").write_text(voc_xml("a", 240, 160, objs))
    write_split(root, "train", ["a"])
    summary = run("grabcut", None, open_dataset(root), "train", tmp_path / "c", progress=False)
    s = LabelStore(summary.store)["a"]
    union = np.zeros((160, 240), bool)
    for x0, y0, x1, y1 in (box_a, box_b):
        union[y0:y1, x0:x1] = True
    person = (s.label == CLASS_ID["person"]).sum() / union.sum()
    dog = (s.label == CLASS_ID["dog"]).sum() / (40 * 40)
    assert s.filling_rate[CLASS_ID["person"]] == pytest.approx(person)
    assert s.filling_rate[CLASS_ID["dog"]] == pytest.approx(dog)
    # disks inscribed in their boxes fill pi/4 = 0.785 of them, less the ignored boundary band
    assert 0.55 < person < 0.8
    assert np.isnan(s.filling_rate[0]) and np.isnan(s.filling_rate[CLASS_ID["cat"]])


# ------------------------------------------------------------------ reference mode, determinism, jobs
def test_reference_mode_matches_a_direct_cv2_call():
    image = scene()
    _, box_a = disk(image, 50, 60, 25)
    _, box_b = disk(image, 115, 50, 30, colour=(30, 200, 30))
    rec = record(image, [(15, box_a), (12, box_b)])
    result = process_image(rec, image, GrabCutConfig(reference=True, seed=3))
    for k, (x0, y0, x1, y1) in enumerate((box_a, box_b)):
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.setRNGSeed(3 + k)
        cv2.grabCut(image, mask, (x0, y0, x1 - x0, y1 - y0), np.zeros((1, 65)), np.zeros((1, 65)),
                    5, cv2.GC_INIT_WITH_RECT)
        assert (result.masks[k] == np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD))).all()
    assert IGNORE not in result.label


def test_reference_mode_survives_a_whole_image_box():
    image = scene()
    result = process_image(record(image, [(8, (0, 0, 160, 120))]), image, GrabCutConfig(reference=True))
    assert result.objects["guard_reference_error"].tolist() == [1] and result.masks[0].all()


def test_deterministic_and_jobs_independent(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    a = run("grabcut", None, ds, "trainval", tmp_path / "a", RunOptions(jobs=1), progress=False)
    b = run("grabcut", None, ds, "trainval", tmp_path / "b", RunOptions(jobs=1), progress=False)
    c = run("grabcut", None, ds, "trainval", tmp_path / "c", RunOptions(jobs=2), progress=False)
    assert store_contents(a.store) == store_contents(b.store) == store_contents(c.store)
    import dataclasses
    saved, every = LabelStore(a.store).config, dataclasses.asdict(GrabCutConfig())
    later = {f.name for f in dataclasses.fields(GrabCutConfig) if f.metadata.get("since")}
    assert later == {"pairwise", "colour_model", "hed_weights", "init_from", "init_sure", "init_probable"}
    assert saved == {k: v for k, v in every.items() if k not in later}   # every parameter, but options
    # added later at their defaults, which are left out so that earlier stores keep their keys
    assert GrabCutConfig(**saved) == GrabCutConfig()


def test_invalid_configuration_is_refused(invoke, voc_root):
    result = invoke("grabcut", "--data-root", voc_root, "--collapse-frac", "0.99")
    assert result.exit_code == 1 and "--collapse-frac: must be below explode_frac (0.95), got 0.99" in result.output
    with pytest.raises(ValueError, match="iterations"):
        GrabCutConfig(iterations=0)
    assert issubclass(ConfigError, Exception)
