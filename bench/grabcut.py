"""GrabCut stage benchmark: quality and speed against plain GrabCut, in one process, same images.

    python bench/grabcut.py --data-root ../shared/data/coco128-voc-dev --split train

Runs, through the real pipeline (catalog -> stage -> runner -> store -> evaluate):
  1. ``boxes``                 filled boxes (the baseline);
  2. ``grabcut --reference``   plain cv2.grabCut: full image, rectangle init, 5 iterations, no
                               guards (the reference), ``--jobs 1``;
  3. ``grabcut``               our stage, ``--jobs 1``;
  4. ``grabcut``               our stage, ``--jobs 2``.
``--jobs 1`` runs in this process with OpenCV pinned to one thread: one core. Speed is boxes per
second of wall time for the whole run (image decoding and store writing included, so the
overheads count against us). Prints a table, checks the issue's targets, and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from pseudolabel.catalog import open_dataset
from pseudolabel.evaluate import evaluate_store
from pseudolabel.runner import run_stage
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore


def run(name: str, stage: str, dataset, split: str, cache: Path, jobs: int, **config) -> dict:
    cfg = get_stage(stage).config_class(**config)
    start = time.perf_counter()
    summary = run_stage(stage, dataset, split, cache / name, config=cfg, jobs=jobs, force=True,
                        progress=True, log=lambda s: print(s, file=sys.stderr))
    wall = time.perf_counter() - start
    report = evaluate_store(LabelStore(summary.store), dataset, split, progress=False).report
    return {
        "variant": name, "jobs": jobs, "images": summary.processed, "boxes": summary.objects,
        "wall_s": round(wall, 2), "boxes_per_s": round(summary.objects / wall, 3),
        "s_per_box": round(wall / max(summary.objects, 1), 4),
        "miou": report["miou"], "miou_ignore_as_background": report["miou_ignore_as_background"],
        "coverage": report["coverage"], "events": summary.counts,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--skip-reference", action="store_true", help="skip the slow reference run")
    args = ap.parse_args()

    dataset = open_dataset(args.data_root)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pseudolabel-bench-") as tmp:
        cache = Path(tmp)
        rows.append(run("boxes", "boxes", dataset, args.split, cache, jobs=1))
        if not args.skip_reference:
            rows.append(run("reference (plain GrabCut)", "grabcut", dataset, args.split, cache, jobs=1, reference=True))
        rows.append(run("grabcut --jobs 1", "grabcut", dataset, args.split, cache, jobs=1))
        rows.append(run("grabcut --jobs 2", "grabcut", dataset, args.split, cache, jobs=2))

    by = {r["variant"]: r for r in rows}
    print(f"\n{'variant':<28}{'mIoU':>8}{'mIoU 255=bg':>13}{'coverage':>10}{'boxes/s':>10}{'s/box':>9}")
    for r in rows:
        print(f"{r['variant']:<28}{r['miou']:>8.2f}{r['miou_ignore_as_background']:>13.2f}"
              f"{r['coverage']:>10.3f}{r['boxes_per_s']:>10.2f}{r['s_per_box']:>9.3f}")
    ours, ours2, base = by["grabcut --jobs 1"], by["grabcut --jobs 2"], by["boxes"]
    checks = {
        "miou >= boxes + 8": ours["miou"] >= base["miou"] + 8,
        "coverage >= 0.90": ours["coverage"] >= 0.90,
        "miou_ignore_as_background > boxes": ours["miou_ignore_as_background"] > base["miou_ignore_as_background"],
        "jobs 2 / jobs 1 >= 1.8": ours2["boxes_per_s"] / ours["boxes_per_s"] >= 1.8,
    }
    print(f"\nscaling --jobs 2 / --jobs 1: {ours2['boxes_per_s'] / ours['boxes_per_s']:.2f}x")
    ref = by.get("reference (plain GrabCut)")
    if ref:
        speedup = ours["boxes_per_s"] / ref["boxes_per_s"]
        print(f"speed-up over the reference on one core: {speedup:.2f}x "
              f"(mIoU {ours['miou']:.2f} vs {ref['miou']:.2f})")
        checks["speed >= 4x reference (one core)"] = speedup >= 4
        checks["miou >= reference"] = ours["miou"] >= ref["miou"]
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    result = {"data_root": str(dataset.root), "split": args.split, "rows": rows, "checks": checks}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
