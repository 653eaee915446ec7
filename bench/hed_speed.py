"""HED's speed and outputs, the plain reference pass (``HED.forward``, as the edges stage ran it
before) against the fast pass (``hed.fast_edges``) at each precision, interleaved photo by photo in one
process so that a machine shared with other work slows all of them alike.

    python bench/hed_speed.py [--data-root DIR] [--images N] [--threads 1] [--variants float32,bfloat16]
                              [--out bench/results/hed_speed.json]

Times are the process's CPU seconds per photo (``time.process_time``: what the pass costs, not
how long it waited for a core) and wall seconds; ratios are reference / variant, over the sum of
the photos. Differences: the largest absolute difference of the fused map from the reference's,
and, after the store's rounding (x 255, uint8), how many pixels change by 1 and by more.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from results_json import emit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--images", type=int, default=0, help="first N photos of the split (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="float32,bfloat16")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch
    from pseudolabel.catalog import load_image, open_dataset
    from pseudolabel.core.records import BadRecord
    from pseudolabel.models.hed import fast_edges, load_hed, preprocess

    torch.set_num_threads(args.threads)
    records = [r for r in open_dataset(args.data_root).records(args.split) if not isinstance(r, BadRecord)]
    records = records[: args.images or None]
    model = load_hed()
    variants = {"reference": lambda x: model(x)}
    for name in args.variants.split(","):
        variants[name] = (lambda p: lambda x: fast_edges(model, x, p))(name)
    cpu = {n: 0.0 for n in variants}
    wall = {n: 0.0 for n in variants}
    diff = {n: {"max_abs": 0.0, "mean_abs": 0.0, "uint8_changed_by_1": 0, "uint8_changed_by_more": 0}
            for n in variants if n != "reference"}
    pixels = 0
    with torch.inference_mode():
        x = torch.from_numpy(preprocess(load_image(records[0])))[None]
        for f in variants.values():                                  # warm up (weights prepared)
            f(x)
        for k, record in enumerate(records):
            x = torch.from_numpy(preprocess(load_image(record)))[None]
            order = list(variants) if k % 2 == 0 else list(variants)[::-1]
            outs = {}
            for name in order:
                c, t = time.process_time(), time.perf_counter()
                outs[name] = variants[name](x)[0, 0].float().numpy()
                cpu[name] += time.process_time() - c
                wall[name] += time.perf_counter() - t
            ref = outs["reference"]
            pixels += ref.size
            for name, d in diff.items():
                a = np.abs(outs[name].astype(np.float64) - ref)
                d["max_abs"] = max(d["max_abs"], float(a.max()))
                d["mean_abs"] += float(a.sum())
                u = np.abs(np.round(outs[name] * 255).astype(int) - np.round(ref * 255).astype(int))
                d["uint8_changed_by_1"] += int((u == 1).sum())
                d["uint8_changed_by_more"] += int((u > 1).sum())
            print(f"{k + 1}/{len(records)} {record.image_id} {ref.shape}: "
                  + ", ".join(f"{n} {cpu[n] / (k + 1):.3f}" for n in variants) + " cpu s/photo", file=sys.stderr)
    n = len(records)
    result = {"data_root": args.data_root, "photos": n, "pixels": pixels, "threads": args.threads,
              "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "cpu_s_per_photo": {k: round(v / n, 4) for k, v in cpu.items()},
              "wall_s_per_photo": {k: round(v / n, 4) for k, v in wall.items()},
              "speedup_cpu": {k: round(cpu["reference"] / v, 3) for k, v in cpu.items()},
              "speedup_wall": {k: round(wall["reference"] / v, 3) for k, v in wall.items()},
              "difference": {k: {**d, "mean_abs": d["mean_abs"] / pixels} for k, d in diff.items()}}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
