"""``grabcut --init-from prompt``'s two thresholds, measured by the two-fold protocol of
``bench/quality.py``: sure foreground where p > ``--init-sure``, probable foreground where p >
``--init-probable`` (probable background elsewhere in the box).

Needs an output root whose current ``prompt`` store is the engine to start from (and, for
``--pairwise edges``, a current ``edges`` store), e.g. the one ``bench/quality.py --isnet FILE
--isnet-sizes 512`` leaves:

    python bench/init_thresholds.py --cache /tmp/q/cache --pairwise edges \\
        --out bench/results/init_thresholds_coco128-voc-dev.json --downstream 0.9:0.5,0.9:0.7

For each pair of the grid it runs GrabCut started from the prompted masks and reports per half
mIoU, coverage and mean object IoU; the pair chosen on one half (highest mIoU at >= 90% coverage)
is reported on the other. With ``--downstream``, chosen pairs also run the rest of
``pipelines/isnet_plus.toml`` (refine, fuse), beside ``pipelines/grabcut_plus.toml``'s labels.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import MIN_COVERAGE, half_figures, log, object_ious  # noqa: E402
from results_json import emit  # noqa: E402

from pseudolabel.catalog import open_dataset  # noqa: E402
from pseudolabel.evaluation.semantic import evaluate_store  # noqa: E402
from pseudolabel.runner import RunOptions, run  # noqa: E402
from pseudolabel.stages import get_stage  # noqa: E402
from pseudolabel.store import LabelStore  # noqa: E402


def downstream(args, dataset, split, options, make) -> dict[str, LabelStore]:
    """For each ``--downstream`` pair: its GrabCut, refined over the current proposals (HED's, as
    quality.py leaves them) and fused with them, as ``pipelines/isnet_plus.toml``; and the same
    for GrabCut+ from the rectangle (``pipelines/grabcut_plus.toml``)."""
    def after(name, config):                                        # name "grabcut+,hed": quality.PLUS
        make(config)
        refine = run("refine", get_stage("refine").config_class(source="grabcut"), dataset, split, args.cache, options,
                     log=log, progress=False)
        fuse = run("fuse", get_stage("fuse").config_class(sources="grabcut,refine"), dataset, split, args.cache,
                   options, log=log, progress=False)
        return {f"refine[{name}]": LabelStore(refine.store), f"fuse[{name}]": LabelStore(fuse.store)}

    grabcut, out = get_stage("grabcut").config_class, {}
    if not args.downstream:
        return out
    out.update(after("grabcut+,hed", grabcut(pairwise=args.pairwise)))
    for pair in args.downstream.split(","):
        sure, probable = map(float, pair.split(":"))
        out.update(after(f"sure {sure:g}, probable {probable:g}", grabcut(
            init_from="prompt", pairwise=args.pairwise, init_sure=sure, init_probable=probable)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco128-voc-dev"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--cache", required=True, help="output root with the prompt store to start from")
    ap.add_argument("--pairwise", default="edges", choices=("colour", "edges"))
    ap.add_argument("--sure", default="0.8,0.9,0.97")
    ap.add_argument("--probable", default="0.3,0.5,0.7")
    ap.add_argument("--downstream", default="", help="pairs SURE:PROBABLE (comma-separated) also run as "
                    "pipelines/isnet_plus.toml does (refine over the current proposals, fuse), against grabcut_plus")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dataset, split, options = open_dataset(args.data_root), args.split, RunOptions(jobs=args.jobs)
    grabcut = get_stage("grabcut").config_class

    def make(config):
        return LabelStore(run("grabcut", config, dataset, split, args.cache, options, log=log, progress=False).store)

    stores = {"grabcut": make(grabcut())}
    for sure, probable in itertools.product(*(map(float, v.split(",")) for v in (args.sure, args.probable))):
        if probable <= sure:
            stores[f"sure {sure:g}, probable {probable:g}"] = make(grabcut(
                init_from="prompt", pairwise=args.pairwise, init_sure=sure, init_probable=probable))
    stores.update(downstream(args, dataset, split, options, make))
    make(grabcut())                                                  # the current grabcut store as it was
    ids = stores["grabcut"].all_ids
    matrices = {n: evaluate_store(s, dataset, split, per_image=True, progress=False).per_image for n, s in stores.items()}
    objects = {n: object_ious(dataset, split, s) for n, s in stores.items()}
    halves = {"A": list(range(0, len(ids), 2)), "B": list(range(1, len(ids), 2))}
    figures = {h: half_figures(ids, matrices, objects, idx) for h, idx in halves.items()}
    result = {"data_root": args.data_root, "split": split, "pairwise": args.pairwise, "figures": figures}
    for pick, report in (("A", "B"), ("B", "A")):
        best = max((n for n in figures[pick] if n.startswith("sure") and figures[pick][n]["coverage"] >= MIN_COVERAGE),
                   key=lambda n: figures[pick][n]["miou"], default=None)
        result[f"chosen_on_{pick}"] = best and {"variant": best, f"miou_on_{report}": figures[report][best]["miou"]}
    for name in stores:
        log(f"{name:<28} " + "  ".join(f"{h}: {figures[h][name]['miou']:6.2f} mIoU {figures[h][name]['coverage']:.3f} "
                                       f"cov {figures[h][name]['object_iou']:6.2f} obj" for h in halves))
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
