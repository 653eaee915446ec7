"""evaluate --instances: objects paired with ground-truth instances, mean IoU and COCO mask AP;
per-image scores in evaluate's output."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pseudolabel.catalog import load_object_gt, open_dataset
from pseudolabel.evaluation.instances import evaluate_instances
from pseudolabel.core.labels import box_mask
from pseudolabel.core.records import ImageRecord, ObjectRecord
from pseudolabel.store.reader import Sample

from .conftest import shared


class GroundTruthStore:
    """A stand-in label store whose masks are the ground-truth instances themselves (object k
    = instance k + 1), with some images recorded as failed."""

    def __init__(self, dataset, split, failed=()):
        self.records = {r.image_id: r for r in dataset.records(split)}
        self.all_ids = list(self.records)
        self.failed = {i: "broken" for i in failed}
        self.path, self.stage = "gt.h5", "gt"

    def read(self, image_id, masks=True):
        record = self.records[image_id]
        inst = load_object_gt(record)
        k = len(record.objects)
        return Sample(image_id, record.image_path, np.zeros(inst.shape, np.uint8),
                      np.array([o.box for o in record.objects], np.int32).reshape(-1, 4),
                      np.array([o.class_id for o in record.objects], np.uint8), np.zeros(k, bool), np.zeros(k, bool),
                      np.full(21, np.nan, np.float32), masks=np.stack([inst == j + 1 for j in range(k)]))


def test_masks_equal_to_the_instances_score_100_and_failed_images_count_zero(voc_root):
    dataset = open_dataset(voc_root)
    perfect = evaluate_instances(GroundTruthStore(dataset, "train"), dataset, "train", progress=False)
    assert perfect["miou"] == 100.0 and perfect["ap"] == perfect["ap50"] == perfect["ap75"] == 100.0
    assert perfect["class_mismatches"] == 0 and perfect["unpaired_instances"] == 0
    ids = GroundTruthStore(dataset, "train").all_ids
    one_failed = evaluate_instances(GroundTruthStore(dataset, "train", failed=[ids[0]]), dataset, "train",
                                    progress=False)
    lost = len(dataset.records("train")[0].objects)
    assert one_failed["instances"] == perfect["instances"]
    assert one_failed["miou"] == pytest.approx(100.0 * (perfect["instances"] - lost) / perfect["instances"])
    assert one_failed["ap50"] < 100.0


def test_instance_iou_of_boxes_equals_a_direct_count(invoke, voc_root, tmp_path):
    """Filled boxes against the ellipses: the mean IoU computed here from the PNGs, void excluded."""
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    assert invoke("boxes", "--split", "train", env=env).exit_code == 0
    result = invoke("-q", "evaluate", "--stage", "boxes", "--split", "train", "--instances", "--json", env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["instances"]
    ious = []
    for record in open_dataset(voc_root).records("train"):
        inst = np.array(Image.open(record.object_gt_path))
        valid = inst != 255
        for k, obj in enumerate(record.objects):
            gt, box = inst == k + 1, box_mask(obj.box, inst.shape)
            ious.append(((gt & box & valid).sum()) / ((gt | box) & valid).sum())
    assert report["miou"] == pytest.approx(100 * np.mean(ious), abs=1e-3)
    assert report["instances"] == len(ious) and 0 < report["ap50"] <= 100
    text = invoke("-q", "evaluate", "--stage", "boxes", "--split", "train", "--instances", env=env).output
    assert "instances: mean IoU" in text and "mask AP" in text


def test_sbd_objects_pair_with_the_non_empty_instances_in_order(invoke, combined_root):
    record = ImageRecord("x", "x.jpg", 10, 10, (ObjectRecord(3, (0, 0, 2, 2)), ObjectRecord(5, (4, 4, 6, 6))),
                         object_gt_path="inst/x.mat")
    instances = np.zeros((10, 10), np.uint8)
    instances[0:2, 0:2], instances[4:6, 4:6] = 1, 3                  # instance 2 has no pixels
    paired = open_dataset(combined_root).paired
    assert paired(record, instances) == [1, 3]
    voc = ImageRecord("x", "x.jpg", 10, 10, record.objects, object_gt_path="SegmentationObject/x.png")
    assert paired(voc, instances) == [1, None]                       # VOC: object k is k + 1
    env = {"PSEUDOLABEL_DATA": str(combined_root)}
    assert invoke("boxes", "--split", "sbd_train", env=env).exit_code == 0
    report = json.loads(invoke("-q", "evaluate", "--stage", "boxes", "--split", "sbd_train", "--instances",
                               "--json", env=env).stdout)["instances"]
    assert report["class_mismatches"] == 0 and report["unpaired_instances"] == 0 and report["miou"] > 50


def test_evaluate_reports_each_image_and_lists_the_worst(invoke, voc_root):
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    assert invoke("boxes", "--split", "trainval", env=env).exit_code == 0
    report = json.loads(invoke("-q", "evaluate", "--stage", "boxes", "--split", "trainval", "--json", env=env).stdout)
    rows = report["per_image"]
    assert len(rows) == 8
    assert all(r["coverage"] == 1.0 and 0 < r["miou"] < 100 and r["failed"] is False for r in rows)
    text = invoke("-q", "evaluate", "--stage", "boxes", "--split", "trainval", env=env).output
    worst = sorted(rows, key=lambda r: (r["miou"], r["image_id"]))
    listed = [line.split()[0] for line in text.split("worst images by mIoU")[1].splitlines()[1:]]
    assert listed == [r["image_id"] for r in worst]                   # 8 images: all of them, worst first


def test_real_voc_objects_pair_with_their_instances(invoke, tmp_path):
    root = shared("voc2012-mini3")
    env = {"PSEUDOLABEL_DATA": str(root)}
    split = "trainval" if (root / "ImageSets" / "Segmentation" / "trainval.txt").exists() else "train"
    assert invoke("boxes", "--split", split, env=env).exit_code == 0
    report = json.loads(invoke("-q", "evaluate", "--stage", "boxes", "--split", split, "--instances", "--json",
                               env=env).stdout)["instances"]
    assert report["class_mismatches"] == 0 and report["unpaired_instances"] == 0 and report["instances"] > 0
