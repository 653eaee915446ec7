"""GrabCut stage benchmark: quality and speed against plain GrabCut, same images, same run.

    python bench/grabcut.py --data-root ../shared/data/coco128-voc-dev --split train \
        --out bench/results/grabcut_coco128-voc-dev.json

Every timed run is the real command a user types, in a fresh process
(``python -m pseudolabel -q <stage> ... --force``), timed by wall clock from start to exit:
interpreter start-up, imports, image decoding, worker start-up and the store write all count.
  1. ``boxes``                        filled boxes (the baseline);
  2. ``grabcut --reference --jobs 1`` plain cv2.grabCut: full image, rectangle init,
                                      5 iterations, no guards (the reference), one core;
  3. ``grabcut --jobs 1`` and ``grabcut --jobs 2``, alternated ``--repeats`` times, so a
     slow spell of the machine hits both; speed figures are the medians.
Quality is scored in this process from the stores (``evaluate``). Prints a table, checks the
issue's targets and writes JSON. ``--skip-reference`` drops the slow reference run (~4 min).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pseudolabel.catalog import open_dataset
from pseudolabel.evaluation.semantic import evaluate_store
from pseudolabel.core.output_root import OutputRoot
from pseudolabel.store import LabelStore


def timed(stage: str, args, cache: Path, jobs: int, *extra: str) -> float:
    """Wall seconds of one ``pseudolabel`` command in a fresh process."""
    cmd = [sys.executable, "-m", "pseudolabel", "-q", stage, "--data-root", args.data_root,
           "--cache", str(cache), "--split", args.split, "--jobs", str(jobs), "--force", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    print(f"  {' '.join(cmd[3:5] + list(extra))} --jobs {jobs}: {wall:.2f} s", file=sys.stderr)
    return wall


def row(name: str, stage: str, jobs: int, walls: list[float], dataset, split: str, cache: Path) -> dict:
    store = LabelStore(OutputRoot(cache).current(dataset.name, split, stage))
    report = evaluate_store(store, dataset, split, progress=False).report
    boxes = sum(len(r.objects) for r in dataset.records(split))
    wall = statistics.median(walls)
    return {
        "variant": name, "jobs": jobs, "images": len(store), "boxes": boxes,
        "wall_s": round(wall, 2), "wall_s_runs": [round(w, 2) for w in walls],
        "boxes_per_s": round(boxes / wall, 3), "s_per_box": round(wall / max(boxes, 1), 4),
        "miou": report["miou"], "miou_ignore_as_background": report["miou_ignore_as_background"],
        "coverage": report["coverage"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--repeats", type=int, default=3, help="alternated --jobs 1 / --jobs 2 runs")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--skip-reference", action="store_true", help="skip the slow reference run")
    args = ap.parse_args()

    dataset = open_dataset(args.data_root)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pseudolabel-bench-") as tmp:
        caches = {name: Path(tmp) / name for name in ("boxes", "reference", "jobs1", "jobs2")}
        rows.append(row("boxes", "boxes", 1, [timed("boxes", args, caches["boxes"], 1)],
                        dataset, args.split, caches["boxes"]))
        if not args.skip_reference:
            wall = timed("grabcut", args, caches["reference"], 1, "--reference")
            rows.append(row("reference (plain GrabCut)", "grabcut", 1, [wall], dataset, args.split, caches["reference"]))
        walls = {1: [], 2: []}
        for _ in range(args.repeats):
            for jobs in (1, 2):
                walls[jobs].append(timed("grabcut", args, caches[f"jobs{jobs}"], jobs))
        for jobs in (1, 2):
            rows.append(row(f"grabcut --jobs {jobs}", "grabcut", jobs, walls[jobs], dataset, args.split,
                            caches[f"jobs{jobs}"]))

    by = {r["variant"]: r for r in rows}
    print(f"\n{'variant':<28}{'mIoU':>8}{'mIoU 255=bg':>13}{'coverage':>10}{'boxes/s':>10}{'s/box':>9}")
    for r in rows:
        print(f"{r['variant']:<28}{r['miou']:>8.2f}{r['miou_ignore_as_background']:>13.2f}"
              f"{r['coverage']:>10.3f}{r['boxes_per_s']:>10.2f}{r['s_per_box']:>9.3f}")
    ours, ours2, base = by["grabcut --jobs 1"], by["grabcut --jobs 2"], by["boxes"]
    pairs = [a / b for a, b in zip(walls[1], walls[2])]
    scaling = ours2["boxes_per_s"] / ours["boxes_per_s"]
    checks = {
        "miou >= boxes + 8": ours["miou"] >= base["miou"] + 8,
        "coverage >= 0.90": ours["coverage"] >= 0.90,
        "miou_ignore_as_background > boxes": ours["miou_ignore_as_background"] > base["miou_ignore_as_background"],
        "jobs 2 / jobs 1 >= 1.8": scaling >= 1.8,
    }
    print(f"\nscaling --jobs 2 / --jobs 1: {scaling:.2f}x (medians; pairs: {', '.join(f'{p:.2f}' for p in pairs)})")
    result = {"data_root": str(dataset.root), "split": args.split, "rows": rows,
              "scaling_jobs2_over_jobs1": round(scaling, 3), "scaling_pairs": [round(p, 3) for p in pairs]}
    ref = by.get("reference (plain GrabCut)")
    if ref:
        speedup = ours["boxes_per_s"] / ref["boxes_per_s"]
        print(f"speed-up over the reference on one core: {speedup:.2f}x "
              f"(mIoU {ours['miou']:.2f} vs {ref['miou']:.2f})")
        checks["speed >= 4x reference (one core)"] = speedup >= 4
        checks["miou >= reference"] = ours["miou"] >= ref["miou"]
        result["speedup_over_reference"] = round(speedup, 2)
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    result["checks"] = checks
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
