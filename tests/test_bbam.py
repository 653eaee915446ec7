"""BBAM: the detector adapter, positives, mask optimisation, maps to labels, the stage.

The planted detector (``pseudolabel.models.toydetector``) scores "person" by the redness of the RoI,
so the true attribution of a red object's box is the red object."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pseudolabel.algorithms.bbam import (BBAMParams, initial_mask, jitter_boxes, map_to_original, mask_stride,
                                         optimise_masks, select_positives)
from pseudolabel.algorithms.bbam_masks import MASK_STATUSES, bbam_label, gaussian_blur, map_prior, published_masks
from pseudolabel.algorithms.densecrf import dense_crf_batch
from pseudolabel.catalog import open_dataset
from pseudolabel.core.classes import IGNORE
from pseudolabel.models.detector import (COCO_WEIGHTS_FILE, VOC_TO_COCO, Detector, build_model, read_checkpoint)
from pseudolabel.core.errors import ConfigError
from pseudolabel.core.records import ObjectRecord
from pseudolabel.runner import merge_shards, RunOptions, run
from pseudolabel.stages.bbam import BBAMConfig
from pseudolabel.store import LabelStore
from pseudolabel.models.toydetector import toy_detector
from pseudolabel.catalog.vocwrite import make_voc_folders, voc_xml, write_split

from .conftest import store_contents

PERSON = 15
FAST = dict(steps=60, num_jitter=300, min_size=256, max_size=512)


def red_scene(seed=0, size=(150, 200), objects=((40, 30, 110, 100),)):
    """Mid-grey photo with noise and red ellipses filling the given boxes; (image, object masks)."""
    rng = np.random.default_rng(seed)
    H, W = size
    img = np.clip(128 + rng.normal(0, 3, (H, W, 3)), 0, 255)
    yy, xx = np.mgrid[:H, :W]
    masks = []
    for x0, y0, x1, y1 in objects:
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        m = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
        img[m] = (210, 50, 45)
        masks.append(m)
    return img.astype(np.uint8), np.array(masks)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


# -- the adapter ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_resnet():
    torch.manual_seed(0)
    return Detector(build_model(21, min_size=64, max_size=96))


def test_adapter_pins_torchvision_attribute_paths_and_shapes(small_resnet):
    m = small_resnet.model
    heads = m.roi_heads
    assert heads.box_roi_pool.output_size == (7, 7) and heads.box_roi_pool.sampling_ratio == 2
    assert tuple(heads.box_coder.weights) == (10.0, 10.0, 5.0, 5.0)
    x, scale = small_resnet.prepare(np.zeros((100, 150, 3), np.uint8))
    assert scale == pytest.approx(0.64) and x.shape == (3, 64, 96)   # 64 x 96 valid, already /32
    feats = small_resnet.features(x[None])
    assert list(feats) == ["0", "1", "2", "3", "pool"] and feats["0"].shape == (1, 256, 16, 24)
    props = [torch.tensor([[0.0, 0, 40, 40], [10, 10, 60, 50], [5, 5, 20, 30]])]
    pooled = heads.box_roi_pool(feats, props, [(64, 96)])
    assert pooled.shape == (3, 256, 7, 7)
    hidden = heads.box_head(pooled)
    assert hidden.shape == (3, 1024)
    logits, reg = heads.box_predictor(hidden)
    assert logits.shape == (3, 21) and reg.shape == (3, 84)
    l2, d2 = small_resnet.head(feats, props, (64, 96))
    assert torch.equal(l2, logits) and torch.equal(d2, reg.view(3, 21, 4))
    assert torch.allclose(small_resnet.decode(torch.zeros(3, 4), props[0]), props[0])


def test_coco_detector_is_seen_through_the_voc_mapping():
    torch.manual_seed(0)
    model = build_model(91, min_size=64, max_size=96)
    det = Detector(model, (0, *VOC_TO_COCO))
    x, _ = det.prepare(np.full((64, 96, 3), 90, np.uint8))
    feats = det.features(x[None])
    props = [torch.tensor([[0.0, 0, 40, 40]])]
    logits, deltas = det.head(feats, props, (64, 96))
    raw_logits, raw_reg = model.roi_heads.box_predictor(model.roi_heads.box_head(
        model.roi_heads.box_roi_pool(feats, props, [(64, 96)])))
    assert torch.equal(logits[0, 15], raw_logits[0, 1])            # person = COCO 1
    assert torch.equal(logits[0, 1], raw_logits[0, 5])             # aeroplane = COCO airplane (5)
    assert torch.equal(deltas[0, 20], raw_reg.view(1, 91, 4)[0, 72])  # tvmonitor = COCO tv (72)
    with pytest.raises(ConfigError, match="91 classes"):
        Detector(model)


def test_missing_and_bad_weights_say_which_file(tmp_path):
    with pytest.raises(ConfigError, match=f"not found: .*{COCO_WEIGHTS_FILE}.*hub/checkpoints|{COCO_WEIGHTS_FILE}"):
        read_checkpoint(tmp_path / COCO_WEIGHTS_FILE)
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pth: not a readable PyTorch checkpoint"):
        read_checkpoint(bad)
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="other.pth: not a Faster R-CNN"):
        read_checkpoint(tmp_path / "other.pth")


def test_checkpoint_round_trip_with_train_detector_layout(tmp_path):
    torch.manual_seed(0)
    model = build_model(21, min_size=64, max_size=96)
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "voc.pth")
    det = Detector.from_checkpoint(tmp_path / "voc.pth", min_size=64, max_size=96)
    assert all(not p.requires_grad for p in det.model.parameters())
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(det.model.state_dict()[key], model.state_dict()[key])


# -- positives and optimisation -------------------------------------------------------------
def test_jitter_is_within_the_published_range_and_clipped():
    rng = np.random.default_rng(0)
    out = jitter_boxes(np.array([20, 30, 120, 80]), 1000, 0.3, (100, 130), rng)
    assert out.shape == (1000, 4)
    assert (out[:, 0] >= 0).all() and (out[:, 2] <= 130).all() and (out[:, 3] <= 100).all()
    assert np.abs(out[:, 0] - 20).max() <= 30 + 1e-4 and np.abs(out[:, 1] - 30).max() <= 15 + 1e-4


def test_positives_follow_the_cascade_and_the_class():
    det = toy_detector(size=256)
    img, _ = red_scene()
    x, s = det.prepare(img)
    size = (round(150 * s), round(200 * s))
    feats = det.features(x[None])
    box = np.array([40, 30, 110, 100]) * s
    p = select_positives(det, feats, box, PERSON, size, BBAMParams(), np.random.default_rng(0))
    assert 0 < len(p) <= 100 and p.level in (0.9, 0.85, 0.8)
    from pseudolabel.algorithms.bbam import box_iou
    assert (box_iou(p.regressed, torch.as_tensor(box, dtype=torch.float32)) > p.level).all()
    none = select_positives(det, feats, box, 3, size, BBAMParams(), np.random.default_rng(0))  # bird: never argmax
    assert len(none) == 0 and np.isnan(none.level)


def test_stride_and_initial_mask():
    params = BBAMParams()
    assert mask_stride(np.array([0, 0, 10, 10]), (800, 800), params) == pytest.approx(16 + 48 * 10 / 800)
    assert mask_stride(np.array([0, 0, 800, 600]), (600, 800), params) == pytest.approx(64)
    m = initial_mask(torch.tensor([[0.0, 0, 399, 299]]), (600, 800), 40.0)
    # cell i sits at input row i * 599 / 14 (42.8 i), column j at j * 799 / 19 (42.05 j)
    assert m.shape == (15, 20) and m[:7, :10].all() and not m[7:].any() and not m[:, 10:].any()


def test_attribution_concentrates_on_the_planted_object_and_fast_equals_reference():
    det = toy_detector(size=256)
    img, gt = red_scene()
    cfg = BBAMParams(**FAST)
    x, s = det.prepare(img)
    size = (round(150 * s), round(200 * s))
    box = np.array([[30, 20, 120, 110]]) * s
    pos = [select_positives(det, det.features(x[None]), box[0], PERSON, size, cfg, np.random.default_rng(0))]
    fast, loss = optimise_masks(det, img, box, [PERSON], pos, cfg)
    ref, loss_ref = optimise_masks(det, img, box, [PERSON], pos, dataclasses.replace(cfg, reference=True))
    assert np.abs(fast[0] - ref[0]).max() < 1e-5 and loss == pytest.approx(loss_ref, rel=1e-5)
    amap = map_to_original(fast[0], size, (150, 200))
    inside = amap[30:100, 40:110][gt[0][30:100, 40:110]].mean()
    outside = amap[20:110, 30:120][~gt[0][20:110, 30:120]].mean()
    assert inside > 0.5 > outside


def test_gradients_reach_only_the_mask_and_reference_turns_them_on(small_resnet):
    det = small_resnet
    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    from pseudolabel.algorithms.bbam import Positives
    props = torch.tensor([[10.0, 10, 50, 40], [12, 8, 48, 44]])
    pos = Positives(props, props, torch.zeros(2, 4), torch.full((2,), 0.5), 0.9)
    cfg = BBAMParams(steps=2, min_size=64, max_size=96)
    seen = []
    hook = lambda n: seen.append([p.grad is not None for p in det.model.parameters()])
    masks, _ = optimise_masks(det, img, np.array([[10, 10, 50, 40]]), [PERSON], [pos], cfg, step_hook=hook)
    assert not any(any(s) for s in seen) and all(not p.requires_grad for p in det.model.parameters())
    assert masks[0].shape == (2, 2) and 0 <= masks[0].min() and masks[0].max() <= 1
    seen.clear()
    optimise_masks(det, img, np.array([[10, 10, 50, 40]]), [PERSON], [pos],
                   dataclasses.replace(cfg, reference=True), step_hook=hook)
    assert all(any(s) for s in seen)                               # the published defect, reproduced
    assert all(p.grad is None and not p.requires_grad for p in det.model.parameters())  # and undone


# -- maps to masks and labels, as published -----------------------------------------------------
def _identity_crf(image, probs, **kw):
    """A CRF that changes nothing: the foreground is where the prior exceeds crf_keep."""
    return torch.as_tensor(probs)


def test_map_prior_steps_by_hand():
    """Normalised over the whole map (min subtracted, divided by the max), cut to the box, divided by
    the value of rank int(A (1 - theta)) and clipped (values below are scaled up, not left as they
    are), renormalised; no blur here (blur_min = blur_range = 0)."""
    params = BBAMParams(blur_min=0, blur_range=0)
    m = torch.full((6, 8), 0.2)
    m[1:5, 2:6] = torch.tensor([[0.2, 0.4, 0.6, 1.0]] * 4)          # the box (2, 1, 6, 5): 16 pixels
    m[0, 0] = 1.2                                                     # outside the box, in the normalisation
    got = map_prior(m, (2, 1, 6, 5), theta=0.5, params=params)
    norm = (m - 0.2) / 1.2                                            # divided by the max, not max - min
    rank = int(16 * (1 - 0.5))                                        # 8th largest of the box, 0-based
    t = float(torch.sort(norm[1:5, 2:6].flatten(), descending=True).values[rank]) + 1e-8
    want = torch.zeros_like(m)
    want[1:5, 2:6] = (norm[1:5, 2:6] / t).clamp(0, 1)
    want = want / want.max()
    assert torch.allclose(got, want, atol=1e-6)
    assert abs(float(got[1, 3]) - float(norm[1, 3]) / t) < 1e-6 and 0 < float(got[1, 3]) < 1   # scaled up
    assert map_prior(torch.zeros(6, 8), (2, 1, 6, 5), 0.5, params) is None   # an empty map is no map


def test_blur_is_opencv_gaussian_with_a_two_sigma_window_on_the_whole_image():
    import cv2
    from pseudolabel.algorithms.bbam_masks import blur_sigma
    rng = np.random.default_rng(0)
    m = rng.random((37, 53)).astype(np.float32)
    for k in (1, 5, 20, 60):                                          # 60: the window is wider than the image
        want = cv2.GaussianBlur(m.astype(np.float64), (2 * k + 1, 2 * k + 1), k)
        np.testing.assert_allclose(gaussian_blur(torch.from_numpy(m), k).numpy(), want, atol=1e-5)
    params = BBAMParams()
    assert blur_sigma(100 * 50, 375, 500, params) == int(16 + 48 * np.sqrt(5000 / (375 * 500)))
    assert blur_sigma(375 * 500, 375, 500, params) == 64


def test_the_crf_sees_the_whole_image_and_zero_outside_the_box():
    seen = []

    def recording(image, probs, **kw):
        seen.append(probs.clone())
        return torch.as_tensor(probs)
    img = np.full((60, 80, 3), 128, np.uint8)
    maps = torch.zeros(1, 60, 80)
    maps[0, 20:40, 30:60] = 1.0
    published_masks(img, maps, np.array([[30, 20, 60, 40]]), np.array([True]), BBAMParams(), recording)
    first = seen[0]                                                   # (2 problems: tight, loose, 2, H, W)
    assert first.shape == (2, 2, 60, 80)
    outside = torch.ones(60, 80, dtype=torch.bool)
    outside[20:40, 30:60] = False
    assert (first[:, 0][:, outside] == 0).all() and (first[:, 1][:, outside] == 1).all()


def test_fallbacks_as_published_and_never_silent():
    """A good map is kept; a map whose mask is at most A/5 of a small box falls back to box priors
    (foreground kept at 1) until one passes A/3; a box without positives tries its own priors,
    kept above A/5; when nothing passes, the last result is kept and said so; an empty mask is
    flagged 'empty', never 'map'."""
    H, W = 200, 200
    img, gt = red_scene(size=(H, W), objects=((20, 20, 50, 50),))
    boxes = np.array([[20, 20, 50, 50], [100, 100, 130, 130], [140, 10, 170, 40]])
    maps = torch.zeros(3, H, W)
    maps[0][torch.from_numpy(gt[0])] = 1.0                            # a good map
    maps[1, 100:103, 100:103] = 1.0                                   # a tiny foreground in a small box
    has = np.array([True, True, False])                               # the third: no positives
    params = BBAMParams(blur_min=0, blur_range=0)
    tight, loose, status, loose_status = published_masks(img, maps, boxes, has, params, _identity_crf)
    assert status[0] == "map" and status[1] == "fallback" and status[2] == "no_map_fallback"
    assert tight[1, 100:130, 100:130].all() and not tight[1, :100].any()  # the 0.95 prior passed A/3
    assert tight[2, 10:40, 140:170].all() and (tight[2] == loose[2]).all()
    assert loose_status[2] == "no_map_fallback"

    def weak(image, probs, **kw):                                     # a small blob whatever the prior
        q = torch.zeros_like(torch.as_tensor(probs))
        q[:, 1] = 1
        q[:, 0, 0, 0], q[:, 1, 0, 0] = 1, 0
        return q
    tight, _, status, _ = published_masks(img, maps, boxes, has, params, weak)
    assert status == ["fallback_unaccepted", "fallback_unaccepted", "no_map_unaccepted"]
    assert [int(t.sum()) for t in tight] == [1, 1, 1]                # the last result, kept
    nothing = lambda image, probs, **kw: torch.stack([torch.zeros_like(torch.as_tensor(probs)[:, 0]),
                                                      torch.ones_like(torch.as_tensor(probs)[:, 0])], 1)
    tight, loose, status, loose_status = published_masks(img, maps, boxes, has, params, nothing)
    assert status == loose_status == ["empty"] * 3 and not tight.any() and not loose.any()
    assert set(MASK_STATUSES) >= set(status)


def test_masks_agree_with_an_independent_port_of_the_published_code():
    """Ours (torch, every box of the photo through the CRF in one batch) against tests/bbam_published.py
    (numpy and OpenCV line by line, one CRF at a time) on the same maps, made from the drawn objects'
    masks as BBAM's coarse masks look: mean IoU of tight and of loose masks >= 0.95."""
    from .bbam_published import final_masks, simulated_map
    from .synth import synth_image
    rng = np.random.default_rng(3)
    ious = {"tight": [], "loose": []}
    for n in (1, 2, 3, 3):
        img, objects, _, inst = synth_image(rng, 96, 128, n)
        boxes = np.array([o.box for o in objects])
        maps = np.stack([simulated_map(inst == k + 1, b, rng) for k, b in enumerate(boxes)])
        maps[0] *= rng.random() > 0.25                                # now and then a box without a map
        tight, loose, _, _ = published_masks(img, torch.from_numpy(maps), boxes, maps.max((1, 2)) > 0,
                                             BBAMParams(), dense_crf_batch)
        for kind, ours, theta in (("tight", tight, 0.85), ("loose", loose, 0.2)):
            port = final_masks(img, maps, boxes, theta)
            ious[kind] += [iou(a, b) for a, b in zip(ours, port)]
    assert np.mean(ious["tight"]) >= 0.95 and np.mean(ious["loose"]) >= 0.95, ious


def test_label_composed_as_published():
    """Each class the union of its tight masks; two classes on a pixel: 255; a box inside another
    box repaints its whole tight mask (the innermost last); loose-only pixels of any object are 255,
    applied last, even over another object's tight mask; the rest background. Checked against the
    port of create_semantic_labels.py too."""
    from .bbam_published import aggregated_label
    H, W = 20, 30
    tight = np.zeros((4, H, W), bool)
    loose = np.zeros((4, H, W), bool)
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [18, 0, 30, 20], [20, 5, 25, 10]])
    classes = np.array([1, 2, 3, 4])
    tight[0, 0:10, 0:10] = True
    tight[1, 5:15, 5:15] = True                          # overlaps object 0, another class, not nested
    tight[2, 0:20, 18:30] = True
    tight[3, 5:10, 20:25] = True                         # box 3 inside box 2: repaints its mask
    loose[0, 0:12, 0:12] = True
    loose[3, 5:12, 20:25] = True                         # its loose band covers object 2's tight mask
    label = bbam_label(tight, loose | tight, boxes, classes)
    assert (label[5:10, 5:10] == IGNORE).all()           # cross-class conflict
    assert (label[0:5, 0:5] == 1).all() and (label[10:15, 12:15] == 2).all()
    assert (label[5:10, 20:25] == 4).all() and label[0, 19] == 3
    assert label[11, 0] == IGNORE and label[11, 1] == IGNORE   # loose band outside every tight mask
    assert (label[10:12, 20:25] == IGNORE).all()         # object 3's band over object 2's tight mask
    assert label[19, 0] == 0
    assert np.array_equal(label, aggregated_label(classes, boxes, tight, loose | tight))


# -- the stage through the runner --------------------------------------------------------------
def make_red_tree(root, n=3):
    root = make_voc_folders(root)
    ids = []
    for i in range(n):
        objects = ((30 + 10 * i, 20, 100 + 10 * i, 90),) if i != 1 else ((20, 20, 80, 80), (110, 40, 180, 130))
        img, _ = red_scene(seed=i, objects=objects)
        image_id = f"2012_{i:06d}"
        Image.fromarray(img).save(root / "JPEGImages" / f"{image_id}.jpg", quality=98)
        recs = [ObjectRecord(PERSON, tuple(int(v) for v in b)) for b in objects]
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, 200, 150, recs))
        ids.append(image_id)
    write_split(root, "train", ids)
    return root


def test_bbam_stage_store_and_planted_object(tmp_path):
    pytest.importorskip("pseudolabel.algorithms.densecrf")
    ds = open_dataset(make_red_tree(tmp_path / "voc"))
    cfg = BBAMConfig(weights="toy", **FAST)
    store = LabelStore(run("bbam", cfg, ds, "train", tmp_path / "c", progress=False).store,
                       load_masks=True)
    s = store["2012_000000"]
    assert s.maps.shape == s.masks.shape == s.planes["loose_masks"].shape == (1, 150, 200)
    assert s.objects["status_map"][0] == 1 and s.objects["loose_status_map"][0] == 1
    assert s.planes["loose_masks"].sum() > s.masks.sum()               # the loose mask is the wider one
    assert s.objects["num_positives"][0] > 0 and np.isfinite(s.objects["final_loss"][0])
    _, gt = red_scene(seed=0, objects=((30, 20, 100, 90),))
    assert iou(s.masks[0], gt[0]) >= 0.7
    assert store.config["steps"] == FAST["steps"] and store.config["weights"] == "toy"


def test_bbam_shards_merge_to_the_single_process_store(tmp_path):
    pytest.importorskip("pseudolabel.algorithms.densecrf")
    ds = open_dataset(make_red_tree(tmp_path / "voc"))
    cfg = BBAMConfig(weights="toy", **FAST)
    whole = run("bbam", cfg, ds, "train", tmp_path / "a", progress=False).store
    for i in range(2):
        run("bbam", cfg, ds, "train", tmp_path / "b", RunOptions(shard=(i, 2)), progress=False)
    assert store_contents(merge_shards("bbam", ds, "train", tmp_path / "b", 2)) == store_contents(whole)


def test_bbam_without_weights_stops_before_work_naming_the_file(tmp_path, invoke):
    root = make_red_tree(tmp_path / "voc", n=1)
    result = invoke("bbam", "--data-root", str(root), "--weights", str(tmp_path / "nope.pth"))
    assert result.exit_code == 1 and "nope.pth" in result.output and "not found" in result.output


def test_gpus_runs_one_process_per_device_merges_and_retries_on_the_first(tmp_path, invoke):
    """--gpus cpu,cpu: the multi-device path (one spawned process per device over shards, then a
    merge) without GPUs. With one bad photo skipped, the merged store equals a single-process run
    but for that image; --retry-failed redoes it in one process on the first device, and then
    the store equals a single-process run of the good data; rerunning has nothing to do.
    (One test: every spawned process starts torch anew, seconds each.)"""
    root = make_red_tree(tmp_path / "voc")
    image = root / "JPEGImages" / "2012_000001.jpg"
    good = image.read_bytes()
    image.write_bytes(b"junk")
    opts = ["--data-root", root, "--cache", tmp_path / "multi", "--gpus", "cpu,cpu", "--weights", "toy",
            "--steps", "10", "--num-jitter", "50", "--min-size", "128", "--max-size", "256"]
    first = invoke("bbam", *opts, "--on-error", "skip")
    assert first.exit_code == 0, first.output
    assert "shard 1/2 on the CPU" in first.output and "merged 2 shards" in first.output
    current = tmp_path / "multi" / "voc" / "train" / "bbam.h5"
    assert set(LabelStore(current).failed) == {"2012_000001"}
    image.write_bytes(good)
    result = invoke("bbam", *opts, "--retry-failed")
    assert result.exit_code == 0, result.output
    assert "failed images of" in result.output and "on the CPU" in result.output
    whole = run("bbam", BBAMConfig(weights="toy", steps=10, num_jitter=50, min_size=128, max_size=256), open_dataset(root), "train", tmp_path / "one", progress=False).store
    images = {k: v for k, v in store_contents(current).items() if k.startswith(("images", "index"))}
    assert images == {k: v for k, v in store_contents(whole).items() if k.startswith(("images", "index"))}
    again = invoke("bbam", *opts)
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_gpus_rejects_bad_ids(tmp_path, invoke):
    result = invoke("bbam", "--data-root", tmp_path, "--gpus", "0,x")
    assert result.exit_code == 2 and "expected GPU ids such as 0,1" in result.output


def test_refine_reads_bbam_masks_and_keeps_the_loose_band(tmp_path):
    from pseudolabel.stages import get_stage
    ds = open_dataset(make_red_tree(tmp_path / "voc"))
    cache = tmp_path / "c"
    bbam = LabelStore(run("bbam", BBAMConfig(weights="toy", **FAST), ds, "train", cache, progress=False).store, load_masks=True)
    run("proposals", None, ds, "train", cache, progress=False)
    cfg = get_stage("refine").config_class(source="bbam")
    refined = LabelStore(run("refine", cfg, ds, "train", cache, progress=False).store, load_masks=True)
    for image_id in refined.ids:
        r, b = refined[image_id], bbam[image_id]
        assert r.masks.shape == b.masks.shape == r.planes["loose_masks"].shape
        assert (r.planes["loose_masks"] | ~r.masks).all()             # the refined loose holds the refined tight
        loose_only = r.planes["loose_masks"].any(0) & ~r.masks.any(0)
        assert (r.label[loose_only] == 255).all()                  # the loose band stays ignore
        assert set(np.unique(r.label)) <= {0, 15, 255}
    assert json.loads(refined.meta["inputs"])["bbam"]["cache_key"] == bbam.meta["cache_key"]


def test_zero_steps_keeps_the_initial_masks_and_reports_no_loss(tmp_path):
    """steps=0 is allowed (inspecting the initialisation): maps are the initial masks, the final
    loss is NaN, and the store is complete."""
    ds = open_dataset(make_red_tree(tmp_path / "voc", n=1))
    cfg = BBAMConfig(weights="toy", **{**FAST, "steps": 0})
    s = LabelStore(run("bbam", cfg, ds, "train", tmp_path / "c", progress=False).store,
                   load_masks=True)["2012_000000"]
    assert s.objects["num_positives"][0] > 0 and np.isnan(s.objects["final_loss"][0])
    assert set(np.unique(s.maps[0]).round(3)) >= {0.0, 1.0}               # the 0/1 initialisation


def _images_part(path):
    return {k: v for k, v in store_contents(path).items() if k.startswith(("images/", "index/"))}


def test_boxes_of_several_photos_share_batches_with_identical_results(tmp_path):
    """--batch-images 3: the three same-size photos are handed over together and their four
    boxes optimised in shared batches; every stored array equals the one-photo-at-a-time run."""
    ds = open_dataset(make_red_tree(tmp_path / "voc"))
    one = run("bbam", BBAMConfig(weights="toy", **FAST), ds, "train", tmp_path / "a", progress=False)
    cfg = BBAMConfig(weights="toy", batch_images=3, batch_boxes=4, **FAST)
    many = run("bbam", cfg, ds, "train", tmp_path / "b", progress=False)
    assert _images_part(many.store) == _images_part(one.store)
    again = run("bbam", cfg, ds, "train", tmp_path / "c", RunOptions(jobs=2), progress=False)
    assert _images_part(again.store) == _images_part(one.store)


def test_a_bad_photo_in_a_batch_fails_alone(tmp_path):
    root = make_red_tree(tmp_path / "voc")
    (root / "JPEGImages" / "2012_000001.jpg").write_bytes(b"not a jpeg")
    ds = open_dataset(root)
    cfg = BBAMConfig(weights="toy", batch_images=3, **FAST)
    summary = run("bbam", cfg, ds, "train", tmp_path / "c", RunOptions(on_error="skip"), progress=False)
    store = LabelStore(summary.store)
    assert summary.failed == 1 and "cannot decode image" in store.failed["2012_000001"]
    alone = run("bbam", BBAMConfig(weights="toy", **FAST), ds, "train", tmp_path / "d", RunOptions(on_error="skip"), progress=False)
    assert _images_part(summary.store) == _images_part(alone.store)


def test_image_groups_are_consecutive_same_size_runs():
    from types import SimpleNamespace as R
    from pseudolabel.runner import image_groups
    recs = [R(image_id=str(i), width=w, height=h) for i, (w, h) in
            enumerate([(5, 4), (5, 4), (5, 4), (4, 5), (5, 4), (5, 4)])]
    assert [[r.image_id for r in g] for g in image_groups(recs, 2)] == [["0", "1"], ["2"], ["3"], ["4", "5"]]
    assert [len(g) for g in image_groups(recs, 1)] == [1] * 6


# -- the device, the jitter, amp -------------------------------------------------------------------
def test_device_is_chosen_said_and_recorded_and_one_worker_runs_whatever_jobs(tmp_path, invoke, monkeypatch):
    from pseudolabel.models import device as devices
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve("auto") == "cpu" and devices.resolve(RunOptions(device="CPU").device) == "cpu"
    with pytest.raises(ConfigError, match="--device cuda: torch sees no CUDA device"):
        devices.resolve("cuda")
    with pytest.raises(ConfigError, match="--device: expected auto, cpu, cuda or cuda:N, got 'tpu'"):
        RunOptions(device="tpu")
    root = make_red_tree(tmp_path / "voc", n=2)
    opts = ["--weights", "toy", "--steps", "2", "--num-jitter", "30", "--min-size", "128", "--max-size", "256"]
    result = invoke("bbam", "--data-root", root, "--cache", tmp_path / "c", "--jobs", "4", *opts)
    assert result.exit_code == 0, result.output
    assert "bbam runs one worker per device (--jobs is for CPU stages" in result.output
    assert "bbam [train] on cpu (" in result.output
    (session,) = json.loads(LabelStore(tmp_path / "c" / "voc" / "train" / "bbam.h5").meta["run_log"])
    assert session["jobs"] == 1 and session["device"].startswith("cpu (")
    refused = invoke("bbam", "--data-root", root, "--cache", tmp_path / "c", "--device", "cuda", *opts)
    assert refused.exit_code == 1 and "--device cuda: torch sees no CUDA device" in refused.output


def test_recipe_steps_put_one_detector_per_device(tmp_path):
    from pseudolabel.app.recipe import load_recipe
    path = tmp_path / "r.toml"
    path.write_text('jobs = 4\n[[step]]\nstage = "grabcut"\ndevice = "cuda"\n')
    with pytest.raises(ConfigError, match="step 1 \\(stage grabcut\\): device is for stages that run a network"):
        load_recipe(path)
    path.write_text('jobs = 4\n[[step]]\nstage = "bbam"\ndevice = "cpu"\n[step.config]\nweights = "toy"\n')
    recipe = load_recipe(path)
    assert recipe.step_options(recipe.steps[0]).device == "cpu"
    assert recipe.step_options(recipe.steps[0], {"device": "cuda"}).device == "cuda"     # the command line wins


def test_jitter_is_drawn_per_image_and_box():
    from pseudolabel.stages.bbam import box_rng
    draw = lambda image_id, k: box_rng(0, image_id, k).uniform(size=4)
    assert np.array_equal(draw("2012_000001", 0), draw("2012_000001", 0))
    assert not np.array_equal(draw("2012_000001", 0), draw("2012_000002", 0))      # box 0 of another photo
    assert not np.array_equal(draw("2012_000001", 0), draw("2012_000001", 1))


def test_amp_runs_the_clean_targets_under_the_same_autocast(monkeypatch):
    """--amp: every detector pass, the clean ones that make the targets included, runs under autocast."""
    det = toy_detector("cpu", size=128)
    img, _ = red_scene(size=(100, 120), objects=((30, 20, 80, 70),))
    from pseudolabel.core.records import ImageRecord
    rec = ImageRecord("2012_000000", "x.jpg", 120, 100, (ObjectRecord(PERSON, (30, 20, 80, 70)),))
    seen = []
    head = type(det).head

    def recording(self, *a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return head(self, *a, **k)
    monkeypatch.setattr(type(det), "head", recording)
    from pseudolabel.stages.bbam import process_with
    process_with(det, rec, img, BBAMConfig(weights="toy", steps=2, num_jitter=30, min_size=128, amp=True))
    assert seen and all(seen)
    seen.clear()
    process_with(det, rec, img, BBAMConfig(weights="toy", steps=2, num_jitter=30, min_size=128))
    assert seen and not any(seen)


def test_gpu_check_runs_on_the_cpu_at_a_small_size(tmp_path):
    """bench/gpu_check.py, the script a lent GPU runs, on the CPU with a tiny input: every part of
    its JSON is there, and the stage ran end to end through --gpus cpu."""
    import importlib.util
    from pathlib import Path
    root = make_voc_folders(tmp_path / "voc")
    ids = []
    for i in range(2):
        objects = ((20 + 5 * i, 20, 80, 80), (110, 40, 180, 130))
        img, _ = red_scene(seed=i, objects=objects)
        image_id = f"2012_{i:06d}"
        Image.fromarray(img).save(root / "JPEGImages" / f"{image_id}.jpg", quality=98)
        recs = [ObjectRecord(PERSON, b) for b in objects]
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, 200, 150, recs))
        ids.append(image_id)
    write_split(root, "train", ids)
    path = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "check.json"
    assert module.main(["--device", "cpu", "--data-root", str(root), "--min-size", "64", "--steps", "2",
                        "--num-jitter", "20", "--images", "2", "--max-boxes", "2", "--reference-images", "1",
                        "--sam-variants", "tiny", "--isnet-sizes", "64", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["photos"] == 2 and result["boxes"] == 4 and result["device"].startswith("cpu")
    assert set(result["seconds_per_box"]) == {"batched", "reference", "amp"}
    assert 0 <= result["agreement_with_reference"] <= 1 and 0 <= result["amp"]["agreement_with_float32"] <= 1
    assert result["batch_images_4"]["photos"] == 2 and result["batch_images_4"]["agreement"] == 1.0
    assert result["stage_end_to_end"]["returncode"] == 0 and result["stage_end_to_end"]["images"] == 2
    assert result["stage_end_to_end"]["devices"] == [d for d in result["stage_end_to_end"]["devices"]
                                                     if d.startswith("cpu")]
    assert "projected_hours_25000_boxes" in result and "weights" in result
    engines = result["engines"]
    assert engines["sam"]["tiny"]["boxes_per_s_end_to_end"] > 0 and engines["hed"]["images_per_s"] > 0
    assert isinstance(engines["isnet"], str) or engines["isnet"]["seconds_per_box_64"] > 0


def test_mask_rule_crop_is_kept_as_an_option(tmp_path):
    """0.1.0's rule (rank seeds, sigma = stride / 4, the CRF on the box crop), kept because it keeps
    more of a good map: the planted object is found, statuses are recorded as for the default."""
    ds = open_dataset(make_red_tree(tmp_path / "voc", n=1))
    cfg = BBAMConfig(weights="toy", mask_rule="crop", **FAST)
    s = LabelStore(run("bbam", cfg, ds, "train", tmp_path / "c", progress=False).store,
                   load_masks=True)["2012_000000"]
    _, gt = red_scene(seed=0, objects=((30, 20, 100, 90),))
    assert iou(s.masks[0], gt[0]) >= 0.7 and s.objects["status_map"][0] == 1
    assert (s.planes["loose_masks"] | ~s.masks).all()
