"""BBAM's maps to masks: our implementation against an independent port of the published code, on
real photos, and what the labels are worth.

No detector weights can be had here, so the maps are made from the human masks of the photos'
objects, as BBAM's optimised masks look (each object's mask pooled to the mask grid of the published
stride for its box, a little noise, upsampled bilinearly: ``tests/bbam_published.simulated_map``).
On the same maps, both turn maps into tight and loose masks: ours (``algorithms/bbam_masks.py``,
torch, every box of a photo through the dense CRF in one batch) and the line-by-line port of
``get_top_CRF`` / ``get_final_mask_with_topCRF`` (``tests/bbam_published.py``, numpy and OpenCV, one
CRF at a time). Printed: the agreement (mean and lowest IoU of the two's masks, tight and loose), the
seconds of each, and the mIoU of our labels (``bbam_label``) against the human labels, which says what
the post-processing keeps of a good map, not what BBAM is worth.

    python bench/bbam_masks.py --images 20 --out bench/results/bbam_masks_coco128-voc-dev.json
    python bench/bbam_masks.py --images 20 --rule crop --no-port      # mask_rule="crop" (0.1.0's)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pseudolabel.algorithms.bbam import mask_stride  # noqa: E402
from pseudolabel.algorithms.bbam_masks import bbam_label, crop_masks, published_masks  # noqa: E402
from pseudolabel.algorithms.bbam_params import BBAMParams  # noqa: E402
from pseudolabel.algorithms.densecrf import dense_crf, dense_crf_batch  # noqa: E402
from pseudolabel.catalog import load_class_gt, load_image, load_object_gt, open_dataset  # noqa: E402
from pseudolabel.evaluation.semantic import confusion_matrix, scores  # noqa: E402
from pseudolabel.core.records import ImageRecord  # noqa: E402
from tests.bbam_published import final_masks, simulated_map  # noqa: E402


def iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def instance_masks(record: ImageRecord) -> list[np.ndarray]:
    """Each annotated object's human mask: the instance of the object map whose pixels fill most of
    the object's box (coco128-voc-dev numbers instances in annotation order)."""
    inst = load_object_gt(record)
    out = []
    for k, box in enumerate(record.boxes()):
        x0, y0, x1, y1 = box
        values, counts = np.unique(inst[y0:y1, x0:x1], return_counts=True)
        keep = (values != 0) & (values != 255)
        guess = k + 1 if (inst == k + 1).any() else (values[keep][np.argmax(counts[keep])] if keep.any() else -1)
        out.append(inst == guess)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--images", type=int, default=20, help="first N photos of the split")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rule", default="published", choices=("published", "crop"), help="mask_rule to measure")
    ap.add_argument("--no-port", action="store_true", help="skip the published port (labels only)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    dataset = open_dataset(args.data_root)
    records = [r for r in dataset.records(args.split) if isinstance(r, ImageRecord) and r.objects][: args.images]
    params = BBAMParams()
    ious = {"tight": [], "loose": []}
    seconds = {"ours": 0.0, "port": 0.0}
    matrix = 0
    for record in records:
        image = load_image(record)
        boxes = record.boxes()
        maps = np.stack([simulated_map(m, b, rng) for m, b in zip(instance_masks(record), boxes)])
        start = time.perf_counter()
        has_map = maps.max((1, 2)) > 0
        if args.rule == "crop":
            H, W = image.shape[:2]
            strides = np.array([mask_stride(b, (H, W), params) for b in boxes], np.float32)
            tight, loose, _, _ = crop_masks(image, maps, boxes, has_map, strides, params, dense_crf)
        else:
            tight, loose, _, _ = published_masks(image, torch.from_numpy(maps).to(args.device), boxes, has_map,
                                                 params, dense_crf_batch)
        seconds["ours"] += time.perf_counter() - start
        if not args.no_port:
            start = time.perf_counter()
            port = {"tight": final_masks(image, maps, boxes, params.tight_rank),
                    "loose": final_masks(image, maps, boxes, params.loose_rank)}
            seconds["port"] += time.perf_counter() - start
            for kind, ours in (("tight", tight), ("loose", loose)):
                ious[kind] += [iou(a, b) for a, b in zip(ours, port[kind])]
        matrix = matrix + confusion_matrix(load_class_gt(record), bbam_label(tight, loose, boxes, record.classes()))
        if not args.no_port:
            print(f"{record.image_id}: {len(boxes)} boxes, tight {np.mean(ious['tight'][-len(boxes):]):.3f}, "
                  f"loose {np.mean(ious['loose'][-len(boxes):]):.3f}", file=sys.stderr)
    report = scores(matrix)
    result = {
        "rule": args.rule, "images": len(records), "boxes": sum(len(r.objects) for r in records),
        "device": args.device,
        "agreement_with_published_port": None if args.no_port else {
            k: {"mean_iou": round(float(np.mean(v)), 4), "min_iou": round(float(np.min(v)), 4)}
            for k, v in ious.items()},
        "seconds_per_image": {k: round(v / len(records), 3) for k, v in seconds.items()},
        "labels_from_simulated_maps": {"miou": report["miou"], "coverage": report["coverage"],
                                       "miou_ignore_as_background": report["miou_ignore_as_background"]},
        "command": "python " + " ".join(sys.argv),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
