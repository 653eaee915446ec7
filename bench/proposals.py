"""Proposals, refinement and fusion benchmark, through the real pipeline.

    python bench/proposals.py --data-root ../shared/data/coco128-voc-dev --split train

1. ``proposals --jobs 1`` (one core: OpenCV pinned, this process) -> ``evaluate-proposals``:
   ABO / recall over instances >= 32x32 px and over all, proposals and seconds per image;
2. ``grabcut`` -> ``refine --source grabcut`` -> ``fuse --sources grabcut,refine``, each
   scored with ``evaluate`` (one confusion matrix over the split); refine's change per class
   and per object (mean IoU of each object's mask with its own instance, boxes >= 32 px): on
   a small split one class with few objects can swing the mean over classes by a point.
Checks the issue's targets and writes the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pseudolabel.catalog import load_object_gt, open_dataset
from pseudolabel.evaluation.proposals import MIN_INSTANCE_BOX, evaluate_proposals
from pseudolabel.evaluation.semantic import evaluate_store, miou_of, paired_bootstrap
from pseudolabel.core.output_root import OutputRoot
from pseudolabel.core.records import BadRecord
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore, ProposalStore


def log(message: str) -> None:
    print(message, file=sys.stderr)


def object_ious(dataset, split: str, stores: dict[str, Path]) -> dict[str, dict]:
    """Per-object view of refinement, steadier than a class mean on a small split: mean IoU of
    each store's per-object masks with their own instance (objects whose box is at least
    32x32 px, void pixels left out), the 95% interval of the mean change over grabcut (normal,
    from the objects' paired changes), and how many objects refinement moved up / down by more
    than 2 IoU points."""
    readers = {name: LabelStore(path, load_masks=True) for name, path in stores.items()}
    ious: dict[str, list[float]] = {name: [] for name in stores}
    for record in dataset.records(split):
        if isinstance(record, BadRecord):
            continue
        inst = load_object_gt(record)
        valid = inst != 255
        for name, reader in readers.items():
            masks = reader[record.image_id].masks
            for k, (x0, y0, x1, y1) in enumerate(record.boxes()):
                if x1 - x0 < MIN_INSTANCE_BOX or y1 - y0 < MIN_INSTANCE_BOX:
                    continue
                truth, mask = (inst == k + 1) & valid, masks[k] & valid
                ious[name].append(float((truth & mask).sum() / max((truth | mask).sum(), 1)))
    base, out = np.array(ious["grabcut"]), {}
    for name, values in ious.items():
        v = np.array(values)
        d = 100 * (v - base)
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        out[name] = {"objects": int(len(v)), "mean_iou": round(100 * float(v.mean()), 2),
                     "change_ci95": [round(float(d.mean() - half), 2), round(float(d.mean() + half), 2)],
                     "up_2pt": int((v - base > 0.02).sum()), "down_2pt": int((v - base < -0.02).sum())}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--jobs", type=int, default=2, help="workers for the label stages (proposals always use 1)")
    ap.add_argument("--edges", default="", help="folder of a learned edge detector's maps (<id>.png) to build "
                                                "the proposals on (pseudolabel proposals --edges)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    dataset = open_dataset(args.data_root)

    with tempfile.TemporaryDirectory(prefix="pseudolabel-bench-") as cache:
        start = time.perf_counter()
        run("proposals", get_stage("proposals").config_class(edges=args.edges), dataset, args.split, cache, RunOptions(jobs=1), log=log)
        wall = time.perf_counter() - start
        prop = evaluate_proposals(ProposalStore(OutputRoot(cache).current(dataset.name, args.split, "proposals")),
                                  dataset, args.split, progress=False)
        prop["wall_s_jobs1"] = round(wall, 1)
        labels, stores, matrices = {}, {}, {}
        for stage, config in (("boxes", None), ("grabcut", None), ("refine", None),
                              ("fuse", get_stage("fuse").config_class(sources="grabcut,refine"))):
            summary = run(stage, config, dataset, args.split, cache, RunOptions(jobs=args.jobs), log=log)
            result = evaluate_store(LabelStore(summary.store), dataset, args.split, progress=False, per_image=True)
            labels[stage], matrices[stage] = result.report, result.per_image
            image_ids = LabelStore(summary.store).all_ids
            if stage in ("grabcut", "refine"):
                stores[stage] = summary.store
        objects = object_ious(dataset, args.split, stores)

    print(f"\nproposals: ABO {prop['abo']} (instances >= 32 px, {prop['instances']}), "
          f"recall@0.5 {prop['recall_50']}, recall@0.7 {prop['recall_70']}; all instances: ABO "
          f"{prop['all']['abo']}, recall@0.5 {prop['all']['recall_50']}, recall@0.7 {prop['all']['recall_70']}")
    print(f"           {prop['proposals_per_image']} proposals/image, {prop['seconds_per_image']} s/image on one core")
    print("           by size: " + ", ".join(f"{k} {v['abo']} ({v['instances']})" for k, v in prop["by_size"].items()
                                         if v["instances"]) + "; person " + str(prop["per_class"].get("person", {}).get("abo")))
    print(f"\n{'labels':<10}{'mIoU':>8}{'mIoU 255=bg':>13}{'coverage':>10}")
    for stage, r in labels.items():
        print(f"{stage:<10}{r['miou']:>8.2f}{r['miou_ignore_as_background']:>13.2f}{r['coverage']:>10.3f}")
    gain = labels["refine"]["miou"] - labels["grabcut"]["miou"]
    interval = paired_bootstrap(matrices["grabcut"], matrices["refine"])
    print(f"\nrefine - grabcut: {gain:+.2f} mIoU, 95% interval [{interval['low']:+.2f}, {interval['high']:+.2f}] "
          f"(paired bootstrap over the {len(matrices['refine'])} images)")
    # the gain without each image in turn: how much rests on a single photo
    g_all, r_all = matrices["grabcut"], matrices["refine"]
    without = miou_of(r_all.sum(0) - r_all) - miou_of(g_all.sum(0) - g_all)
    k = int(np.argmin(without))
    interval["without_most_influential_image"] = {"image": image_ids[k], "change": round(float(without[k]), 4)}
    print(f"  without the most influential photo ({image_ids[k]}) alone: {without[k]:+.2f}")
    per_class = {c: round(labels["refine"]["per_class"][c] - labels["grabcut"]["per_class"][c], 2)
                 for c in labels["refine"]["per_class"] if labels["refine"]["per_class"][c] is not None}
    print("  per class: " + ", ".join(f"{c} {d:+.2f}" for c, d in per_class.items() if d))
    g, r = objects["grabcut"], objects["refine"]
    print(f"  per object (boxes >= {MIN_INSTANCE_BOX} px, {g['objects']}): mean IoU {g['mean_iou']:.2f} -> "
          f"{r['mean_iou']:.2f} ({r['mean_iou'] - g['mean_iou']:+.2f}, 95% interval [{r['change_ci95'][0]:+.2f}, "
          f"{r['change_ci95'][1]:+.2f}]); {r['up_2pt']} objects up, "
          f"{r['down_2pt']} down by more than 2 points")
    checks = {
        "ABO (>= 32 px) >= 0.75": prop["abo"] >= 0.75,
        "<= 1.5 s per image (one core)": prop["seconds_per_image"] <= 1.5,
        "refine >= grabcut + 2 mIoU": gain >= 2.0,
        "refine coverage >= 0.90": labels["refine"]["coverage"] >= 0.90,
    }
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    if args.out:
        Path(args.out).write_text(json.dumps({"proposals": prop, "labels": labels, "objects": objects,
                                              "refine_minus_grabcut_per_class": per_class,
                                              "refine_minus_grabcut_interval": interval, "checks": checks}, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
