"""GrabCut+ against plain GrabCut at the function level: time per photo of ``grabcut_object`` over
every box, with the edge maps of an edges store, in one process, so only the per-box work counts.

    git show REV:pseudolabel/algorithms/grabcut_plus.py > /tmp/grabcut_plus_old.py    # optional
    python bench/grabcut_plus_speed.py --edges CACHE/coco128-voc-dev/train/edges.h5 \
        --photos 77 --repeats 2 --old /tmp/grabcut_plus_old.py

Variants: ``plain`` (cv2.grabCut), ``plus`` (GrabCut+, this checkout) and, with ``--old``, ``old``
(GrabCut+ with ``grabcut_edges`` from that file). Made for a shared, loaded machine: per photo
every variant runs ``--repeats`` times in rotating order and keeps its fastest run; the figures
are ratios of the sums, never seconds alone. With ``--old`` it also counts the boxes whose masks
differ between ``plus`` and ``old`` (0 when a change is only a speed-up).
"""
from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from pseudolabel.algorithms import grabcut_plus
from pseudolabel.algorithms.grabcut import GrabCutParams, grabcut_object, is_grey
from pseudolabel.catalog import open_dataset
from pseudolabel.catalog.pixels import load_image
from pseudolabel.core.records import BadRecord
from pseudolabel.store import EdgeStore


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="../shared/data/coco128-voc-dev")
    ap.add_argument("--split", default="train")
    ap.add_argument("--edges", required=True, help="the split's edges store (pseudolabel edges)")
    ap.add_argument("--photos", type=int, default=0, help="the first N photos (0: all)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--old", default=None, help="an older grabcut_plus.py to time and compare")
    args = ap.parse_args()

    records = [r for r in open_dataset(args.data_root).records(args.split) if not isinstance(r, BadRecord)]
    records = records[:args.photos] if args.photos else records
    store = EdgeStore(args.edges)
    functions = {"plain": None, "plus": grabcut_plus.grabcut_edges}
    if args.old:
        spec = importlib.util.spec_from_file_location("grabcut_plus_old", args.old)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        functions["old"] = old.grabcut_edges
    names = list(functions)
    params = GrabCutParams()
    rng = np.random.default_rng(0)                        # load numba's compiled kernels first
    grabcut_object(rng.integers(0, 256, (90, 120, 3), np.uint8), (30, 20, 90, 70), params, 0, False,
                   rng.random((90, 120)).astype(np.float32))

    best = {name: [] for name in names}
    differ = boxes = 0
    try:
        for record in records:
            image, edges = load_image(record), store[record.image_id].edges
            grey = is_grey(image)
            items = [tuple(int(v) for v in b) for b in record.boxes()]
            runs, masks = {name: [] for name in names}, {}
            for repeat in range(args.repeats):
                for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                    if functions[name] is not None:
                        grabcut_plus.grabcut_edges = functions[name]     # grabcut_object imports it per call
                    start = time.perf_counter()
                    masks[name] = [grabcut_object(image, box, params, k, grey, edges if functions[name] else None)[0]
                                   for k, box in enumerate(items)]
                    runs[name].append(time.perf_counter() - start)
            for name in names:
                best[name].append(min(runs[name]))
            if "old" in masks:
                boxes += len(items)
                differ += sum(not np.array_equal(a, b) for a, b in zip(masks["plus"], masks["old"]))
    finally:
        grabcut_plus.grabcut_edges = functions["plus"]

    total = {name: sum(v) for name, v in best.items()}
    print(f"{len(records)} photos, fastest of {args.repeats} runs each: "
          + ", ".join(f"{name} {total[name] / len(records):.3f} s/photo" for name in names))
    for name in names[1:]:
        per_photo = np.array(best[name]) / np.maximum(best["plain"], 1e-9)
        print(f"  {name} / plain = {total[name] / total['plain']:.2f} (median per photo {np.median(per_photo):.2f})")
    if "old" in total:
        print(f"  old / plus = {total['old'] / total['plus']:.2f}; masks differing: {differ} of {boxes} boxes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
