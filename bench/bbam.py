"""BBAM speed and agreement: the batched mode against the published loop (``reference``), on the
same detector and images, in one process.

    python bench/bbam.py --data-root ../shared/data/coco128-voc-dev --split train \\
        --images 3 --max-boxes 3 --steps 100 --min-size 256 \\
        --out bench/results/bbam_cpu_coco128-voc-dev.json                       # CPU, small detector
    python bench/bbam.py --data-root DATA --device cuda --detector resnet50 --min-size 800 \\
        --weights fasterrcnn_resnet50_fpn_coco-258fb6c6.pth                 # the issue's GPU target

For each image both modes run the whole per-image pipeline of the ``bbam`` stage (positives,
mask optimisation, maps to masks); printed: seconds per box of each mode and of the mask
optimisation alone, the speedup, the agreement (mean IoU of the two modes' tight masks, per box),
and the projected hours for 25,000 boxes (VOC train_aug's count).

Detectors. ``--weights FILE``: a real checkpoint (``--detector resnet50``). Without weights
(nothing may be downloaded here) the bench assembles a detector of the chosen backbone with
seeded random weights, whose compute is the real detector's: a random predictor would almost
never classify a jittered box as its ground-truth class, so the predictor's weights are scaled
down and the class logit of ``--class-id`` gets a bias, and every box is treated as that class.
Speed and agreement are measured on that detector; its maps say nothing about quality.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pseudolabel import __version__  # noqa: E402
from pseudolabel.catalog import load_image, open_dataset  # noqa: E402
from pseudolabel.models.detector import Detector  # noqa: E402
from pseudolabel.stages.bbam import BBAMConfig, process_with  # noqa: E402

BOXES_TRAIN_AUG = 25_000


def bench_detector(backbone: str, min_size: int, max_size: int, class_id: int, seed: int = 0):
    """A torchvision Faster R-CNN of ``backbone`` with seeded random weights, its predictor
    biased towards ``class_id`` (see the module docstring)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    torch.manual_seed(seed)
    model = FasterRCNN(resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=5),
                       num_classes=21, min_size=min_size, max_size=max_size)
    pred = model.roi_heads.box_predictor
    with torch.no_grad():
        pred.cls_score.weight.mul_(0.1)
        pred.cls_score.bias.zero_()
        pred.cls_score.bias[class_id] = 3.0
        pred.bbox_pred.weight.mul_(0.01)
        pred.bbox_pred.bias.zero_()
    return model


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--images", type=int, default=4, help="first N images of the split with boxes")
    ap.add_argument("--min-boxes", type=int, default=2, help="only images with at least this many boxes")
    ap.add_argument("--max-boxes", type=int, default=4, help="at most this many boxes per image")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--detector", default="resnet18", help="backbone: resnet18 | resnet50")
    ap.add_argument("--weights", default=None, help="a real checkpoint (then --detector resnet50)")
    ap.add_argument("--min-size", type=int, default=320, help="input short side (published: 800)")
    ap.add_argument("--max-size", type=int, default=None, help="default 5/3 of --min-size")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-boxes", type=int, default=8)
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast in the batched mode (CUDA)")
    ap.add_argument("--class-id", type=int, default=15, help="class of every box with random weights")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    max_size = args.max_size or round(args.min_size * 5 / 3)
    if args.weights:
        det = Detector.from_checkpoint(args.weights, device=args.device, min_size=args.min_size, max_size=max_size)
        relabel = None
    else:
        det = Detector(bench_detector(args.detector, args.min_size, max_size, args.class_id), device=args.device)
        relabel = args.class_id
    fast = BBAMConfig(steps=args.steps, batch_boxes=args.batch_boxes, amp=args.amp,
                      min_size=args.min_size, max_size=max_size)
    modes = {"batched": fast, "reference": dataclasses.replace(fast, reference=True, amp=False)}

    dataset = open_dataset(args.data_root)
    records = [r for r in dataset.records(args.split) if len(r.objects) >= max(args.min_boxes, 1)][: args.images]
    totals = {m: {"seconds": 0.0, "optimise": 0.0, "positives": 0.0, "masks": 0.0} for m in modes}
    ious, boxes, per_image = [], 0, []
    for rec in records:
        objects = rec.objects[: args.max_boxes]
        if relabel is not None:
            objects = tuple(dataclasses.replace(o, class_id=relabel) for o in objects)
        rec = dataclasses.replace(rec, objects=objects)
        image = load_image(rec)
        results = {}
        for name, cfg in modes.items():
            timings = {}
            t0 = time.perf_counter()
            results[name] = process_with(det, rec, image, cfg, timings)
            if det.device.type == "cuda":
                torch.cuda.synchronize(det.device)
            timings["seconds"] = time.perf_counter() - t0
            for k, v in timings.items():
                totals[name][k] += v
        a, b = results["batched"].masks, results["reference"].masks
        box_ious = [iou(a[k], b[k]) for k in range(len(objects))]
        ious += box_ious
        boxes += len(objects)
        per_image.append({"id": rec.image_id, "boxes": len(objects), "iou": box_ious,
                          "positives": results["batched"].objects["num_positives"].tolist()})
        print(f"{rec.image_id}: {len(objects)} boxes, agreement {np.mean(box_ious):.3f}", flush=True)

    per_box = {m: {k: v / boxes for k, v in t.items()} for m, t in totals.items()}
    result = {
        "device": str(det.device) if det.device.type != "cuda" else torch.cuda.get_device_name(det.device),
        "host": platform.node(), "torch": torch.__version__, "pseudolabel": __version__,
        "torch_threads": torch.get_num_threads(),
        "detector": args.weights or f"{args.detector}-FPN Faster R-CNN, seeded random weights (bench_detector)",
        "min_size": args.min_size, "max_size": max_size, "steps": args.steps, "batch_boxes": args.batch_boxes,
        "amp": args.amp, "images": len(records), "boxes": boxes,
        "seconds_per_box": {m: round(v["seconds"], 3) for m, v in per_box.items()},
        "optimise_seconds_per_box": {m: round(v["optimise"], 3) for m, v in per_box.items()},
        "speedup": round(per_box["reference"]["seconds"] / per_box["batched"]["seconds"], 2),
        "optimise_speedup": round(per_box["reference"]["optimise"] / per_box["batched"]["optimise"], 2),
        "agreement_mean_iou": round(float(np.mean(ious)), 4),
        "agreement_min_iou": round(float(np.min(ious)), 4),
        "projected_hours_25000_boxes": {m: round(v["seconds"] * BOXES_TRAIN_AUG / 3600, 1)
                                        for m, v in per_box.items()},
        "per_image": per_image,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "per_image"}, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
