"""`pseudolabel train-detector`: VOC AP arithmetic, COCO -> VOC initialisation, training with
checkpoints and resume, and named missing weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pseudolabel.catalog import open_dataset
from pseudolabel.models.detector import COCO_WEIGHTS_FILE, VOC_TO_COCO, Detector, build_model, coco_to_voc
from pseudolabel.app.train_detector import TrainConfig, train
from pseudolabel.evaluation.detection import average_precision, voc_ap

B = np.array([[10, 10, 50, 50]])
FAR = np.array([100, 100, 140, 140])


def test_ap_by_hand():
    gt = {"a": (B, np.array([False])), "b": (B, np.array([False]))}
    # ranked: TP (a), FP (b, wrong place), TP (b): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    dets = [("a", 0.9, B[0]), ("b", 0.8, FAR), ("b", 0.7, B[0] + 1)]
    assert average_precision(dets, gt) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([("a", 0.9, B[0]), ("b", 0.8, B[0])], gt) == pytest.approx(1.0)
    # a second detection of the same box is a false positive
    assert average_precision([("a", 0.9, B[0]), ("a", 0.8, B[0]), ("b", 0.7, B[0])], gt) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([], gt) == 0.0
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)


def test_difficult_boxes_are_neither_true_nor_false():
    gt = {"a": (np.vstack([B, [FAR]]), np.array([False, True]))}
    assert average_precision([("a", 0.95, FAR), ("a", 0.9, B[0])], gt) == pytest.approx(1.0)
    assert average_precision([("a", 0.9, FAR)], {"a": (np.array([FAR]), np.array([True]))}) is None


def test_coco_init_keeps_the_mapped_class_rows():
    coco = build_model(91, min_size=64, max_size=96).state_dict()
    voc = coco_to_voc(coco)
    w = coco["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(voc["roi_heads.box_predictor.cls_score.weight"][15], w[VOC_TO_COCO[14]])   # person
    box = coco["roi_heads.box_predictor.bbox_pred.weight"].view(91, 4, -1)
    assert torch.equal(voc["roi_heads.box_predictor.bbox_pred.weight"].view(21, 4, -1)[15], box[VOC_TO_COCO[14]])
    build_model(21).load_state_dict(voc)                           # a valid 21-class state dict


TINY = ["--init", "none", "--min-size", "64", "--min-size-train", "[64]", "--max-size", "96", "--warmup-images", "4",
        "--lr", "0.002", "--batch-size", "2", "--trainable-layers", "5", "--rois-per-image", "32", "--device", "cpu"]


def test_train_checkpoint_resume_and_evaluate(invoke, voc_root, tmp_path):
    out = tmp_path / "det"
    first = invoke("train-detector", "--data-root", voc_root, "--out", out, "--epochs", "1", *TINY)
    assert first.exit_code == 0, first.output
    assert "epoch 1/1" in first.output and (out / "last.pth").exists()
    det = Detector.from_checkpoint(out / "model_final.pth", min_size=64, max_size=96)  # what bbam --weights reads
    assert det.model.roi_heads.box_predictor.cls_score.out_features == 21
    more = invoke("train-detector", "--data-root", voc_root, "--out", out, "--epochs", "2", *TINY,
                  "--eval-split", "train", "--json")
    assert more.exit_code == 0, more.output
    assert "resuming from" in more.output and "1 of 2 epochs done" in more.output and "epoch 2/2" in more.output
    result = json.loads(more.output[more.output.index('{"checkpoint"'):])
    per_class = result["eval"]["per_class"]
    present = [v for v in per_class.values() if v is not None]
    assert len(per_class) == 20 and present and result["eval"]["map"] == pytest.approx(np.mean(present))
    other = invoke("train-detector", "--data-root", voc_root, "--out", out, "--epochs", "2", *TINY, "--lr", "0.001")
    assert other.exit_code == 1 and "another configuration" in other.output and "--force" in other.output


def test_training_lowers_the_loss(voc_root, tmp_path):
    cfg = TrainConfig(init="none", min_size=64, min_size_train=(64,), max_size=96, warmup_images=2, lr=0.002,
                      batch_size=2, epochs=4, trainable_layers=5, lr_steps=(), rois_per_image=32)
    losses = train(open_dataset(voc_root), "train", tmp_path, cfg, progress=False)["losses"]
    assert len(losses) == 12 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_divergence_is_reported_not_saved(voc_root, tmp_path):
    from pseudolabel.core.errors import ConfigError
    cfg = TrainConfig(init="none", min_size=64, min_size_train=(64,), max_size=96, warmup_images=2, lr=5.0,
                      batch_size=2, epochs=4, trainable_layers=5, rois_per_image=32)
    with pytest.raises(ConfigError, match="training diverged at iteration .*lower --lr"):
        train(open_dataset(voc_root), "train", tmp_path, cfg, progress=False)
    assert not (tmp_path / "model_final.pth").exists()


def test_missing_start_weights_are_named(invoke, voc_root, tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "torch")}
    coco = invoke("train-detector", "--data-root", voc_root, "--out", tmp_path / "d", env=env)
    assert coco.exit_code == 1 and COCO_WEIGHTS_FILE in coco.output and "not found" in coco.output
    imagenet = invoke("train-detector", "--data-root", voc_root, "--init", "imagenet", "--out", tmp_path / "d", env=env)
    assert imagenet.exit_code == 1 and "resnet50-0676ba61.pth" in imagenet.output
    path = invoke("train-detector", "--data-root", voc_root, "--init", tmp_path / "x.pth", "--out", tmp_path / "d")
    assert path.exit_code == 1 and "x.pth" in path.output


def test_the_published_schedule_is_the_default():
    """BBAM's detector configuration: 0.01 for 16 images scaled linearly (0.00125 for 2), warm-up from
    a third over 8,000 images, x0.1 at epochs 18 and 24 of 27, short sides 480..800 in training."""
    cfg = TrainConfig()
    assert cfg.learning_rate == pytest.approx(0.01 * 2 / 16) and TrainConfig(batch_size=16).learning_rate == 0.01
    assert TrainConfig(lr=0.0025).learning_rate == 0.0025
    assert cfg.warmup_iterations == 4000 and cfg.warmup_factor == pytest.approx(1 / 3)
    assert (cfg.epochs, cfg.lr_steps) == (27, (18, 24))
    assert cfg.min_size_train == tuple(range(480, 801, 32)) and cfg.min_size == 800
    assert (cfg.bias_lr_factor, cfg.bias_weight_decay, cfg.rois_per_image) == (2.0, 0.0, 512)


def test_learning_rate_follows_warm_up_steps_and_bias_factor(voc_root, tmp_path, monkeypatch):
    """The rates the optimiser is given, per iteration, for weights and biases."""
    import torch
    seen = []
    step = torch.optim.SGD.step

    def recording(self, *a, **k):
        seen.append([g["lr"] for g in self.param_groups])
        return step(self, *a, **k)
    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    cfg = TrainConfig(init="none", min_size=64, min_size_train=(64,), max_size=96, batch_size=2, epochs=3,
                      base_lr=0.001, base_batch=2, warmup_images=6, warmup_factor=0.25, lr_steps=(2,),
                      trainable_layers=5, rois_per_image=16)
    train(open_dataset(voc_root), "train", tmp_path, cfg, progress=False)
    weights = [round(w, 6) for w, _ in seen]
    # 6 images, 3 per epoch at batch 2: warm-up over 3 iterations from 1/4, x0.1 from epoch 2
    assert weights == [0.00025, 0.0005, 0.00075, 0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001]
    assert all(b == pytest.approx(2 * w) for w, b in seen)
