"""Proposals, refinement and fusion benchmark, through the real pipeline.

    python bench/proposals.py --data-root ../shared/data/coco128-voc-dev --split train

1. ``proposals --jobs 1`` (one core: OpenCV pinned, this process) -> ``evaluate-proposals``:
   ABO / recall over instances >= 32x32 px and over all, proposals and seconds per image;
2. ``grabcut`` -> ``refine --source grabcut`` -> ``fuse --sources grabcut,refine``, each
   scored with ``evaluate`` (one confusion matrix over the split).
Checks the issue's targets and writes the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from pseudolabel.catalog import open_dataset
from pseudolabel.evaluate import evaluate_proposals, evaluate_store
from pseudolabel.runner import run_stage
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore, ProposalStore


def log(message: str) -> None:
    print(message, file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--jobs", type=int, default=2, help="workers for the label stages (proposals always use 1)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    dataset = open_dataset(args.data_root)

    with tempfile.TemporaryDirectory(prefix="pseudolabel-bench-") as cache:
        start = time.perf_counter()
        run_stage("proposals", dataset, args.split, cache, jobs=1, log=log)
        wall = time.perf_counter() - start
        prop = evaluate_proposals(ProposalStore(Path(cache) / dataset.name / args.split / "proposals.h5"),
                                  dataset, args.split, progress=False)
        prop["wall_s_jobs1"] = round(wall, 1)
        labels = {}
        for stage, config in (("boxes", None), ("grabcut", None), ("refine", None),
                              ("fuse", get_stage("fuse").config_class(sources="grabcut,refine"))):
            summary = run_stage(stage, dataset, args.split, cache, config=config, jobs=args.jobs, log=log)
            labels[stage] = evaluate_store(LabelStore(summary.store), dataset, args.split, progress=False).report

    print(f"\nproposals: ABO {prop['abo']} (instances >= 32 px, {prop['instances']}), "
          f"recall@0.5 {prop['recall_50']}, recall@0.7 {prop['recall_70']}; all instances: ABO "
          f"{prop['all']['abo']}, recall@0.5 {prop['all']['recall_50']}, recall@0.7 {prop['all']['recall_70']}")
    print(f"           {prop['proposals_per_image']} proposals/image, {prop['seconds_per_image']} s/image on one core")
    print(f"\n{'labels':<10}{'mIoU':>8}{'mIoU 255=bg':>13}{'coverage':>10}")
    for stage, r in labels.items():
        print(f"{stage:<10}{r['miou']:>8.2f}{r['miou_ignore_as_background']:>13.2f}{r['coverage']:>10.3f}")
    gain = labels["refine"]["miou"] - labels["grabcut"]["miou"]
    print(f"\nrefine - grabcut: {gain:+.2f} mIoU")
    checks = {
        "ABO (>= 32 px) >= 0.75": prop["abo"] >= 0.75,
        "<= 1.5 s per image (one core)": prop["seconds_per_image"] <= 1.5,
        "refine >= grabcut + 2 mIoU": gain >= 2.0,
        "refine coverage >= 0.90": labels["refine"]["coverage"] >= 0.90,
    }
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    if args.out:
        Path(args.out).write_text(json.dumps({"proposals": prop, "labels": labels, "checks": checks}, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
